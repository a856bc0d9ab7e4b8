"""packages.yaml: the data model, one test per validation rule, the graph, the JSON schema."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import jsonschema
import pytest
import yaml
from packaging.specifiers import SpecifierSet

from wheelfarm.problems import ValidationError
from wheelfarm.registry import depends
from wheelfarm.registry import packages as registry
from wheelfarm.registry import schema as registry_schema
from wheelfarm.registry.packages import load_registry
from wheelfarm.registry.platforms import PLATFORMS, SUPPORTED_PYTHONS

ROOT = Path(__file__).resolve().parents[1]

FULL = """\
schema: 1
packages:
  - name: MarkupSafe
    versions: ">=2.0,<4"
    prereleases: true
    platforms: [linux-x86_64, macos-arm64]
    python: ["3.11", "3.12"]
    build:
      requires: ["cython>=3"]
      env: {CFLAGS: "-O2"}
    test:
      requires: [pytest]
      command: [python, -m, pytest, --pyargs, markupsafe]
      skip_imports: [markupsafe._windows]
    depends: [Six]
    abi: minor
    maintainers: [octocat, a-b]
  - name: six
    skip: needs libfoo
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "packages.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, entries: str) -> tuple[Path, list[str]]:
    """Validate `schema: 1`, `packages:` (lines 1-2) then `entries` from line 3."""
    path = write(tmp_path, "schema: 1\npackages:\n" + dedent(entries))
    with pytest.raises(ValidationError) as e:
        load_registry(path)
    return path, [str(p) for p in e.value.problems]


def test_full_entry_and_defaults(tmp_path):
    reg = load_registry(write(tmp_path, FULL))
    assert list(reg.packages) == ["markupsafe", "six"]
    ms, six = reg.packages["markupsafe"], reg.packages["six"]
    assert ms == registry.Package(
        name="markupsafe",
        display_name="MarkupSafe",
        versions=SpecifierSet(">=2.0,<4"),
        prereleases=True,
        platforms=("linux-x86_64", "macos-arm64"),
        pythons=("3.11", "3.12"),
        build_requires=("cython>=3",),
        build_env=(("CFLAGS", "-O2"),),
        test_requires=("pytest",),
        test_command=("python", "-m", "pytest", "--pyargs", "markupsafe"),
        skip_imports=("markupsafe._windows",),
        depends=("six",),
        abi="minor",
        maintainers=("octocat", "a-b"),
        skip=None,
        line=3,
    )
    assert (six.versions, six.prereleases, six.line) == (None, False, 18)
    assert six.platforms == tuple(PLATFORMS)
    assert six.pythons == SUPPORTED_PYTHONS
    assert (six.build_requires, six.build_env, six.test_command, six.depends) == ((), (), (), ())
    assert (six.abi, six.maintainers, six.skip) == (None, (), "needs libfoo")
    assert reg.path == tmp_path / "packages.yaml"
    hash(ms)  # frozen and made of tuples: usable in sets and as keys


def test_for_platform_leaves_out_skipped_and_other_platforms(tmp_path):
    reg = load_registry(write(tmp_path, FULL))
    assert [p.name for p in reg.for_platform("linux-x86_64")] == ["markupsafe"]
    assert reg.for_platform("windows-amd64") == []  # six targets it, but is skipped


def test_explicit_latest(tmp_path):
    path = write(tmp_path, "schema: 1\npackages:\n  - {name: a, versions: latest}\n")
    assert load_registry(path).packages["a"].versions is None


def test_empty_registry(tmp_path):
    assert load_registry(write(tmp_path, "schema: 1\npackages: []\n")).packages == {}


def test_file_part_is_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "schema: 1\npackages:\n  - name: a\n    versions: '>=2.0,,'\n")
    with pytest.raises(ValidationError) as e:
        load_registry("packages.yaml")
    assert (
        str(e.value)
        == "packages.yaml:4: packages[0].versions: '>=2.0,,' is not a valid version specifier"
    )


# --- the frame: top level, schema, packages


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- name: a\n")
    with pytest.raises(ValidationError) as e:
        load_registry(path)
    assert str(e.value) == f"{path}:1: (top level): expected a mapping, got list"


