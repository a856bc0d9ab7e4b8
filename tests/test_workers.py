"""workers/workers.yaml: the volunteer worker registry."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from wheelfarm.problems import ValidationError
from wheelfarm.registry.platforms import PLATFORMS, SUPPORTED_PYTHONS
from wheelfarm.registry.workers import (
    WorkerEntry,
    load_worker_files,
    load_workers,
    password_secret_name,
)

ROOT = Path(__file__).resolve().parents[1]

ALICE = """\
  - name: alice-linux-1
    owner: "Alice Example <alice@example.org>"
    platform: linux-x86_64
    python: ["3.11", "3.12"]
"""


def write(tmp_path: Path, entries: str, head: str = "schema: 1\nworkers:\n") -> Path:
    path = tmp_path / "workers.yaml"
    path.write_text(head + dedent(entries), encoding="utf-8")
    return path


def problems(tmp_path: Path, entries: str) -> tuple[Path, list[str]]:
    """Validate `schema: 1`, `workers:` (lines 1-2) then `entries` from line 3."""
    path = write(tmp_path, entries)
    with pytest.raises(ValidationError) as e:
        load_workers(path)
    return path, [str(p) for p in e.value.problems]


def test_valid_workers_and_defaults(tmp_path):
    path = write(
        tmp_path,
        ALICE
        + """\
  - name: bob-mac
    owner: bob@example.com
    platform: macos-arm64
    python: ["3.13"]
    max_builds: 3
    tags: [fast, big_disk]
