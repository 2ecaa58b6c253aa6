"""Errors that reach the user as one clear sentence and a non-zero exit."""


class UserError(Exception):
    """Something the user can fix; its message is one sentence, shown as is."""

    exit_code = 1


class ConflictError(UserError):
    """Someone else saved the same record first."""

    exit_code = 3
    call_id: int | None = None
