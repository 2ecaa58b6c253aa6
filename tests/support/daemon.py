"""Runs the real daemon as a subprocess on loopback, next to an in-process PBX simulator."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx

SECRET_PATH = "/beeline/hook/3f9c2a7e5b1d4c8a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until `predicate` returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class Daemon:
    # The daemons a test has running: a failing test's report shows their logs
    # (tests/conftest.py), which are gone with its temporary folder afterwards.
    running: ClassVar[list[Daemon]] = []

    def __init__(
        self,
        home: Path,
        *,
        api_url: str = "http://127.0.0.1:9/apis/portal",
        token: str | None = None,
        settle: float = 1.0,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.public_url = self.base + SECRET_PATH
        self.settle = settle
        self.log_path = home / "daemon.log"
        self.env = {
            **os.environ,
            "BEELINE_MISSED_HOME": str(home),
            "BEELINE_API_URL": api_url,
            "BEELINE_MISSED_PUBLIC_URL": self.public_url,
            **(extra_env or {}),
        }
        self.env.pop("BEELINE_API_TOKEN", None)
        if token:
            self.env["BEELINE_API_TOKEN"] = token
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, log_file: bool = True) -> list[str]:
        """The daemon's command line; without `log_file` it logs to stderr (as under systemd)."""
        logging = ["--log-file", str(self.log_path)] if log_file else []
        return [
            sys.executable,
            "-m",
            "beeline_missed",
            "daemon",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--settle",
            str(self.settle),
            *logging,
            *self.extra_args,
        ]

    def start(self) -> Daemon:
        args = self.command()
        self.proc = subprocess.Popen(
            args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        Daemon.running.append(self)
        wait_for(self.healthy, timeout=20)
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            _, err = self.proc.communicate()
            raise AssertionError(f"daemon exited with {self.proc.returncode}: {err.decode()}")
        try:
            return httpx.get(self.base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def post(self, body: bytes, path: str = SECRET_PATH, **kwargs: Any) -> httpx.Response:
        headers = {"Content-Type": "application/xml; charset=UTF-8"}
        return httpx.post(self.base + path, content=body, headers=headers, timeout=10, **kwargs)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self in Daemon.running:
            Daemon.running.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()
            if self.proc.stderr:
                self.proc.stderr.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8") if self.log_path.exists() else ""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "beeline_missed", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def calls(self) -> list[dict[str, Any]]:
        """The register as `list --all --json` prints it."""
        result = self.cli("list", "--all", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
