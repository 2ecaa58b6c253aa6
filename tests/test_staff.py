"""Staff as people of the PBX: the [staff] tables in config.toml, `staff list` next to the PBX's
abonents (the simulator's), `staff link` editing the file with its other lines kept."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beeline_missed import config
from beeline_missed.cli import app
from beeline_missed.config import StaffMember
from beeline_missed.directory import staff
from beeline_missed.errors import UserError
from beeline_missed.simulator.pbx import Simulator
from beeline_missed.store import Abonent, Register

runner = CliRunner()

TABLES = """\
# the shop's settings
user = "petrov"
staff_names."201" = "Аня"   # wins over the staff table

[staff.petrov]
name = "Петров"
abonent = "9001112202"

[staff.anna]
name = "Смирнова"
abonent = 201

[staff.new]
"""


def test_staff_tables_are_read_typed_and_name_their_abonents(home: Path) -> None:
    (home / "config.toml").write_text(TABLES, encoding="utf-8")
    settings = config.load()
    assert settings.staff == {
        "petrov": StaffMember("petrov", "Петров", "9001112202"),
        "anna": StaffMember("anna", "Смирнова", "201"),
        "new": StaffMember("new", None, None),
    }
    # Auto-close names who answered from the tables; staff_names says otherwise where it does.
    assert settings.staff_names == {"9001112202": "Петров", "201": "Аня"}
    assert config.display_name(settings, "petrov") == "Петров"
    assert config.display_name(settings, "new") == "new"
    assert config.display_name(settings, "stranger") == "stranger"
    assert config.staff_member(settings, "ПЕТРОВ") == settings.staff["petrov"]  # by name too
    assert config.staff_member(settings, "stranger") is None
    shown = config.effective(settings)["staff"]
    assert shown["petrov"] == {"name": "Петров", "abonent": "9001112202"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[staff.x]\nabonnent = "1"\n', "Setting staff.x in .* has an unknown key 'abonnent'"),
        ("[staff.x]\nabonent = 1.5\n", r"Setting staff.x in .*: abonent must be text, not 1.5"),
        ('staff = "x"\n', "Setting 'staff' in .* has a bad value: 'x' .*tables"),
        ('staff.x = "y"\n', r"Setting staff.x in .* must be a table with name and abonent"),
        ('call_number_format = "plus"\n', "call_number_format.*one of: e164, digits, national"),
        ("claim_ttl = 10\n", "claim_ttl.*from 60 to"),
    ],
)
def test_bad_staff_settings_are_one_sentence(home: Path, text: str, message: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        config.load()


def test_defaults() -> None:
    settings = config.load()
    assert (settings.staff, settings.call_number_format, settings.claim_ttl) == ({}, "e164", 1800)


def test_template_documents_the_settings_and_stays_valid_when_uncommented() -> None:
    wanted = ("# [staff.", "# name =", "# abonent =", "# call_number_format", "# claim_ttl")
    lines = config.CONFIG_TEMPLATE.splitlines()
    uncommented = "\n".join(line[2:] if line.startswith(wanted) else line for line in lines)
    parsed = tomllib.loads(uncommented)
    assert parsed["staff"]["petrov"] == {"name": "Петров", "abonent": "9001112202"}
    # Top-level keys, not swallowed by the table: the table is the last thing in the file.
    assert (parsed["claim_ttl"], parsed["call_number_format"]) == (1800, "e164")
    after = lines[next(i for i, line in enumerate(lines) if line.startswith("# [staff.")) :]
    assert not [line for line in after if line.startswith("# ") and "=" in line][2:]


# -- staff link's text edit ---------------------------------------------------------------


def test_link_replaces_the_abonent_line_in_place_and_keeps_everything_else() -> None:
    new = staff.link_text(TABLES, "petrov", "202")
    assert new == TABLES.replace('abonent = "9001112202"', 'abonent = "202"')


def test_link_adds_the_line_to_an_existing_table_and_a_name() -> None:
    new = staff.link_text(TABLES, "new", "203", name="Кузнецов")
    assert new == TABLES.replace(
        "[staff.new]\n", '[staff.new]\nname = "Кузнецов"\nabonent = "203"\n'
    )


def test_link_appends_a_table_and_quotes_what_needs_it() -> None:
    text = "settle = 3\n# end"
    new = staff.link_text(text, "o'brien", 'a"b')
    assert new == text + '\n\n[staff."o\'brien"]\nabonent = "a\\"b"\n'
    assert tomllib.loads(new)["staff"]["o'brien"] == {"abonent": 'a"b'}
    assert staff.link_text("", "x", "1") == '[staff.x]\nabonent = "1"\n'


def test_link_refuses_what_it_cannot_edit_safely() -> None:
    inline = 'staff = { petrov = { abonent = "1" } }\n'
    with pytest.raises(UserError, match="cannot edit safely"):
        staff.link_text(inline, "petrov", "2")
    with pytest.raises(UserError, match="not valid TOML"):
        staff.link_text("[staff\n", "petrov", "2")
    with pytest.raises(UserError, match="must be one line"):
        staff.link_text("", "petrov", "2\n[x]")


# -- the commands, next to the simulator's abonents -----------------------------------------


def test_staff_list_next_to_the_pbx_abonents(
    home: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text(TABLES.replace('"9001112202"', '"9009999999"'), "utf-8")
    monkeypatch.setenv("BEELINE_API_URL", sim.base_url)
    monkeypatch.setenv("BEELINE_API_TOKEN", sim.token)

    result = runner.invoke(app, ["staff", "list", "--json"])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["abonents_from"] == "pbx"  # nothing cached yet: asked the PBX
    by_login = {line["login"]: line for line in shown["staff"]}
    assert by_login["anna"]["pbx_abonent"]["userId"] == "9001112201@ip.beeline.ru"
    assert by_login["anna"]["pbx_abonent"]["name"] == "Смирнова Анна"
    assert (by_login["anna"]["problem"], by_login["new"]["problem"]) == (None, "no abonent")
    assert by_login["petrov"]["problem"] == "not on the PBX"
    assert [a["extension"] for a in shown["unlinked_abonents"]] == ["202", "203", "204", "205"]

    # No COLUMNS here: output.py's console is made once per process, and a width set now
    # would stay for every later test.
    table = runner.invoke(app, ["staff", "list"])
    assert table.exit_code == 0
    assert "No abonent for: new" in table.stdout
    assert "Смирнова Анна" in table.stdout


def test_staff_link_checks_the_cached_list_and_keeps_the_file_mode(
    home: Path, register: Register
) -> None:
    path = home / "config.toml"
    path.write_text(TABLES, encoding="utf-8")
    os.chmod(path, 0o600)
    register.abonents.replace(
        [{"userId": "9001112203@ip.beeline.ru", "phone": "9001112203", "extension": "203"}]
    )

    unknown = runner.invoke(app, ["staff", "link", "new", "299"])
    assert unknown.exit_code == 1
    assert "The PBX has no abonent '299'" in unknown.output
    assert path.read_text(encoding="utf-8") == TABLES

    done = runner.invoke(app, ["staff", "link", "new", "203", "--name", "Кузнецов"])
    assert done.exit_code == 0, done.output
    assert "Wrote [staff.new] abonent = '203'" in done.stdout
    assert config.load().staff["new"] == StaffMember("new", "Кузнецов", "203")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8").startswith("# the shop's settings\n")

    forced = runner.invoke(app, ["staff", "link", "new", "299", "--force"])
    assert forced.exit_code == 0
    assert config.load().staff["new"].abonent == "299"


# -- the pure parts, one by one ------------------------------------------------------------

ROW = Abonent(
    "9001112202@ip.beeline.ru",
    phone="9001112202",
    extension="202",
    first_name="Игорь",
    last_name="Петров",
    department="Мастера",
)


def test_an_abonent_is_named_by_user_id_its_name_phone_or_extension() -> None:
    assert staff.abonent_ids(ROW) == {"9001112202@ip.beeline.ru", "9001112202", "202"}
    odd = Abonent("SIP00A@x@mpbx.sip.beeline.ru")
    assert staff.abonent_ids(odd) == {"SIP00A@x@mpbx.sip.beeline.ru", "SIP00A"}
    assert staff.abonent_ids(Abonent("", phone="9001112203", extension="203")) == {
        "9001112203",
        "203",
    }
    assert staff.abonent_ids(Abonent("")) == set()
    assert staff.find_abonent("202", [ROW]) is ROW
    assert staff.find_abonent("", [ROW]) is None


def test_the_pbx_answer_in_the_caches_shape_sorted() -> None:
    answer = [
        {"userId": "b@x", "phone": "2", "extension": "12", "firstName": "Б", "lastName": "Бб",
         "department": "D", "email": "not kept"},
        {"userId": "a@x", "phone": "1"},
        {"phone": "3"},  # no userId: not an abonent the events can name
    ]  # fmt: skip
    assert staff.as_cached(answer) == [
        Abonent("a@x", phone="1"),
        Abonent("b@x", phone="2", extension="12", first_name="Б", last_name="Бб",
                department="D"),
    ]  # fmt: skip


def test_lines_and_their_json() -> None:
    members = {
        "petrov": StaffMember("petrov", "Петров", "202"),
        "ghost": StaffMember("ghost", None, "299"),
        "new": StaffMember("new", None, None),
    }
    shown = staff.lines(members, [ROW], known=True)
    assert [line.as_json() for line in shown] == [
        {"login": "ghost", "name": "ghost", "abonent": "299", "pbx_abonent": None,
         "problem": "not on the PBX"},
        {"login": "new", "name": "new", "abonent": None, "pbx_abonent": None,
         "problem": "no abonent"},
        {"login": "petrov", "name": "Петров", "abonent": "202",
         "pbx_abonent": {"userId": "9001112202@ip.beeline.ru", "phone": "9001112202",
                         "extension": "202", "name": "Петров Игорь", "department": "Мастера"},
         "problem": None},
    ]  # fmt: skip
    # With no list known, an abonent cannot be said to be missing from it.
    assert [line.problem for line in staff.lines(members, [], known=False)] == [
        None,
        "no abonent",
        None,
    ]
    other = replace(ROW, user_id="9001112203@ip.beeline.ru", phone="9001112203", extension="203")
    assert staff.unlinked(members, [ROW, other]) == [other]


def test_link_edits_what_the_file_really_looks_like() -> None:
    # The header last, with no line break; another table right after an empty one; CRLF.
    assert staff.link_text("[staff.x]", "x", "1") == '[staff.x]\nabonent = "1"\n'
    text = "[staff.x]\n[other]\nabonent = 5\n"
    assert staff.link_text(text, "x", "1") == '[staff.x]\nabonent = "1"\n[other]\nabonent = 5\n'
    crlf = '[staff.x]\r\nabonent = "0"\r\n'
    assert tomllib.loads(staff.link_text(crlf, "x", "1"))["staff"]["x"] == {"abonent": "1"}
    indented = '  [ staff . x ]  # desk\n  abonent = "0"\n  [ other ]\n'
    assert staff.link_text(indented, "x", "1") == indented.replace(
        '  abonent = "0"', 'abonent = "1"'
    )
    quoted = '[staff."o\'brien"]\nname = "О\'Брайен"\n'
    assert staff.link_text(quoted, "o'brien", "7") == quoted.replace("\n", '\nabonent = "7"\n', 1)
    assert staff.link_text("settle = 3", "x", "1") == 'settle = 3\n\n[staff.x]\nabonent = "1"\n'
    assert staff.link_text("x = 1\n", "X", "1") == 'x = 1\n\n[staff.X]\nabonent = "1"\n'
    # The next table indented: its abonent line is not ours.
    nested = '[staff.x]\n  [other]\n  abonent = "0"\n'
    assert staff.link_text(nested, "x", "1") == nested.replace("\n", '\nabonent = "1"\n', 1)
    assert staff.link_text("x = 1", "é", "ё") == 'x = 1\n\n[staff."é"]\nabonent = "ё"\n'


@pytest.mark.parametrize(
    ("login", "abonent", "name", "what"),
    [("", "1", None, "login"), ("x", " ", None, "abonent"), ("x", "1", "a\rb", "name"),
     ("x\x00", "1", None, "login")],
)  # fmt: skip
def test_link_refuses_what_is_not_one_line(login: str, abonent: str, name, what: str) -> None:
    with pytest.raises(UserError, match=f"^The {what} must be one line of text"):
        staff.link_text("", login, abonent, name)


def test_write_config_makes_a_new_file_private_and_says_when_it_cannot(tmp_path: Path) -> None:
    path = tmp_path / "new" / "home" / "config.toml"
    staff.write_config(path, "x = 1\n")
    assert path.read_text(encoding="utf-8") == "x = 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o640)
    staff.write_config(path, "x = 2\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["config.toml"]  # no temp file left
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(UserError, match=r"^Cannot write .*config\.toml: .*/file is a file, not"):
        staff.write_config(blocked / "config.toml", "x = 1\n")
