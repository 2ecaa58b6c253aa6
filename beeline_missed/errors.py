"""Errors that reach the user as one clear sentence and a non-zero exit."""


class UserError(Exception):
    """Something the user can fix; its message is one sentence, shown as is.

    `ru` is the same sentence for staff, given where an error can reach both admin and staff
    commands (a missing register, say); the CLI shows it to staff commands.
    """

    exit_code = 1

    def __init__(self, message: str, *, ru: str | None = None) -> None:
        super().__init__(message)
        self.ru = ru

    def text(self, russian: bool = False) -> str:
        message = self.ru if russian and self.ru else str(self)
        # One line whatever the user typed into it (a line break, NEL, a line separator...).
        return " ".join(message.splitlines())


class SettingsError(UserError):
    """A bad value in config.toml (or the environment that stands for it). Staff cannot fix
    it and the details are the admin's words, so staff commands frame it in Russian for
    whoever can."""

    def text(self, russian: bool = False) -> str:
        message = super().text(False)
        if russian:
            return (
                f"В настройках программы ошибка, покажите это сообщение администратору: {message}"
            )
        return message


class ConflictError(UserError):
    """Someone else saved the same record first."""

    exit_code = 3
    call_id: int | None = None