def test_schema_and_packages_required(tmp_path):
    path = write(tmp_path, "other: 1\n")
    with pytest.raises(ValidationError) as e:
        load_registry(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}:1: other: unknown key 'other'",
        f"{path}:1: schema: required key is missing",
        f"{path}:1: packages: required key is missing",
    ]


def test_unsupported_schema_version(tmp_path):
    path = write(tmp_path, "schema: 2\npackages:\n  - name: 'not;checked'\n")
    with pytest.raises(ValidationError) as e:
        load_registry(path)
    assert str(e.value) == f"{path}:1: schema: unsupported schema version 2 (this farm reads 1)"


def test_schema_must_be_an_integer(tmp_path):
    path = write(tmp_path, "schema: '1'\npackages: []\n")
    with pytest.raises(ValidationError) as e:
        load_registry(path)
    assert str(e.value) == f"{path}:1: schema: expected an integer, got string"


def test_packages_must_be_a_list(tmp_path):
    path = write(tmp_path, "schema: 1\npackages: {name: a}\n")
    with pytest.raises(ValidationError) as e:
        load_registry(path)
    assert str(e.value) == f"{path}:2: packages: expected a list, got mapping"


def test_entry_must_be_a_mapping(tmp_path):
    path, found = problems(tmp_path, "  - MarkupSafe\n")
    assert found == [f"{path}:3: packages[0]: expected a mapping, got string"]


# --- keys and types


