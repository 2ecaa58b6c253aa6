"""The daemon: the hook, its workers and the server's lifecycle.

- `main.py`: `run` (foreground or detached): logging, the pidfile, checks before detaching.
- `server.py`: uvicorn serving the hook, `RunningDaemon` starting and stopping everything.
- `hook.py`: the ASGI app; an event is acknowledged only once it is in the inbox.
- `workers.py`: the threads: processor, subscription keeper, catch-up, notifier, escalator, 1C.
- `register.py`: the register shared by those threads; noticing it moved or deleted.
- `processing.py`: the inbox into legs and sessions, and quiet sessions into register rows.
- `notify.py`: Telegram and e-mail notifications of new missed calls.
"""
