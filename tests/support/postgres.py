"""A throwaway PostgreSQL cluster for the tests: the base image's server binaries (initdb,
pg_ctl), a data folder and a unix socket in a temp folder, no TCP, stopped at the end.

initdb refuses to run as root, so as root (CI, this machine) the cluster is run as the
`postgres` user on a folder that user owns. Each test gets a fresh database copied from a
template that is migrated once (CREATE DATABASE … TEMPLATE: a few ms, no migrations per test).
Missing binaries are a failure with one sentence, never a silent skip: CI has them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from beeline_missed.store.engine import PostgresURL

TEMPLATE = "bm_template"
# Where Debian and Ubuntu install the server binaries, one folder per major version.
DEBIAN_FOLDER = Path("/usr/lib/postgresql")


class ClusterError(RuntimeError):
    pass


def bindir() -> Path:
    """Where initdb and pg_ctl are: `pg_config --bindir`, else the newest Debian folder."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(DEBIAN_FOLDER.glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise ClusterError(
        "The PostgreSQL tests need the PostgreSQL server binaries (initdb, pg_ctl; Debian "
        "package postgresql), and none were found via pg_config or in /usr/lib/postgresql."
    )


class Cluster:
    """One running server: `url(dbname)`, `fresh()` database, `stop()` / `start()` (to test
    what the daemon does while PostgreSQL is down), `close()`."""

    def __init__(self, durable: bool = False) -> None:
        # Tests run without fsync (a throwaway cluster); benchmarks measure with it.
        self.durable = durable
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="bm-pg-"))
        self.data = self.root / "data"
        self.socket = self.root  # short: a unix socket path is limited to ~100 bytes
        self.as_root = os.geteuid() == 0
        self.counter = itertools.count(1)
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        self.start()

    def _run(self, argv: Sequence[str]) -> None:
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            raise ClusterError(f"{argv[-1] if argv else ''}: {done.stderr.strip()[-2000:]}")

    def start(self) -> None:
        options = f"-k {self.socket} -c listen_addresses='' -c max_connections=200"
        options += " -c shared_buffers=128MB" if self.durable else " -c fsync=off"
        self._run(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "-l",
                str(self.root / "server.log"),
                "start",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def url(self, dbname: str) -> PostgresURL:
        return PostgresURL(f"postgresql://postgres@/{dbname}?host={self.socket}")

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres").url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def prepare_template(self) -> None:
        """A database migrated to head, copied by every test's fresh database."""
        from beeline_missed.store import Register

        self.admin(f"CREATE DATABASE {TEMPLATE}")
        Register.open(self.url(TEMPLATE)).close()

    def fresh(self, empty: bool = False) -> PostgresURL:
        """A new database: a copy of the migrated template, or `empty` (no register yet)."""
        name = f"t{next(self.counter)}"
        template = "template0" if empty else TEMPLATE
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(ClusterError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