def test_unknown_key_with_suggestion(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    versoins: latest\n")
    assert found == [
        f"{path}:4: packages[0].versoins: unknown key 'versoins' (did you mean 'versions'?)"
    ]


def test_unknown_key_without_suggestion(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    colour: blue\n")
    assert found == [f"{path}:4: packages[0].colour: unknown key 'colour'"]


def test_unknown_nested_key(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    build:\n      requirse: [x]\n")
    assert found == [
        f"{path}:5: packages[0].build.requirse: unknown key 'requirse' (did you mean 'requires'?)"
    ]


def test_missing_name(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n  - versions: latest\n")
    assert found == [f"{path}:4: packages[1].name: required key is missing"]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "12", "expected a string, got int 12 (put it in quotes)"),
        ("versions", "2.0", "expected a string, got float 2.0 (put it in quotes)"),
        ("prereleases", "'no'", "expected true or false, got string"),
        ("platforms", "linux-x86_64", "expected a list, got string"),
        ("build", "[x]", "expected a mapping, got list"),
        ("skip", "", "expected a string, got null"),
    ],
)
def test_wrong_types(tmp_path, field, value, message):
    name = "" if field == "name" else "  - name: a\n"
    entry = f"{name}  - {field}: {value}\n" if field == "name" else f"{name}    {field}: {value}\n"
    path, found = problems(tmp_path, entry)
    line = 3 if field == "name" else 4
    assert found == [f"{path}:{line}: packages[0].{field}: {message}"]


# --- names


@pytest.mark.parametrize("name", ["foo.", "-foo", "foo_", "fóo"])
def test_invalid_project_name(tmp_path, name):
    path, found = problems(tmp_path, f"  - name: '{name}'\n")
    assert found == [f"{path}:3: packages[0].name: '{name}' is not a valid PEP 508 project name"]


@pytest.mark.parametrize(
    "name, char", [("foo;rm", ";"), ("foo bar", " "), ("$(id)", "$"), ("a|b", "|"), ("x`y`", "`")]
)
def test_shell_metacharacter_in_name(tmp_path, name, char):
    path, found = problems(tmp_path, f"  - name: '{name}'\n")
    assert found == [
        f"{path}:3: packages[0].name: {name!r} contains the shell metacharacter {char!r}"
    ]


def test_duplicate_after_normalisation(tmp_path):
    path, found = problems(tmp_path, "  - name: Foo_Bar\n  - name: six\n  - name: foo-bar\n")
    assert found == [
        f"{path}:5: packages[2].name: duplicate of packages[0] ('Foo_Bar', line 3) "
        "after PEP 503 normalisation"
    ]


def test_exact_duplicate(tmp_path):
    path, found = problems(tmp_path, "  - name: six\n  - name: six\n")
    assert found == [f"{path}:4: packages[1].name: duplicate of packages[0] ('six', line 3)"]


# --- versions, platforms, pythons


@pytest.mark.parametrize("spec", [">=2.0,,", ">>2", "latest-ish", "==2.0,<"])
def test_bad_specifier(tmp_path, spec):
    path, found = problems(tmp_path, f"  - name: a\n    versions: '{spec}'\n")
    assert found == [f"{path}:4: packages[0].versions: {spec!r} is not a valid version specifier"]


def test_bare_version_gets_a_hint(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    versions: '2.0'\n")
    assert found == [
        f"{path}:4: packages[0].versions: '2.0' is not a valid version specifier "
        "(did you mean '==2.0'?)"
    ]


def test_unknown_platform_lists_known_ones(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    platforms: [linux-x86_64, linux-x86]\n")
    known = ", ".join(PLATFORMS)
    assert found == [
        f"{path}:4: packages[0].platforms[1]: unknown platform 'linux-x86' (known: {known})"
    ]


def test_unsupported_python(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    python:\n      - '3.12'\n      - '2.7'\n")
    supported = ", ".join(SUPPORTED_PYTHONS)
    assert found == [
        f"{path}:6: packages[0].python[1]: "
        f"unsupported Python version '2.7' (supported: {supported})"
    ]


def test_unquoted_python_version_is_a_float(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    python: [3.10]\n")
    assert found == [
        f"{path}:4: packages[0].python[0]: expected a string, got float 3.1 (put it in quotes)"
    ]


@pytest.mark.parametrize(
    "field, value",
    [("platforms", "[]"), ("python", "[]"), ("test", "{command: []}")],
)
def test_empty_lists_refused(tmp_path, field, value):
    path, found = problems(tmp_path, f"  - name: a\n    {field}: {value}\n")
    where = "test.command" if field == "test" else field
    assert found == [f"{path}:4: packages[0].{where}: must not be an empty list"]


# --- build and test


@pytest.mark.parametrize("section", ["build", "test"])
def test_bad_requirement(tmp_path, section):
    path, found = problems(
        tmp_path, f"  - name: a\n    {section}:\n      requires: [ok, 'cython>>3']\n"
    )
    [problem] = found
    assert problem.startswith(
        f"{path}:5: packages[0].{section}.requires[1]: "
        "'cython>>3' is not a valid PEP 508 requirement: "
    )
    assert "\n" not in problem


def test_requirement_with_marker_allowed(tmp_path):
    text = "schema: 1\npackages:\n  - name: a\n"
    text += "    build: {requires: ['tomli; python_version < \"3.11\"']}\n"
    reg = load_registry(write(tmp_path, text))
    assert reg.packages["a"].build_requires == ('tomli; python_version < "3.11"',)


def test_test_command_as_shell_string(tmp_path):
    path, found = problems(
        tmp_path, "  - name: a\n    test:\n      command: pytest -x && rm -rf /\n"
    )
    assert found == [
        f"{path}:5: packages[0].test.command: must be a list of arguments, not a shell string"
    ]


def test_test_command_items_must_be_strings(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    test: {command: [python, [x]]}\n")
    assert found == [f"{path}:4: packages[0].test.command[1]: expected a string, got list"]


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "A.B", ""])
def test_bad_env_name(tmp_path, name):
    path, found = problems(tmp_path, f"  - name: a\n    build:\n      env:\n        '{name}': x\n")
    assert found == [
        f"{path}:6: packages[0].build.env.{name}: {name!r} is not a valid environment variable name"
    ]


def test_env_value_must_be_a_string(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    build:\n      env: {_OK: '1', JOBS: 4}\n")
    assert found == [
        f"{path}:5: packages[0].build.env.JOBS: expected a string, got int 4 (put it in quotes)"
    ]


def test_env_must_be_a_mapping(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    build: {env: [CFLAGS=-O2]}\n")
    assert found == [f"{path}:4: packages[0].build.env: expected a mapping, got list"]


# --- depends and cycles


def test_depends_on_unknown_package(tmp_path):
    path, found = problems(tmp_path, "  - name: six\n  - name: a\n    depends: [sxi]\n")
    assert found == [
        f"{path}:5: packages[1].depends[0]: "
        "'sxi' is not a package in this registry (did you mean 'six'?)"
    ]


def test_depends_compared_normalised(tmp_path):
    text = "schema: 1\npackages:\n  - name: Foo.Bar\n  - name: a\n    depends: [foo_bar]\n"
    assert load_registry(write(tmp_path, text)).packages["a"].depends == ("foo-bar",)


def test_depends_on_itself(tmp_path):
    path, found = problems(tmp_path, "  - name: Foo\n    depends: [foo]\n")
    assert found == [f"{path}:4: packages[0].depends[0]: a package cannot depend on itself"]


def test_dependency_cycle_printed_once(tmp_path):
    path, found = problems(
        tmp_path,
        """\
          - name: b
            depends: [c]
          - name: a
            depends: [b]
          - name: c
            depends: [a]
          - name: d
            depends: [a]
        """,
    )
    assert found == [f"{path}:4: packages[0].depends: dependency cycle: b -> c -> a -> b"]


def test_two_cycles_each_reported(tmp_path):
    path, found = problems(
        tmp_path,
        """\
          - {name: a, depends: [b]}
          - {name: b, depends: [a, c]}
          - {name: c, depends: [d]}
          - {name: d, depends: [c]}
        """,
    )
    assert found == [
        f"{path}:3: packages[0].depends: dependency cycle: a -> b -> a",
        f"{path}:5: packages[2].depends: dependency cycle: c -> d -> c",
    ]


# --- abi, maintainers, skip


def test_bad_abi(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    abi: sometimes\n")
    assert found == [
        f"{path}:4: packages[0].abi: "
        "unknown abi 'sometimes' (one of: major, minor, every-release, none)"
    ]


@pytest.mark.parametrize("abi", registry.ABI_KINDS)
def test_every_abi_value_allowed(tmp_path, abi):
    text = f"schema: 1\npackages:\n  - {{name: a, abi: {abi}}}\n"
    assert load_registry(write(tmp_path, text)).packages["a"].abi == abi


def test_run_exports(tmp_path):
    text = (
        "schema: 1\npackages:\n  - name: numpy\n    abi: major\n"
        "    run_exports: '>=1.25,<{next_major}'\n  - {name: b}\n"
    )
    reg = load_registry(write(tmp_path, text))
    assert reg.packages["numpy"].run_exports == ">=1.25,<{next_major}"
    assert reg.packages["b"].run_exports is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("'>={verison}'", "unknown placeholder {verison} in '>={verison}' (known: {version}, "),
        ("'at least {version}'", "'at least {version}' is not a version specifier"),
        ("'>={version'", "unbalanced braces in '>={version'"),
        ("['>=1']", "expected a string, got list"),
    ],
)
def test_bad_run_exports(tmp_path, value, message):
    path, found = problems(tmp_path, f"  - name: a\n    abi: major\n    run_exports: {value}\n")
    assert len(found) == 1 and found[0].startswith(f"{path}:5: packages[0].run_exports: ")
    assert message in found[0]


def test_run_exports_with_abi_none(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    abi: none\n    run_exports: '>=1'\n")
    assert found == [
        f"{path}:5: packages[0].run_exports: abi: none means nothing is built against this "
        "package's ABI: remove run_exports or set abi"
    ]


@pytest.mark.parametrize(
    "handle", ["-octocat", "octo--cat", "octocat-", "a" * 40, "octo_cat", "@octocat"]
)
def test_bad_maintainer_handle(tmp_path, handle):
    path, found = problems(tmp_path, f"  - name: a\n    maintainers: [ok, '{handle}']\n")
    assert found == [
        f"{path}:4: packages[0].maintainers[1]: {handle!r} is not a valid GitHub handle"
    ]


def test_good_maintainer_handles(tmp_path):
    text = "schema: 1\npackages:\n  - {name: a, maintainers: [a, A-b-C, x1, " + "b" * 39 + "]}\n"
    assert len(load_registry(write(tmp_path, text)).packages["a"].maintainers) == 4


def test_blank_skip_reason(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    skip: '  '\n")
    assert found == [f"{path}:4: packages[0].skip: must say why the package is skipped"]


# --- all at once, and scale


def test_all_problems_reported_in_file_order(tmp_path):
    path, found = problems(
        tmp_path,
        """\
          - name: a
            depends: [zzz]
            versions: ">=2.0,,"
          - name: b;c
          - name: A
          - name: d
            platforms: [plan9]
        """,
    )
    assert [line.split(": ")[0] for line in found] == [f"{path}:{n}" for n in (4, 5, 6, 7, 9)]


def test_yaml_problems_come_through(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    name: b\n")
    assert found == [f"{path}:4: packages[0].name: duplicate key 'name' (first on line 3)"]


def test_fifteen_thousand_packages_load(tmp_path):
    lines = ["schema: 1", "packages:"]
    for i in range(15_000):
        lines += [
            f"  - name: package-{i}",
            f'    versions: ">=1.{i % 10},<{i % 7 + 3}"',
            "    platforms: [linux-x86_64, macos-arm64]",
            '    python: ["3.12", "3.13"]',
            '    build: {requires: ["cython>=3"], env: {CFLAGS: "-O2"}}',
            f"    depends: [package-{i - 1}]" if i else "    depends: []",
            "    maintainers: [octocat]",
        ]
    path = write(tmp_path, "\n".join(lines) + "\n")
    reg = load_registry(path)
    assert len(reg.packages) == 15_000
    assert reg.packages["package-14999"].depends == ("package-14998",)
    assert reg.packages["package-14999"].line == 3 + 7 * 14_999


# --- graph


def test_graph_edges(tmp_path):
    reg = load_registry(write(tmp_path, FULL))
    edges = depends.forward_edges(reg.packages)
    assert edges == {"markupsafe": ("six",), "six": ()}
    assert depends.reverse_edges(edges) == {"markupsafe": [], "six": ["markupsafe"]}


def test_find_cycles():
    assert depends.find_cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert depends.find_cycles({"a": ["b"], "b": ["c"], "c": ["a"]}) == [["a", "b", "c"]]
    assert depends.find_cycles({"a": ["a"]}) == [["a"]]
    assert depends.find_cycles({"a": ["b", "x"], "b": []}) == []  # unknown targets are ignored


def test_find_cycles_at_100000_nodes_without_recursion():
    n = 100_000
    chain = {str(i): [str(i + 1)] for i in range(n)}
    assert depends.find_cycles(chain) == []
    chain[str(n - 1)] = ["0"]
    [cycle] = depends.find_cycles(chain)
    assert len(cycle) == n


# --- JSON schema


def test_shipped_json_schema_is_the_generated_one():
    shipped = json.loads((ROOT / "packages.schema.json").read_text(encoding="utf-8"))
    assert shipped == registry_schema.json_schema(), (
        "regenerate: python -m wheelfarm.registry.schema > packages.schema.json"
    )


def test_json_schema_accepts_a_valid_registry_and_refuses_mistakes():
    schema = registry_schema.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(yaml.safe_load(FULL))) == []
    for bad in (
        {"name": "a", "platforms": ["plan9"]},
        {"name": "a", "python": ["2.7"]},
        {"name": "a", "versoins": "latest"},
        {"name": "foo;rm"},
        {"name": "a", "abi": "sometimes"},
        {"name": "a", "maintainers": ["-x"]},
        {"name": "a", "test": {"command": "pytest"}},
        {"name": "a", "build": {"env": {"1X": "y"}}},
        {"name": "a", "skip": " "},
        {"name": "a", "run_exports": ">={verison}"},
        {"name": "a", "run_exports": ">={version"},
        {"versions": "latest"},
    ):
        assert not validator.is_valid({"schema": 1, "packages": [bad]}), bad
    assert not validator.is_valid({"schema": 2, "packages": []})
    good = {"name": "numpy", "run_exports": ">=1.25,<{next_major}"}
    assert validator.is_valid({"schema": 1, "packages": [good]})


def test_skip_imports_must_be_module_names(tmp_path):
    path, found = problems(
        tmp_path,
        """\
        - name: a
          test:
            skip_imports: [a.ok, "a/b.py"]
        """,
    )
    assert found == [
        f"{path}:5: packages[0].test.skip_imports[1]: 'a/b.py' is not a dotted module name"
    ]


# --- values that can only fail


@pytest.mark.parametrize(
    "spec", [">=1,<0", ">1,<=1", "==1.0,>=2", "~=2.2,<2", "==1.*,>=2", ">=1,<1", "~=2.2,==3.*"]
)
def test_specifier_no_version_can_satisfy(tmp_path, spec):
    path, found = problems(tmp_path, f"  - name: a\n    versions: '{spec}'\n")
    assert found == [
        f"{path}:4: packages[0].versions: {spec!r} admits no version: its bounds do not overlap"
    ]


@pytest.mark.parametrize(
    "spec",
    ["<=1,>=1", ">=1.0,<1.0.post1", ">=1.0a1,<1.0", "==1.0.*,<1.0", "==1.0+abc,<=1.0", ">=2,<4"],
)
def test_narrow_but_satisfiable_specifiers_pass(tmp_path, spec):
    text = f"schema: 1\npackages:\n  - name: a\n    versions: '{spec}'\n"
    assert load_registry(write(tmp_path, text)).packages["a"].versions == SpecifierSet(spec)


def test_satisfiable_is_never_wrong_when_it_says_no():
    # every version a spec admits proves it satisfiable: random specs over a small
    # alphabet of versions, checked against every version of that alphabet
    import random

    rng = random.Random(15)
    versions = ["0", "1", "1.0.post1", "1.0a1", "1.0.dev0", "1.1", "1.4.5", "1.5", "2", "2.2"]
    versions += ["2.2.1", "3", "1!1.0", "1.0+abc"]
    ops = ["==", "!=", ">=", "<=", ">", "<", "~="]
    refused = 0
    for _ in range(3000):
        clauses = []
        for _ in range(rng.randint(1, 3)):
            op, v = rng.choice(ops), rng.choice(versions)
            if op == "~=" and ("." not in v or "+" in v):
                continue
            if "+" in v and op not in ("==", "!="):
                continue
            if op in ("==", "!=") and rng.random() < 0.3 and "+" not in v:
                v = v.split("a")[0].split(".dev")[0].split(".post")[0] + ".*"
            clauses.append(op + v)
        if not clauses:
            continue
        spec = SpecifierSet(",".join(clauses))
        if not registry.satisfiable(spec):
            refused += 1
            admitted = [v for v in versions if spec.contains(v, prereleases=True)]
            assert admitted == [], (str(spec), admitted)
    assert refused > 100  # the property was exercised


def test_empty_program_refused(tmp_path):
    path, found = problems(tmp_path, "  - name: a\n    test: {command: ['', -x]}\n")
    assert found == [
        f"{path}:4: packages[0].test.command[0]: the program (its first item) must not be empty"
    ]


def test_nul_in_command_refused(tmp_path):
    path, found = problems(tmp_path, '  - name: a\n    test: {command: [python, "a\\0b"]}\n')
    assert found == [f"{path}:4: packages[0].test.command[1]: contains a NUL character"]


@pytest.mark.parametrize("section", ["build", "test"])
def test_direct_url_requirement_refused(tmp_path, section):
    url = "evil @ https://example.org/evil-1.0.tar.gz"
    path, found = problems(
        tmp_path, f"  - name: a\n    {section}:\n      requires: [ok, '{url}']\n"
    )
    assert found == [
        f"{path}:5: packages[0].{section}.requires[1]: {url!r} is a direct URL requirement: "
        "name a project and versions instead"
    ]


def test_overlong_name_refused(tmp_path):
    name = "a" * 300
    path, found = problems(tmp_path, f"  - name: {name}\n")
    assert found == [
        f"{path}:3: packages[0].name: {name[:20]!r}... is 300 characters long (at most 100)"
    ]
    text = f"schema: 1\npackages:\n  - name: {'b' * 100}\n"
    assert list(load_registry(write(tmp_path, text)).packages) == ["b" * 100]


def test_a_problem_is_one_line_whatever_the_key(tmp_path):
    path, found = problems(tmp_path, '  - name: a\n    "x\\ny": 1\n')
    assert found == [f"{path}:4: packages[0].x\\ny: unknown key 'x\\ny'"]
