"""What a registry change asks the farm to build: only what it adds."""

from __future__ import annotations

from conftest import write_registry
from wheelfarm.changes.registrydiff import added_targets, summary
from wheelfarm.registry.packages import load_registry

PYTHONS = frozenset({"3.11", "3.12"})
BOTH = {"linux-x86_64": PYTHONS, "linux-aarch64": PYTHONS}  # platform -> Pythons offered


def entry(name: str, extra: str = "", platforms: str = "[linux-x86_64, linux-aarch64]") -> str:
    return f'  - name: {name}\n    platforms: {platforms}\n    python: ["3.11", "3.12"]\n{extra}'


def diff(tmp_path, old: str, new: str, old_served=BOTH, new_served=BOTH):
    before = load_registry(write_registry(tmp_path / "old.yaml", old))
    after = load_registry(write_registry(tmp_path / "new.yaml", new))
    return {(t.package, t.platform, t.python, t.why) for t in added_targets(
        before, after, old_served, new_served
    )}  # fmt: skip


def test_unchanged_registry_builds_nothing(tmp_path):
    assert diff(tmp_path, entry("a") + entry("b"), entry("b") + entry("a")) == set()


def test_new_package_builds_all_its_served_targets(tmp_path):
    added = diff(
        tmp_path, entry("a"), entry("a") + entry("b"), new_served={"linux-x86_64": PYTHONS}
    )
    assert added == {
        ("b", "linux-x86_64", "3.11", "new package"),
        ("b", "linux-x86_64", "3.12", "new package"),
    }


def test_new_version_range_rebuilds_the_package_only(tmp_path):
    old = entry("a") + entry("b")
    new = entry("a", '    versions: ">=2"\n') + entry("b")
    added = diff(tmp_path, old, new)
    assert {(p, why) for p, _, _, why in added} == {("a", "versions now >=2")}
    assert len(added) == 4


def test_new_platform_and_new_python_build_just_those(tmp_path):
    old = entry("a", platforms="[linux-x86_64]")
    new = entry("a")
    assert diff(tmp_path, old, new) == {
        ("a", "linux-aarch64", "3.11", "new platform or Python"),
        ("a", "linux-aarch64", "3.12", "new platform or Python"),
    }


def test_platform_that_gains_workers_builds_its_packages(tmp_path):
    added = diff(tmp_path, entry("a"), entry("a"), old_served={"linux-x86_64": PYTHONS})
    assert {(pl, py) for _, pl, py, _ in added} == {
        ("linux-aarch64", "3.11"),
        ("linux-aarch64", "3.12"),
    }


def test_python_that_gains_workers_builds_its_targets_and_unoffered_ones_wait(tmp_path):
    only_311 = {pl: frozenset({"3.11"}) for pl in BOTH}
    assert {(pl, py) for _, pl, py, _ in diff(tmp_path, entry("b"), entry("a"), {}, only_311)} == {
        ("linux-x86_64", "3.11"),
        ("linux-aarch64", "3.11"),
    }
    assert {(pl, py) for _, pl, py, _ in diff(tmp_path, entry("a"), entry("a"), only_311)} == {
        ("linux-x86_64", "3.12"),
        ("linux-aarch64", "3.12"),
    }


def test_skip_and_unskip(tmp_path):
    skipped = entry("a", "    skip: needs a newer glibc\n")
    assert diff(tmp_path, entry("a"), skipped) == set()
    assert {why for *_, why in diff(tmp_path, skipped, entry("a"))} == {"no longer skipped"}


def test_metadata_only_change_builds_nothing(tmp_path):
    assert diff(tmp_path, entry("a"), entry("a", "    maintainers: [octocat]\n")) == set()


def test_summary_names_the_packages(tmp_path):
    before = load_registry(write_registry(tmp_path / "old.yaml", entry("a")))
    after = load_registry(write_registry(tmp_path / "new.yaml", entry("a") + entry("b")))
    targets = added_targets(before, after, BOTH, BOTH)
    assert summary(targets) == "4 builds of 1 packages: b"
    assert summary([]) == "nothing to build"


def test_changed_test_command_is_test_built_by_a_pull_request_only(tmp_path):
    old = entry("a") + entry("b")
    new = entry("a", '    test:\n      command: ["python", "-c", "pass"]\n') + entry("b")
    assert diff(tmp_path, old, new) == set()  # merged: the published wheels stay
    before = load_registry(write_registry(tmp_path / "old.yaml", old))
    after = load_registry(write_registry(tmp_path / "new.yaml", new))
    checked = added_targets(before, after, BOTH, BOTH, settings_count=True)
    assert {(t.package, t.why) for t in checked} == {("a", "test_command changed")}
    assert len(checked) == 4
