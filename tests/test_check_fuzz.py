"""A fuzz test of `wheelfarm check`: the shipped registry, mutated at random (fields,
types, lengths, bytes), is either accepted or refused with `file:line: field: message`
lines, never a traceback. Fixed seed and number of cases, so a failure replays."""

from __future__ import annotations

import io
import random
import re
import shutil
from pathlib import Path

import yaml

from wheelfarm.cli.check import run_check

ROOT = Path(__file__).resolve().parents[1]
SEED = 15
CASES = 600
KEYS = ["name", "versions", "prereleases", "platforms", "python", "build", "test"]
KEYS += ["depends", "abi", "maintainers", "skip", "requires", "env", "command", "skip_imports"]
STRINGS = [
    "",
    " ",
    "latest",
    ">=1,<0",
    "==1.*,>=2",
    "~=2",
    "evil @ https://example.org/e.tar.gz",
    "linux-x86_64",
    "3.12",
    "a\nb",
    "a\x00b",
    "\u202e\u0301",
    "../../etc/passwd",
    "$(rm -rf /)",
    "x" * 101,
    "y" * 5000,
    "-" * 40,
]


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(11 if depth < 3 else 8)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(0, 40)))
    if kind == 2:
        return rng.choice([0, -1, 1, 2**70, 3.10, float("inf"), float("nan")])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return rng.choice(KEYS)
    if kind == 5:
        return "a" * rng.choice([1, 99, 100, 101, 300, 70_000])
    if kind == 6:
        return rng.choice(["idna", "six", "requests", "Six", "six_"])
    if kind == 7:
        return []
    if kind in (8, 9):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randrange(0, 3))}


def mutate_data(rng: random.Random, data: dict) -> None:
    """Change one place of the parsed registry: a value, a type, a key, an entry."""
    entries = data.get("packages")
    dicts = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    if not dicts:
        data[rng.choice(["schema", "packages", "extra"])] = random_value(rng)
        return
    entry = target = rng.choice(dicts)
    section = rng.choice([None, None, "build", "test"])
    if section and isinstance(entry.get(section, {}), dict):
        target = entry.setdefault(section, {})
    action = rng.randrange(6)
    if action <= 2:
        target[rng.choice(KEYS + STRINGS[:14])] = random_value(rng)
    elif action == 3 and target:
        del target[rng.choice(list(target))]
    elif action == 4:
        entries.insert(rng.randrange(len(entries) + 1), random_value(rng))
    else:
        data[rng.choice(["schema", "packages", "extra"])] = random_value(rng)


def mutate_bytes(rng: random.Random, text: bytes) -> bytes:
    """Flip, insert, delete or duplicate bytes of the file as written."""
    data = bytearray(text)
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(len(data))
        action = rng.randrange(5)
        if action == 0:
            data[at] = rng.randrange(256)
        elif action == 1:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        elif action == 2:
            del data[at : at + rng.randrange(1, 40)]
        elif action == 3:
            data[at:at] = rng.choice([b"\n  - ", b": ", b"[", b"{", b"&a ", b"*a", b"!!python/"])
        else:
            del data[at:]
    return bytes(data)


def check(folder: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_check(folder / "packages.yaml", folder / "workers", out, err)
    return code, out.getvalue(), err.getvalue()


def test_mutated_registries_get_lines_never_tracebacks(tmp_path):
    rng = random.Random(SEED)
    shutil.copy(ROOT / "rollouts.yaml", tmp_path / "rollouts.yaml")
    shutil.copytree(ROOT / "workers", tmp_path / "workers")
    shipped = (ROOT / "packages.yaml").read_bytes()
    parsed = yaml.safe_load(shipped)
    registry = tmp_path / "packages.yaml"
    line = re.compile(rf"^(warning: )?{re.escape(str(registry))}(:(\d+))?: \S.*?: .+$")
    accepted = refused = 0
    for case in range(CASES):
        if case % 2:
            registry.write_bytes(mutate_bytes(rng, shipped))
        else:
            data = yaml.safe_load(yaml.safe_dump(parsed))
            for _ in range(rng.randrange(1, 4)):
                mutate_data(rng, data)
            registry.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        try:
            code, out, err = check(tmp_path)
        except Exception as e:  # the whole point: say which case, then fail
            raise AssertionError(f"case {case}: traceback {e!r}") from e
        lines = err.splitlines()
        assert code in (0, 1), (case, code)
        if code == 0:
            accepted += 1
            assert all(x.startswith("warning: ") for x in lines), (case, err)
            assert out.endswith("rollouts OK\n"), (case, out)
            continue
        refused += 1
        assert lines, (case, "refused without a reason")
        errors = [x for x in lines if not x.startswith("warning: ")]
        assert errors, (case, err)
        n_lines = registry.read_bytes().count(b"\n") + 2
        for text in lines:
            if text.startswith(f"warning: {tmp_path / 'workers'}") or text.startswith(
                str(tmp_path / "rollouts.yaml")
            ):
                continue  # the other files are not mutated; their lines are theirs
            match = line.match(text)
            assert match, (case, text)
            assert match.group(3) is None or 1 <= int(match.group(3)) <= n_lines, (case, text)
    # the mutations reach both outcomes, not just "invalid YAML"
    print(f"{accepted} accepted, {refused} refused")
    assert accepted > 20 and refused > 300, (accepted, refused)
