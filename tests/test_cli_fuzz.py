"""Fuzzes the command line with hypothesis, bounded in examples and time: random text, numbers
and number-like words in every option of the commands that run and return by themselves.

Whatever the words, a command ends with 0 (done), 1 (refused in one sentence), 2 (a usage
error) or 3 (a conflict), never with an uncaught exception or a traceback. The same holds for
any config.toml: known keys (and near misses) with values of any TOML type.
Commands that serve, open a TUI or call the PBX (daemon, panel, demo, simulator, subscribe,
status, unsubscribe, reconcile) are left out: they would block or reach the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app
from beeline_missed.store import Register
from tests.support.factories import add_call

runner = CliRunner()

# Any text, lone surrogates included (what a non-UTF-8 argv turns into; hypothesis leaves them
# out unless asked); no NUL, which a real argv cannot carry (it is still refused: check_words).
TEXT = st.text(st.characters(blacklist_categories=(), blacklist_characters="\x00"), max_size=30)
SURROGATE = st.sampled_from(["\udcff", "caf\udce9", "\udc80\udc81"])
NUMBER_WORDS = st.sampled_from(
    ["nan", "inf", "-inf", "-1", "0", "1e999", "99999999999999999999999", "0x10", "1_000", "٣"]
)
WORD = st.one_of(
    TEXT,
    SURROGATE,
    NUMBER_WORDS,
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
# Dates that parse and are near or beyond the calendar's ends.
DATES = st.one_of(
    st.sampled_from(["0001-01-01", "9999-12-31", "31.12.9999", "1969-12-31", "2026-11-27"]),
    WORD,
)


@st.composite
def command(draw: st.DrawFn) -> list[str]:
    """One command line: a command with some of its options filled with random words."""
    word = lambda: draw(WORD)  # noqa: E731
    maybe = lambda args: args if draw(st.booleans()) else []  # noqa: E731
    choices = [
        lambda: ["list", *maybe(["--all"]), *maybe(["--limit", word()]), *maybe(["--json"])],
        lambda: ["watch", "--duration", "0", *maybe(["--interval", word()]),
                 *maybe(["--limit", word()])],
        lambda: ["card", word(), *maybe(["--status", word()]), *maybe(["--result", word()]),
                 *maybe(["--user", word()]), *maybe(["--expect-version", word()]),
                 *maybe(["--json"])],
        lambda: ["card", "1", "--status", "Перезвонили", "--result", word(),
                 *maybe(["--book"]), *maybe(["--user", word()])],
        lambda: ["clients", "find", word(), *maybe(["--json"])],
        lambda: ["clients", "add", word(), word(), *maybe([word()])],
        lambda: ["clients", "list", *maybe(["--limit", word()])],
        lambda: ["inbox", *maybe(["--state", word()]), *maybe(["--limit", word()]),
                 *maybe(["--show", word()])],
        lambda: ["report", *maybe(["--period", word()]), *maybe(["--from", draw(DATES)]),
                 *maybe(["--to", draw(DATES)]), *maybe(["--where", word()]),
                 *maybe(["--where", "client", "~", word()]), *maybe(["--group-by", word()]),
                 *maybe(["--format", draw(st.sampled_from(["csv", "json", "html", "bogus"]))])],
        lambda: ["replay", "--json"],
        lambda: ["config", "show", "--json"],
    ]  # fmt: skip
    return draw(st.sampled_from(choices))()


@pytest.fixture
def shop(register: Register, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A register with calls and a client; the journal is off so «Записаться» opens nothing."""
    add_call(register, "s1", "+79161234567")
    add_call(register, "s2", None)
    register.clients.upsert([(None, "Иванов", (("+79161234567", "8 916 123-45-67"),))])
    monkeypatch.chdir(tmp_path)  # nothing a command might write lands in the project
    yield


@settings(
    max_examples=300,
    deadline=None,  # a first report or replay pays for imports
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=command())
def test_any_command_line_ends_in_a_sentence_not_a_traceback(shop: None, args: list[str]) -> None:
    result = runner.invoke(app, args, input="")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args!r} raised {result.exception!r}") from result.exception
    assert result.exit_code in (0, 1, 2, 3), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    if result.exit_code == 1:  # refused: one sentence on stderr
        said = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(said) == 1 and said[0].startswith(("Error: ", "Ошибка: ")), (args, said)


# -- config.toml: any known (or nearly known) key with any TOML value ----------------------

SCALAR = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(f), repr(f))
    ),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).map(json.dumps),
)
VALUE = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
    st.dictionaries(st.sampled_from(["mon", "201", "x"]), SCALAR, max_size=2).map(
        lambda table: "{" + ", ".join(f'"{k}" = {v}' for k, v in table.items()) + "}"
    ),
)
KEY = st.one_of(st.sampled_from(sorted(config._KNOWN | {"db"})), st.sampled_from(["setle", "x"]))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(entries=st.dictionaries(KEY, VALUE, min_size=1, max_size=3))
def test_any_config_file_ends_in_a_sentence_not_a_traceback(
    shop: None, home: Path, entries: dict[str, str]
) -> None:
    (home / "config.toml").write_text(
        "".join(f"{key} = {value}\n" for key, value in entries.items()), encoding="utf-8"
    )
    for args in (["config", "show", "--json"], ["list", "--json"]):
        result = runner.invoke(app, args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{entries!r} raised {result.exception!r}") from result.exception
        assert result.exit_code in (0, 1), (entries, result.output)
        assert "Traceback" not in result.output