""",
    )
    assert load_workers(path) == [
        WorkerEntry(
            name="alice-linux-1",
            owner="Alice Example <alice@example.org>",
            platform="linux-x86_64",
            pythons=("3.11", "3.12"),
            max_builds=1,
            tags=(),
            line=3,
        ),
        WorkerEntry(
            name="bob-mac",
            owner="bob@example.com",
            platform="macos-arm64",
            pythons=("3.13",),
            max_builds=3,
            tags=("fast", "big_disk"),
            line=7,
        ),
    ]


def test_password_secret_name():
    assert password_secret_name("alice-linux-1") == "worker-alice-linux-1"


def test_shipped_workers_file_is_valid_and_empty():
    assert load_workers(ROOT / "workers" / "workers.yaml") == []


def test_shipped_example_entry_is_valid(tmp_path):
    # The commented-out example must work once a volunteer uncomments it.
    text = (ROOT / "workers" / "workers.yaml").read_text(encoding="utf-8")
    example = text[text.index("# Example:") :].split("\n", 2)[2]
    entry = "".join(
        line.removeprefix("#  ") + "\n" for line in example.splitlines() if line.startswith("#  ")
    )
    [worker] = load_workers(write(tmp_path, entry))
    assert worker.name == "alice-linux-1"
    assert worker.max_builds == 2


def test_unsupported_schema(tmp_path):
    path = write(tmp_path, "", head="schema: 3\nworkers: []\n")
    with pytest.raises(ValidationError) as e:
        load_workers(path)
    assert str(e.value) == f"{path}:1: schema: unsupported schema version 3 (this farm reads 1)"


def test_workers_must_be_a_list(tmp_path):
    path = write(tmp_path, "", head="schema: 1\nworkers:\n")
    with pytest.raises(ValidationError) as e:
        load_workers(path)
    assert str(e.value) == f"{path}:2: workers: expected a list, got null"


def test_missing_required_keys(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n")
    assert found == [
        f"{path}:3: workers[0].owner: required key is missing",
        f"{path}:3: workers[0].platform: required key is missing",
        f"{path}:3: workers[0].python: required key is missing",
    ]


def test_unknown_key(tmp_path):
    path, found = problems(tmp_path, ALICE + "    max_bulids: 2\n")
    assert found == [
        f"{path}:7: workers[0].max_bulids: unknown key 'max_bulids' (did you mean 'max_builds'?)"
    ]


@pytest.mark.parametrize("name", ["Alice", "alice_1", "-alice", "a" * 64, "alice.linux", ""])
def test_bad_worker_name(tmp_path, name):
    path, found = problems(tmp_path, ALICE.replace("alice-linux-1", repr(name)))
    assert found == [
        f"{path}:3: workers[0].name: {name!r} is not a valid worker name "
        "(lowercase letters, digits and '-', starting with a letter or digit, at most 63)"
    ]


def test_longest_worker_name_allowed(tmp_path):
    [worker] = load_workers(write(tmp_path, ALICE.replace("alice-linux-1", "a" * 63)))
    assert worker.name == "a" * 63


@pytest.mark.parametrize("owner", ["Alice Example", "alice at example.org", "alice@localhost"])
def test_owner_needs_an_email_address(tmp_path, owner):
    path, found = problems(
        tmp_path, ALICE.replace('"Alice Example <alice@example.org>"', repr(owner))
    )
    assert found == [f"{path}:4: workers[0].owner: {owner!r} has no email address to contact"]


def test_unknown_platform(tmp_path):
    path, found = problems(tmp_path, ALICE.replace("linux-x86_64", "linux-sparc"))
    known = ", ".join(PLATFORMS)
    assert found == [
        f"{path}:5: workers[0].platform: unknown platform 'linux-sparc' (known: {known})"
    ]


def test_unsupported_python(tmp_path):
    path, found = problems(tmp_path, ALICE.replace('"3.12"', '"3.8"'))
    supported = ", ".join(SUPPORTED_PYTHONS)
    assert found == [
        f"{path}:6: workers[0].python[1]: unsupported Python version '3.8' (supported: {supported})"
    ]


def test_python_must_not_be_empty(tmp_path):
    path, found = problems(tmp_path, ALICE.replace('["3.11", "3.12"]', "[]"))
    assert found == [f"{path}:6: workers[0].python: must not be an empty list"]


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "must be at least 1, not 0"),
        ("-2", "must be at least 1, not -2"),
        ("'2'", "expected an integer, got string"),
        ("true", "expected an integer, got bool"),
        ("1.5", "expected an integer, got float"),
    ],
)
def test_bad_max_builds(tmp_path, value, message):
    path, found = problems(tmp_path, ALICE + f"    max_builds: {value}\n")
    assert found == [f"{path}:7: workers[0].max_builds: {message}"]


@pytest.mark.parametrize("tag", ["two words", "-x", "a;b", ""])
def test_bad_tag(tmp_path, tag):
    path, found = problems(tmp_path, ALICE + f"    tags: [ok, {tag!r}]\n")
    assert found == [f"{path}:7: workers[0].tags[1]: {tag!r} is not a simple word"]


def test_duplicate_names(tmp_path):
    path, found = problems(tmp_path, ALICE + ALICE.replace("linux-x86_64", "linux-aarch64"))
    assert found == [
        f"{path}:7: workers[1].name: duplicate of workers[0] ('alice-linux-1', line 3)"
    ]


def test_all_problems_reported(tmp_path):
    path, found = problems(
        tmp_path,
        """\
          - name: Bad_Name
            owner: nobody
            platform: plan9
            python: [3.10]
          - just a string
        """,
    )
    assert [line.split(": ")[0] for line in found] == [f"{path}:{n}" for n in (3, 4, 5, 6, 7)]


def test_worker_declared_in_two_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a", ALICE)
    second = write(tmp_path / "b", ALICE.replace("alice-linux-1", "other") + ALICE)
    with pytest.raises(ValidationError) as e:
        load_worker_files([first, second])
    assert [str(p) for p in e.value.problems] == [
        f"{second}:7: workers[1].name: worker 'alice-linux-1' is declared in two files: "
        f"first in {first}:3"
    ]
    other = write(tmp_path, ALICE.replace("alice-linux-1", "other"))
    assert [w.name for w in load_worker_files([first, other])] == ["alice-linux-1", "other"]
