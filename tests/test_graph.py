"""wheelfarm.registry.graph: what is downstream (descendants, subgraph_parents), plan(),
undeclared deps. The waves and blocking of a cascade: test_scheduler.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from wheelfarm.cascade.plan import plan
from wheelfarm.registry.graph import Graph, UnknownPackage, undeclared_dependencies
from wheelfarm.registry.packages import load_registry

DIAMOND = {"b": ("a",), "c": ("a",), "d": ("b", "c")}
# a <- b <- c <- d, plus e on a and f on e and c: four levels below a
FOUR_LEVELS = {
    "a": (),
    "b": ("a",),
    "c": ("b",),
    "d": ("c",),
    "e": ("a",),
    "f": ("e", "c"),
}


def test_diamond_builds_d_once_after_b_and_c():
    graph = Graph(DIAMOND)
    cascade = graph.descendants(["a"])
    assert cascade == {"b", "c", "d"}
    assert graph.subgraph_parents(cascade) == {"b": set(), "c": set(), "d": {"b", "c"}}


def test_subgraph_parents_only_name_parents_in_the_set():
    graph = Graph(FOUR_LEVELS)
    assert graph.subgraph_parents({"b", "d", "e", "f"}) == {
        "b": set(),
        "d": set(),
        "e": set(),
        "f": {"e"},
    }


def test_descendants():
    graph = Graph(FOUR_LEVELS)
    assert graph.descendants(["c"]) == {"d", "f"}
    assert graph.descendants(["e"]) == {"f"}
    assert graph.descendants(["d"]) == set()
    assert graph.descendants(["b", "e"]) == {"c", "d", "f"}
    # a root downstream of another root is still a root, so not a descendant
    assert graph.descendants(["a", "c"]) == {"b", "d", "e", "f"}
    assert graph.children("a") == ["b", "e"]


def test_unknown_names_raise():
    graph = Graph(DIAMOND)
    with pytest.raises(KeyError, match="'x' is not in the graph"):
        graph.descendants(["x"])
    with pytest.raises(KeyError, match="'x'"):
        graph.subgraph_parents({"b", "x"})


def test_names_only_depended_on_become_nodes():
    graph = Graph({"b": ("a",)})
    assert "a" in graph and len(graph) == 2
    assert graph.descendants(["a"]) == {"b"}


def test_descendants_in_a_graph_with_a_cycle():
    graph = Graph({"a": ("b", "z"), "b": ("c",), "c": ("a",), "d": ("a",), "x": ()})
    assert not graph.acyclic
    assert graph.descendants(["a"]) == {"b", "c", "d"}
    assert graph.descendants(["z"]) == {"a", "b", "c", "d"}


def test_long_chains_do_not_recurse():
    n = 20_000  # far past the recursion limit
    deps = {f"p{i}": (f"p{i - 1}",) for i in range(1, n)}
    graph = Graph(deps)
    assert len(graph.descendants(["p0"])) == n - 1


def random_dag(rnd: random.Random, n: int) -> dict[str, tuple[str, ...]]:
    names = [f"n{i:03d}" for i in range(n)]
    deps = {
        name: tuple(rnd.sample(names[:i], min(i, rnd.randrange(4)))) for i, name in enumerate(names)
    }
    items = list(deps.items())
    rnd.shuffle(items)  # so the file order is not a topological one
    return dict(items)


@pytest.mark.parametrize("seed", range(20))
def test_fast_paths_agree_with_the_definitions(seed):
    rnd = random.Random(seed)
    deps = random_dag(rnd, 60)
    graph = Graph(deps)
    assert graph.acyclic
    roots = rnd.sample(sorted(deps), 2)
    downstream = {n for n in deps if n not in roots and reaches(deps, n, set(roots))}
    assert graph.descendants(roots) == downstream


def reaches(deps: dict[str, tuple[str, ...]], node: str, targets: set[str]) -> bool:
    """Whether `node` depends on one of `targets`, transitively."""
    pending, seen = [node], set()
    while pending:
        for parent in deps.get(pending.pop(), ()):
            if parent in targets:
                return True
            if parent not in seen:
                seen.add(parent)
                pending.append(parent)
    return False


def test_a_cycle_elsewhere_takes_the_slow_paths_with_the_same_answers():
    graph = Graph({**FOUR_LEVELS, "x": ("y",), "y": ("x",)})
    assert not graph.acyclic
    assert graph.descendants(["a"]) == {"b", "c", "d", "e", "f"}
    assert graph.descendants(["b"]) == {"c", "d", "f"}


REGISTRY = """\
schema: 1
packages:
  - name: MarkupSafe
    platforms: [linux-x86_64, macos-arm64]
  - name: jinja2
    depends: [markupsafe]
    platforms: [linux-x86_64, macos-arm64, windows-amd64]
    python: ["3.12", "3.13"]
  - name: Werkzeug
    depends: [MarkupSafe]
    platforms: [linux-x86_64]
    python: ["3.12"]
  - name: flask
    depends: [jinja2, werkzeug]
    python: ["3.11", "3.12", "3.13"]
  - name: legacy
    depends: [markupsafe]
    skip: needs libfoo
  - name: after-legacy
    depends: [legacy]
    platforms: [linux-aarch64]
    python: ["3.12"]
  - name: six
  - name: requests
  - name: importlib_metadata
  - name: attrs
