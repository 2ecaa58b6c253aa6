"""man/ holds one page per command, generated from the CLI's help; these fail when it is stale."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from beeline_missed.cli import manpages

MAN = Path(__file__).resolve().parent.parent / "man"


def test_man_pages_are_current() -> None:
    problems = manpages.stale(MAN)
    assert problems == [], "man/ is out of date; run `make man`: " + "; ".join(problems)


def test_every_command_and_option_has_help_text() -> None:
    assert manpages.missing_help() == []


def test_every_command_has_its_own_page() -> None:
    root = manpages.root_command()
    paths = [ctx.command_path for ctx, _ in manpages.walk(root, manpages.context(root, "x"))]
    names = set(manpages.pages())
    assert len(names) == len(paths)
    for expected in ("subscribe", "status", "unsubscribe", "config-show"):
        assert f"beeline-missed-{expected}.1" in names


def test_stale_reports_missing_changed_and_orphaned_pages(tmp_path: Path) -> None:
    assert "beeline-missed-status.1 is missing" in manpages.stale(tmp_path)
    assert manpages.write(tmp_path)
    assert manpages.stale(tmp_path) == []
    assert manpages.write(tmp_path) == []  # no dates: regenerating changes nothing
    page = tmp_path / "beeline-missed-status.1"
    page.write_text(page.read_text() + ".PP\nedited by hand\n")
    (tmp_path / "beeline-missed-gone.1").write_text(".TH GONE 1\n")
    assert manpages.stale(tmp_path) == [
        "beeline-missed-status.1 is out of date",
        "beeline-missed-gone.1 documents a command that no longer exists",
    ]
    assert manpages.write(tmp_path) == ["beeline-missed-status.1", "beeline-missed-gone.1"]
    assert manpages.stale(tmp_path) == []


def test_page_content_comes_from_the_help() -> None:
    page = manpages.pages()["beeline-missed-subscribe.1"]
    assert page.startswith('.TH "BEELINE\\-MISSED\\-SUBSCRIBE" "1"')
    assert "\\fB\\-\\-all\\-abonents\\fR" in page
    assert "\\fB\\-\\-expires\\fR \\fISECONDS\\fR" in page
    assert "granted" in page
    assert ".BR beeline\\-missed (1)" in page


def test_roff_escaping() -> None:
    assert manpages.esc("a-b\\c") == "a\\-b\\ec"
    assert manpages.esc(".starts with a dot\n'quote") == "\\&.starts with a dot\n\\&'quote"


def test_check_command_exit_codes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "beeline_missed.cli.manpages"]
    assert subprocess.run([*command, str(MAN), "--check"], capture_output=True).returncode == 0
    stale = subprocess.run([*command, str(tmp_path), "--check"], capture_output=True, text=True)
    assert stale.returncode == 1 and "make man" in stale.stderr


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_pages_render_without_warnings() -> None:
    pages = sorted(str(p) for p in MAN.glob("*.1"))
    result = subprocess.run(
        ["groff", "-k", "-man", "-Tutf8", "-ww", "-z", *pages], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == ""
