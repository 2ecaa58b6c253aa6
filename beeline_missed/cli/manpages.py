"""Man pages generated from the CLI's own help: one page per command, kept in man/.

`python -m beeline_missed.cli.manpages man` (or `make man`) regenerates them;
`python -m beeline_missed.cli.manpages man --check` exits 1 when they are out of date.
Pages carry no date, so regenerating an unchanged CLI changes nothing.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beeline_missed import __version__

if TYPE_CHECKING:
    # Typer may ship its own copy of click; only duck-typed click API is used here.
    from click import Command, Context

PROG = "beeline-missed"
SECTION = "1"

ENVIRONMENT = [
    ("BEELINE_API_URL", "Base URL of the Beeline portal API."),
    ("BEELINE_API_TOKEN", "The X-MPBX-API-AUTH-TOKEN value; commands that need it say so."),
    ("BEELINE_MISSED_HOME", "Folder for config.toml and, by default, the register."),
    ("BEELINE_MISSED_DB", "Path of the SQLite register."),
    (
        "BEELINE_MISSED_PUBLIC_URL",
        "The full URL the PBX posts events to, secret path included.",
    ),
    ("NO_COLOR", "When set, output has no colours (neither has it when not a terminal)."),
]


def root_command() -> Any:
    import typer.main

    from beeline_missed.cli import app

    return typer.main.get_command(app)


def is_group(command: Command) -> bool:
    return hasattr(command, "list_commands")


def context(command: Command, name: str, parent: Context | None = None) -> Context:
    return command.context_class(command, info_name=name, parent=parent)


def walk(command: Command, ctx: Context) -> Iterator[tuple[Context, Command]]:
    """The command and every visible sub-command below it, depth first, sorted by name."""
    yield ctx, command
    if is_group(command):
        for name in sorted(command.list_commands(ctx)):  # type: ignore[attr-defined]
            sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
            if sub is None or sub.hidden:
                continue
            yield from walk(sub, context(sub, name, ctx))


def page_name(ctx: Context) -> str:
    return ctx.command_path.replace(" ", "-")


def esc(text: str) -> str:
    """Escape text for roff: backslashes, hyphens as minus signs (copy-paste safe), and lines
    that would start with a control character."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line for line in text.split("\n"))


def help_text(command: Command) -> str:
    text = inspect.cleandoc(command.help or "")
    return text.split("\f", 1)[0].strip()


def paragraphs(text: str) -> list[str]:
    """Roff for click help text: blank lines part paragraphs; a '\\b' paragraph keeps its lines."""
    out = []
    for block in text.split("\n\n"):
        block = block.strip("\n")
        if not block.strip():
            continue
        if block.startswith("\b"):
            lines = block.split("\n")[1:]
            out.append(".nf\n" + esc("\n".join(lines)) + "\n.fi")
        else:
            out.append(esc(" ".join(line.strip() for line in block.split("\n"))))
    return out


def _param_records(
    command: Command, ctx: Context
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    arguments, options = [], []
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        (arguments if param.param_type_name == "argument" else options).append(record)
    return arguments, options


def _term(declaration: str) -> str:
    """'--expires SECONDS' -> bold option, italic metavar."""
    parts = []
    for piece in declaration.split(", "):
        name, _, metavar = piece.partition(" ")
        term = f"\\fB{esc(name)}\\fR"
        if metavar:
            term += f" \\fI{esc(metavar)}\\fR"
        parts.append(term)
    return ", ".join(parts)


def render(ctx: Context, command: Command) -> str:
    name = page_name(ctx)
    text = help_text(command)
    short = command.get_short_help_str(limit=120).rstrip(".")
    lines = [
        f'.TH "{esc(name.upper())}" "{SECTION}" "" "{PROG} {esc(__version__)}" "User Commands"',
        ".SH NAME",
        f"{esc(name)} \\- {esc(short)}",
        ".SH SYNOPSIS",
        f".B {esc(ctx.command_path)}",
        esc(" ".join(command.collect_usage_pieces(ctx))),
        ".SH DESCRIPTION",
    ]
    body = paragraphs(text)
    lines += ["\n.PP\n".join(body)] if body else []
    arguments, options = _param_records(command, ctx)
    for title, records in (("ARGUMENTS", arguments), ("OPTIONS", options)):
        if not records:
            continue
        lines.append(f".SH {title}")
        for declaration, help_ in records:
            lines += [".TP", _term(declaration), esc(help_) if help_ else ""]
    see_also = []
    if is_group(command):
        lines.append(".SH COMMANDS")
        for sub_ctx, sub in walk(command, ctx):
            if sub is command or sub_ctx.parent is not ctx:
                continue
            lines += [
                ".TP",
                f"\\fB{esc(sub_ctx.info_name or '')}\\fR",
                esc(sub.get_short_help_str(limit=120)),
            ]
            see_also.append(page_name(sub_ctx))
    if ctx.parent is None:
        lines.append(".SH ENVIRONMENT")
        for var, meaning in ENVIRONMENT:
            lines += [".TP", f"\\fB{var}\\fR", esc(meaning)]
    else:
        see_also.insert(0, page_name(ctx.parent))
    if see_also:
        lines.append(".SH SEE ALSO")
        lines.append(",\n".join(f".BR {esc(page)} ({SECTION})" for page in see_also))
    return "\n".join(line for line in lines if line != "") + "\n"


def pages() -> dict[str, str]:
    """File name -> roff text, for the root command and every visible sub-command."""
    root = root_command()
    ctx = context(root, PROG)
    return {f"{page_name(c)}.{SECTION}": render(c, cmd) for c, cmd in walk(root, ctx)}


def missing_help() -> list[str]:
    """Commands and parameters that have no help text: each would make a poor page."""
    root = root_command()
    problems = []
    for ctx, command in walk(root, context(root, PROG)):
        if not help_text(command):
            problems.append(f"{ctx.command_path}: no help text")
        for param in command.get_params(ctx):
            if getattr(param, "hidden", False) or param.name == "help":
                continue
            if not getattr(param, "help", None):
                problems.append(f"{ctx.command_path} {param.opts[0]}: no help text")
    return problems


def stale(folder: Path) -> list[str]:
    """What differs between folder and the pages the CLI would generate now."""
    wanted = pages()
    problems = []
    for name, text in wanted.items():
        path = folder / name
        if not path.exists():
            problems.append(f"{name} is missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{name} is out of date")
    for path in sorted(folder.glob(f"{PROG}*.{SECTION}")):
        if path.name not in wanted:
            problems.append(f"{path.name} documents a command that no longer exists")
    return problems


def write(folder: Path) -> list[str]:
    """Regenerate folder; returns the names written or removed."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = pages()
    changed = []
    for name, text in wanted.items():
        path = folder / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    for path in sorted(folder.glob(f"{PROG}*.{SECTION}")):
        if path.name not in wanted:
            path.unlink()
            changed.append(path.name)
    return changed


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    if len(args) != 1:
        sys.stderr.write("usage: python -m beeline_missed.cli.manpages FOLDER [--check]\n")
        return 2
    folder = Path(args[0])
    if check:
        problems = stale(folder) + missing_help()
        for problem in problems:
            sys.stderr.write(problem + "\n")
        if problems:
            sys.stderr.write("Run `make man` to regenerate the man pages.\n")
        return 1 if problems else 0
    changed = write(folder)
    sys.stdout.write(f"{len(changed)} page(s) written or removed in {folder}\n")
    for problem in missing_help():
        sys.stderr.write(f"warning: {problem}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
