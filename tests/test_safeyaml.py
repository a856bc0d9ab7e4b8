"""The hostile-input-safe YAML loader: plain data, line numbers, and everything it refuses."""

from __future__ import annotations

import time
from pathlib import Path
from textwrap import dedent

import pytest

from wheelfarm.problems import Problem, ValidationError
from wheelfarm.registry import safeyaml


def write(tmp_path: Path, text: str | bytes, name: str = "f.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(dedent(text), encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def refused(path: Path) -> list[str]:
    with pytest.raises(ValidationError) as e:
        safeyaml.load(path)
    return [str(p) for p in e.value.problems]


def test_plain_data_and_yaml_1_1_scalars(tmp_path):
    path = write(
        tmp_path,
        """\
        s: text
        quoted: "2.0"
        versions: 2.0
        n: 12
        hex: 0x10
        yes_: yes
        off_: off
        nothing: ~
        empty:
        date: 2024-01-01
        merge: <<
        list: [a, 1, true]
        """,
    )
    assert safeyaml.load(path).data == {
        "s": "text",
        "quoted": "2.0",
        "versions": 2.0,  # a float: the registry then complains it wants a string
        "n": 12,
        "hex": 16,
        "yes_": True,
        "off_": False,
        "nothing": None,
        "empty": None,
        "date": "2024-01-01",  # no timestamps: only str/int/float/bool/null
        "merge": "<<",  # no merge keys
        "list": ["a", 1, True],
    }


def test_line_of_any_path(tmp_path):
    path = write(
        tmp_path,
        """\
        schema: 1
        packages:
          - name: a
            versions:
              - x
              - y
          - name: b

            depends: [a]
        """,
    )
    doc = safeyaml.load(path)
    assert doc.line(()) == 1
    assert doc.line(("schema",)) == 1
    assert doc.line(("packages",)) == 2
    assert doc.line(("packages", 0)) == 3
    assert doc.line(("packages", 0, "versions")) == 4  # the key's line, not the list's
    assert doc.line(("packages", 0, "versions", 1)) == 6
    assert doc.line(("packages", 1, "depends")) == 9
    assert doc.line(("packages", 1, "depends", 0)) == 9
    # a path that does not exist: the line of its deepest existing ancestor
    assert doc.line(("packages", 1, "skip")) == 7
    assert doc.line(("packages", 7, "name")) == 2


def test_empty_file_is_none(tmp_path):
    doc = safeyaml.load(write(tmp_path, ""))
    assert doc.data is None
    assert doc.line(("packages",)) == 1


def test_alias_bomb_refused_without_expanding(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert path.stat().st_size < 1000  # expands to 9**10 strings if anything follows the aliases
    start = time.monotonic()
    problems = refused(path)
    assert time.monotonic() - start < 2
    assert problems[0] == f"{path}:1: a0: YAML anchors and aliases are not allowed (&a0)"
    assert f"{path}:10: a9[8]: YAML anchors and aliases are not allowed (*a8)" in problems


def test_anchor_alone_refused(tmp_path):
    path = write(tmp_path, "a: 1\nb: &x 2\n")
    assert refused(path) == [f"{path}:2: b: YAML anchors and aliases are not allowed (&x)"]


def test_python_object_tag_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = write(
        tmp_path,
        f"""\
        ok: 1
        x: !!python/object/apply:os.system ["touch {marker}"]
        """,
    )
    assert refused(path) == [f"{path}:2: x: the tag !!python/object/apply:os.system is not allowed"]
    assert not marker.exists()


@pytest.mark.parametrize(
    "value, tag",
    [
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!set {a, b}", "!!set"),
        ("!!timestamp 2024-01-01", "!!timestamp"),
        ("!!map [a]", "!!map"),
        ("!custom x", "!custom"),
    ],
)
def test_other_tags_refused(tmp_path, value, tag):
    path = write(tmp_path, f"a: 1\nb: {value}\n")
    assert refused(path) == [f"{path}:2: b: the tag {tag} is not allowed"]


def test_standard_tags_allowed(tmp_path):
    path = write(tmp_path, "a: !!str 2.0\nb: !!int '3'\nc: !!seq [x]\nd: !!map {k: v}\n")
    assert safeyaml.load(path).data == {"a": "2.0", "b": 3, "c": ["x"], "d": {"k": "v"}}


def test_file_over_size_limit_refused_before_parsing(tmp_path):
    # Invalid YAML: had it been parsed, the message would be a syntax error.
    path = write(tmp_path, b"[" * (safeyaml.MAX_BYTES + 1))
    assert refused(path) == [f"{path}: (file): larger than 16 MiB; refusing to parse it"]


def test_file_at_size_limit_is_parsed(tmp_path):
    path = write(tmp_path, b"a: 1\n" + b"#" * (safeyaml.MAX_BYTES - 6) + b"\n")
    assert safeyaml.load(path).data == {"a": 1}


def test_not_utf8(tmp_path):
    path = write(tmp_path, b"a: 1\nb: caf\xe9\n")
    assert refused(path) == [f"{path}:2: (file): not valid UTF-8 (byte 0xe9)"]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert refused(path) == [f"{path}: (file): cannot read: No such file or directory"]


def test_syntax_error_has_line(tmp_path):
    path = write(tmp_path, "a: 1\nb: [1, 2\nc: 3\n")
    [problem] = refused(path)
    assert problem.startswith(f"{path}:3: (yaml): invalid YAML: ")


def test_control_character_refused(tmp_path):
    path = write(tmp_path, b'a: 1\nb: "x\x01"\n')
    assert refused(path) == [f"{path}:2: (yaml): invalid YAML: control characters are not allowed"]


def test_duplicate_keys_refused(tmp_path):
    path = write(
        tmp_path,
        """\
        a: 1
        b:
          c: 1
          c: 2
        a: 3
        """,
    )
    assert refused(path) == [
        f"{path}:4: b.c: duplicate key 'c' (first on line 3)",
        f"{path}:5: a: duplicate key 'a' (first on line 1)",
    ]


@pytest.mark.parametrize(
    "key, shown", [("1", "1"), ("yes", "True"), ("null", "None"), ("2.5", "2.5")]
)
def test_non_string_keys_refused(tmp_path, key, shown):
    path = write(tmp_path, f"a: 1\n{key}: x\n")
    assert refused(path) == [
        f"{path}:2: (top level): mapping key {shown} is not a string (quote it)"
    ]


def test_collection_key_refused(tmp_path):
    path = write(tmp_path, "a:\n  ? [x, y]\n  : z\n")
    assert refused(path) == [f"{path}:2: a: mapping key list is not a string (quote it)"]


def test_quoted_number_key_allowed(tmp_path):
    assert safeyaml.load(write(tmp_path, '"1": x\n')).data == {"1": "x"}


def test_deep_nesting_refused_without_crashing(tmp_path):
    # 100,000 levels crash (segfault) libyaml's recursive composer; we must never get there.
    # Who says no (PyYAML's own depth limit, or ours) is not the point: one problem, with
    # the file and the line, and no crash.
    path = write(tmp_path, b"a: " + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    (problem,) = refused(path)
    assert problem.startswith(f"{path}:1: ")
    assert "nest" in problem


@pytest.mark.parametrize("depth", [65, 200])
def test_nesting_past_the_limit_refused_at_its_line(tmp_path, depth):
    flow = write(tmp_path, b"a: " + b"[" * depth + b"]" * depth + b"\n")
    assert refused(flow) == [f"{flow}:1: a[0][0][0]{'[0]' * 60}: nested more than 64 levels deep"]
    # block style: the refusal names the line where the 65th level opens
    block = tmp_path / "block.yaml"
    block.write_bytes(b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(depth)))
    (problem,) = refused(block)
    assert problem.startswith(f"{block}:65: a") and problem.endswith(
        "nested more than 64 levels deep"
    )


def test_nesting_within_limit_allowed(tmp_path):
    path = write(tmp_path, "[" * 64 + "]" * 64 + "\n")
    assert safeyaml.load(path).data is not None


def test_only_one_document(tmp_path):
    path = write(tmp_path, "a: 1\n---\nb: 2\n")
    assert refused(path) == [f"{path}:2: (top level): only one YAML document is allowed"]


def test_every_problem_reported(tmp_path):
    path = write(tmp_path, "a: !!binary eA==\nb: &x 1\na: 2\n")
    assert len(refused(path)) == 3


def test_problem_str_and_validation_error():
    assert str(Problem("p.yaml", 3, "a.b", "bad")) == "p.yaml:3: a.b: bad"
    assert str(Problem("p.yaml", None, "(file)", "bad")) == "p.yaml: (file): bad"
    error = ValidationError([Problem("p.yaml", 1, "a", "x"), Problem("p.yaml", 2, "b", "y")])
    assert str(error) == "p.yaml:1: a: x\np.yaml:2: b: y"
    assert len(error.problems) == 2
