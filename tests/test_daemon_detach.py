"""`daemon --detach`: everything that can fail is reported before or by the detached daemon,
with a non-zero exit; a zero exit means a daemon really listens. Real subprocesses only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.daemon import SECRET_PATH, free_port, wait_for


def daemon(
    cwd: Path, *args: str, port: int | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BEELINE_MISSED_PUBLIC_URL": f"http://127.0.0.1/{SECRET_PATH.strip('/')}",
    }
    env.pop("BEELINE_API_TOKEN", None)
    listen = ["--listen", f"127.0.0.1:{port if port is not None else free_port()}"]
    return subprocess.run(
        [sys.executable, "-m", "beeline_missed", "daemon", *listen, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=None if umask is None else lambda: os.umask(umask),
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids of detached daemons a test started; each is stopped afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda pid=pid: not alive(pid), timeout=20)


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_relative_pidfile_and_log_are_written_where_the_command_ran(
    tmp_path: Path, started: list[int]
) -> None:
    port = free_port()
    result = daemon(tmp_path, "--detach", "--pidfile", "d.pid", "--log-file", "d.log", port=port)
    assert result.returncode == 0, result.stderr
    pid = int((tmp_path / "d.pid").read_text())
    started.append(pid)
    assert f"pid {pid}" in result.stderr and str(tmp_path / "d.log") in result.stderr
    home = Path(os.environ["BEELINE_MISSED_HOME"])  # the test's own, fresh
    assert f"Created a new register at {home / 'register.sqlite'}." in result.stderr
    # Exit 0 means it listens already, not that it may listen soon.
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "ok"
    assert "starting on" in (tmp_path / "d.log").read_text()


def test_second_detach_on_a_live_pidfile_is_refused(tmp_path: Path, started: list[int]) -> None:
    first = daemon(tmp_path, "--detach", "--pidfile", "d.pid", "--log-file", "d.log")
    assert first.returncode == 0, first.stderr
    pid = int((tmp_path / "d.pid").read_text())
    started.append(pid)
    second = daemon(tmp_path, "--detach", "--pidfile", "d.pid", "--log-file", "d.log")
    assert f"already running with pid {pid}" in one_error(second)
    assert int((tmp_path / "d.pid").read_text()) == pid and alive(pid)


def test_the_lock_beside_the_register_has_the_registers_mode_whatever_the_umask(
    tmp_path: Path, started: list[int]
) -> None:
    """An admin who may read the register may ask `status` who serves it, though the
    daemon runs with umask 077."""
    from beeline_missed.daemon.register import lock_path
    from beeline_missed.store import Register

    db = Path(os.environ["BEELINE_MISSED_HOME"]) / "register.sqlite"
    Register.open(db).close()
    db.chmod(0o640)
    result = daemon(tmp_path, "--detach", "--pidfile", "d.pid", "--log-file", "d.log", umask=0o077)
    assert result.returncode == 0, result.stderr
    started.append(int((tmp_path / "d.pid").read_text()))
    assert lock_path(db).stat().st_mode & 0o777 == 0o640


def test_stale_pidfile_is_replaced(tmp_path: Path, started: list[int]) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    (tmp_path / "d.pid").write_text(gone.stdout)
    result = daemon(tmp_path, "--detach", "--pidfile", "d.pid", "--log-file", "d.log")
    assert result.returncode == 0, result.stderr
    pid = int((tmp_path / "d.pid").read_text())
    started.append(pid)
    assert pid != int(gone.stdout)
    assert f"Removed the stale pidfile {tmp_path / 'd.pid'}" in result.stderr


def test_log_file_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    for args in (["--detach", "--log-file", "no/such/d.log"], ["--log-file", "no/such/d.log"]):
        text = one_error(daemon(tmp_path, *args))
        assert f"Cannot write the log file {tmp_path / 'no/such/d.log'}" in text


def test_pidfile_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    result = daemon(tmp_path, "--detach", "--pidfile", "no/such/d.pid", "--log-file", "d.log")
    assert "Cannot write the pidfile" in one_error(result)


def test_pidfile_the_daemon_cannot_create_is_reported(tmp_path: Path) -> None:
    # /proc takes no new files, even for root (for whom every folder looks writable): the
    # failure happens in the detached process and must still reach this exit status.
    result = daemon(
        tmp_path, "--detach", "--pidfile", "/proc/beeline-missed.pid", "--log-file", "d.log"
    )
    assert "/proc/beeline-missed.pid" in one_error(result)


def test_busy_port_is_refused_before_detaching(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = daemon(tmp_path, "--detach", "--log-file", "d.log", port=port)
    assert f"Cannot listen on 127.0.0.1:{port}" in one_error(result)


def test_pidfile_without_detach_is_refused(tmp_path: Path) -> None:
    assert "--pidfile goes with --detach" in one_error(daemon(tmp_path, "--pidfile", "d.pid"))


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:٣", "nohost"])
def test_listen_out_of_range_is_one_sentence(tmp_path: Path, listen: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "beeline_missed", "daemon", "--listen", listen],
        cwd=tmp_path,
        env={**os.environ, "BEELINE_MISSED_PUBLIC_URL": f"http://x{SECRET_PATH}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--listen must be HOST:PORT with a port from 0 to 65535" in one_error(result)
