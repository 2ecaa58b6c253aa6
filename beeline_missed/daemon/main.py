"""Starting the daemon: logging, the pidfile, checks made before detaching, and `run`, the
entry the `daemon` command calls (in the foreground or detached)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

from beeline_missed.config import Settings
from beeline_missed.daemon.hook import hook_path
from beeline_missed.daemon.server import RunningDaemon, parse_listen, serve
from beeline_missed.errors import UserError
from beeline_missed.store import Register

log = logging.getLogger("beeline_missed.daemon")


def open_log(log_file: Path) -> logging.Handler:
    """The log file's handler, opened now: a folder that is missing or not writable is one
    sentence here, not a traceback at the first log line (or silence once detached)."""
    try:
        # 0600 as before: the log names the register and the PBX's answers.
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UserError(f"Cannot write the log file {log_file}: {exc.strerror}.") from None
    return logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))


def configure_logging(
    log_file: Path | None = None, verbose: bool = False, handler: logging.Handler | None = None
) -> None:
    if handler is None:
        handler = open_log(log_file) if log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # httpx logs every request URL at INFO; keep it quiet (no token there, but noise).
    logging.getLogger("httpx").setLevel(logging.WARNING)


def prepare_register(db: Path) -> None:
    """Create (or migrate) the register now, in the foreground, and say so when it is new: the
    daemon is one of the commands meant to start a register, and its place must be visible."""
    from beeline_missed.views.output import notice

    new = not db.exists()
    Register.open(db).close()
    if new:
        notice(f"Created a new register at {db}.")


def check_free(host: str, port: int) -> None:
    """Bind the address once before starting: a detached daemon's failure would be heard by
    nobody, and uvicorn's own says nothing of the cause."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:  # socket.gaierror too: an unknown host name
        raise UserError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None


def running_pid(pidfile: Path) -> int | None:
    """The pid in a pidfile if that process is alive, else None (no file, or a stale one)."""
    try:
        text = pidfile.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"Cannot read the pidfile {pidfile}: {exc.strerror}.") from None
    if not text.isdigit() or not 0 < int(text) < 2**22:
        raise UserError(f"The pidfile {pidfile} holds no pid ({text[:20]!r}); remove it first.")
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, but someone else's
        return pid
    return pid


def claim_pidfile(pidfile: Path) -> None:
    """Refuse a pidfile of a live daemon, clear a stale one, and make sure the folder takes it.
    python-daemon's lock would only fail after detaching, where nobody hears it."""
    pid = running_pid(pidfile)
    if pid is not None:
        raise UserError(f"A daemon is already running with pid {pid} (pidfile {pidfile}).")
    if pidfile.is_dir():
        raise UserError(f"The pidfile {pidfile} is a folder.")
    folder = pidfile.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"Cannot write the pidfile {pidfile}: its folder is missing or read-only.")
    if pidfile.exists():
        from beeline_missed.views.output import notice

        try:
            pidfile.unlink()  # stale: its process is gone
        except OSError as exc:
            raise UserError(f"Cannot remove the stale pidfile {pidfile}: {exc.strerror}.") from None
        notice(f"Removed the stale pidfile {pidfile} (its process is gone).")


def run(
    settings: Settings,
    *,
    detach: bool = False,
    pidfile: Path | None = None,
    log_file: Path | None = None,
    verbose: bool = False,
) -> None:
    """Foreground by default (systemd, containers); `detach` daemonises with python-daemon.

    Everything that can be checked is checked first, in the foreground with a terminal: the
    settings, the register, the log file, the address and the pidfile. A detached daemon then
    reports back through a pipe whether it listens, so the command's exit status is the truth.
    """
    hook_path(settings.public_url)  # fail before forking
    from beeline_missed.rules import hours

    hours.from_settings(settings)  # a bad working_hours table too
    host, port = parse_listen(settings.listen)
    if pidfile is not None and not detach:
        raise UserError("--pidfile goes with --detach (a foreground daemon writes no pidfile).")
    if detach and log_file is None:
        raise UserError("--detach needs --log-file, so that the daemon's messages are kept.")
    # Absolute before detaching, which changes the folder to /.
    settings = replace(settings, db=settings.db.resolve())
    log_file = log_file.resolve() if log_file else None
    pidfile = pidfile.resolve() if pidfile else None
    handler = open_log(log_file) if log_file else None
    # In the foreground too: uvicorn would only log the failure and exit, and the sentence
    # here says why (taken, not this machine's address, a name that does not resolve).
    check_free(host, port)
    prepare_register(settings.db)
    if not detach:
        configure_logging(log_file, verbose, handler)
        serve(settings)
        return
    assert handler is not None and log_file is not None
    if pidfile is not None:
        claim_pidfile(pidfile)
    _detach(settings, handler, log_file, pidfile, verbose)


def _detach(
    settings: Settings,
    handler: logging.StreamHandler,  # type: ignore[type-arg]
    log_file: Path,
    pidfile: Path | None,
    verbose: bool,
) -> None:
    from beeline_missed.views.output import notice

    read_end, write_end = os.pipe()
    child = os.fork()
    if child:
        # The command's own process: wait for the daemon's word (EOF if it died first).
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            word = pipe.read().decode("utf-8", "replace").strip()
        os.waitpid(child, 0)  # python-daemon's first fork exits at once
        if not word.startswith("started "):
            raise UserError(word or f"The daemon stopped while starting; see {log_file}.")
        notice(f"The daemon runs in the background, pid {word.split()[1]}; log: {log_file}.")
        return
    os.close(read_end)
    try:
        _run_detached(settings, handler, pidfile, verbose, write_end)
    finally:
        os._exit(0)  # never back into the command line's flow in a forked copy


def _run_detached(
    settings: Settings,
    handler: logging.StreamHandler,  # type: ignore[type-arg]
    pidfile: Path | None,
    verbose: bool,
    report: int,
) -> None:
    import daemon
    from daemon.pidfile import TimeoutPIDLockFile

    def tell(text: str) -> None:
        nonlocal report
        if report >= 0:
            with contextlib.suppress(OSError):
                os.write(report, text.encode("utf-8"))
                os.close(report)
            report = -1

    lock = TimeoutPIDLockFile(str(pidfile), acquire_timeout=1) if pidfile else None
    context = daemon.DaemonContext(
        pidfile=lock, working_directory="/", umask=0o077, files_preserve=[report, handler.stream]
    )
    try:
        context.open()
    except Exception as exc:  # the pidfile taken meanwhile, say
        tell(f"The daemon could not start: {exc}.")
        return
    try:
        configure_logging(verbose=verbose, handler=handler)
        running = RunningDaemon(settings)

        def watch_start() -> None:
            while not running.server.started and not running.server.should_exit:
                time.sleep(0.05)
            if running.server.started:
                tell(f"started {os.getpid()}")

        threading.Thread(target=watch_start, name="started", daemon=True).start()
        running.run()
    except UserError as exc:
        log.error("%s", exc)
        tell(str(exc))
    except Exception as exc:
        log.exception("the daemon stopped")
        tell(f"The daemon stopped: {exc}.")
    finally:
        tell("")
        context.close()
