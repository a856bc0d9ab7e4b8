"""The documentation: its reference pages are the code's, and the README's links land."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from wheelfarm.cli import docs
from wheelfarm.settings import SETTING_DOCS

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"


def test_committed_reference_pages_are_the_generated_ones():
    for name, text in docs.pages().items():
        committed = (REFERENCE / name).read_text(encoding="utf-8")
        assert committed == text, f"regenerate: make reference ({name} drifted from the code)"
    assert sorted(p.name for p in REFERENCE.glob("*.md")) == sorted(docs.pages())


def test_every_setting_has_its_one_row():
    documented = [name for doc in SETTING_DOCS for name in doc.names]
    assert sorted(documented) == sorted(docs.setting_names())
    page = docs.settings_page()
    for name in docs.setting_names():
        assert f"`WHEELFARM_{name.upper()}`" in page


def test_a_setting_without_a_row_is_named(monkeypatch):
    monkeypatch.setattr(docs, "SETTING_DOCS", SETTING_DOCS[1:])
    try:
        docs.settings_page()
    except ValueError as e:
        assert repr(list(SETTING_DOCS[0].names)) in str(e)
    else:
        raise AssertionError("a setting without a row made a page")


def test_the_command_line_page_names_every_command_and_option():
    parser = docs.build_parser(environ={})
    page = docs.command_line_page()
    for name, sub, _ in docs._commands(parser):
        assert f"## `wheelfarm {name}`" in page
        for action in sub._actions:
            for option in action.option_strings:
                assert option == "-h" or option == "--help" or option in page


def test_the_pages_do_not_follow_this_shells_environment(monkeypatch):
    monkeypatch.setenv("WHEELFARM_PORT", "1234")
    assert "1234" not in docs.command_line_page()


def test_every_page_is_in_the_sites_nav():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [p for value in nav.values() for p in pages(value)]
        assert isinstance(nav, list)
        return [p for item in nav for p in pages(item)]

    on_disk = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(pages(config["nav"])) == on_disk


def test_the_readmes_relative_links_land():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert links
    for link in links:
        assert (ROOT / link).is_file(), link