"""


def write_registry(tmp_path: Path, text: str = REGISTRY) -> Path:
    path = tmp_path / "packages.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_plan_counts_builds_per_platform(tmp_path):
    registry = load_registry(write_registry(tmp_path))
    cascade = plan(registry, "MarkupSafe")
    assert cascade.root == "markupsafe"
    # legacy is skipped: not built and not waited for, but after-legacy still rebuilds
    assert cascade.waves == [["after-legacy", "jinja2", "werkzeug"], ["flask"]]
    assert cascade.skipped == ["legacy"]
    assert cascade.packages == 4
    assert cascade.per_platform == {
        "linux-x86_64": 3,  # jinja2, werkzeug, flask
        "linux-aarch64": 2,  # flask, after-legacy
        "macos-arm64": 2,  # jinja2, flask
        "macos-x86_64": 1,  # flask
        "windows-amd64": 2,  # jinja2, flask
    }
    assert cascade.builds_per_platform == {
        "linux-x86_64": 2 + 1 + 3,
        "linux-aarch64": 3 + 1,
        "macos-arm64": 2 + 3,
        "macos-x86_64": 3,
        "windows-amd64": 2 + 3,
    }
    # jinja2 3 platforms x 2 Pythons, werkzeug 1 x 1, flask 5 x 3, after-legacy 1 x 1
    assert cascade.builds == 6 + 1 + 15 + 1


def test_plan_of_a_leaf_is_empty(tmp_path):
    registry = load_registry(write_registry(tmp_path))
    cascade = plan(registry, "flask")
    assert (cascade.waves, cascade.skipped, cascade.builds) == ([], [], 0)
    assert set(cascade.per_platform.values()) == {0}


def test_plan_of_an_unknown_package(tmp_path):
    registry = load_registry(write_registry(tmp_path))
    with pytest.raises(
        UnknownPackage, match=r"'flsk' is not a package in .*\(did you mean 'flask'\?\)"
    ):
        plan(registry, "flsk")


REQUIRES_DIST = [
    "MarkupSafe>=2.0",  # declared
    'Babel>=2.7; extra == "i18n"',  # only with an extra: not a runtime dependency
    'attrs; extra == "tests" or python_version >= "3.12"',
    'six; python_version < "3.12"',
    'importlib_metadata; python_version < "3.10"',
    "Requests[socks]>=2",
    "requests",  # listed twice, reported once
    "not-in-the-registry>=1",
    "jinja2",  # itself
    "this is not a requirement",
]


def test_undeclared_dependencies(tmp_path):
    registry = load_registry(write_registry(tmp_path))
    assert undeclared_dependencies(registry, "Jinja2", REQUIRES_DIST, "3.11") == [
        "six",
        "requests",
    ]
    assert undeclared_dependencies(registry, "jinja2", REQUIRES_DIST, "3.12") == [
        "attrs",
        "requests",
    ]
    assert undeclared_dependencies(registry, "jinja2", REQUIRES_DIST, "3.9") == [
        "six",
        "importlib-metadata",
        "requests",
    ]
    assert undeclared_dependencies(registry, "jinja2", ["markupsafe"], "3.12") == []


def test_undeclared_dependencies_judge_the_full_version_by_the_given_python(tmp_path):
    registry = load_registry(write_registry(tmp_path))
    requires = ['six; python_full_version >= "3.14"']
    assert undeclared_dependencies(registry, "flask", requires, "3.14") == ["six"]
    assert undeclared_dependencies(registry, "flask", requires, "3.10") == []


def test_undeclared_dependencies_for_another_platform(tmp_path):
    registry = load_registry(write_registry(tmp_path))
    requires = ['six; sys_platform == "win32"', 'attrs; sys_platform != "win32"']
    windows = {"sys_platform": "win32"}
    assert undeclared_dependencies(registry, "flask", requires, "3.12", windows) == ["six"]
    linux = {"sys_platform": "linux"}
    assert undeclared_dependencies(registry, "flask", requires, "3.12", linux) == ["attrs"]


def test_undeclared_dependencies_of_an_unknown_package(tmp_path):
    registry = load_registry(write_registry(tmp_path))
    with pytest.raises(UnknownPackage, match="'nope' is not a package"):
        undeclared_dependencies(registry, "nope", [], "3.12")
