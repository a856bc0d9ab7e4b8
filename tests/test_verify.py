"""A verify build's comparison of a rebuilt wheel with the published one."""

from __future__ import annotations

import zipfile

from wheelfarm.cli.reproducible import main
from wheelfarm.index.verify import (
    record_verification,
    share,
    verifications,
    wheel_differences,
)
from wheelmaker import make_wheel


def test_wheel_differences(tmp_path):
    one = make_wheel(tmp_path / "a", "demo", "1.0", payload="x")
    same = make_wheel(tmp_path / "b", "demo", "1.0", payload="x")
    other = make_wheel(tmp_path / "c", "demo", "1.0", payload="y")
    assert wheel_differences(one, same) == []
    assert wheel_differences(one, other) == ["demo-1.0.dist-info/RECORD", "demo/__init__.py"]
    # same members, other zip timestamps: the bytes differ, no member does
    stamped = tmp_path / "d" / one.name
    stamped.parent.mkdir()
    with zipfile.ZipFile(one) as src, zipfile.ZipFile(stamped, "w") as out:
        for info in src.infolist():
            out.writestr(zipfile.ZipInfo(info.filename, (2026, 1, 1, 0, 0, 0)), src.read(info))
    assert wheel_differences(one, stamped) == ["(zip metadata)"]


def test_verifications_keep_the_latest_per_wheel(tmp_path):
    assert verifications(tmp_path, "demo") == {}
    record_verification(tmp_path, "Demo", {"wheel": "a.whl", "reproducible": False})
    record_verification(tmp_path, "demo", {"wheel": "b.whl", "reproducible": True})
    record_verification(tmp_path, "demo", {"wheel": "a.whl", "reproducible": True})
    with (tmp_path / ".verify" / "demo.jsonl").open("a") as f:
        f.write('{"wheel": "cut')  # a master that died writing
    found = verifications(tmp_path, "DEMO")
    assert {k: v["reproducible"] for k, v in found.items()} == {"a.whl": True, "b.whl": True}


def test_the_share_of_reproducible_packages(tmp_path, capsys):
    index = tmp_path / "index"
    record_verification(index, "a", {"wheel": "a1.whl", "reproducible": True, "differ": []})
    record_verification(index, "b", {"wheel": "b1.whl", "reproducible": True, "differ": []})
    record_verification(index, "b", {"wheel": "b2.whl", "reproducible": False, "differ": ["x"]})
    found = share(index, ["a", "b", "c"])
    assert found == {
        "packages": 3,
        "verified": 2,
        "reproducible": 1,
        "not_reproducible": {"b": {"b2.whl": ["x"]}},
    }
    registry = tmp_path / "packages.yaml"
    registry.write_text("schema: 1\npackages:\n  - {name: a}\n  - {name: b}\n  - {name: c}\n")
    assert main(["--registry", str(registry), "--index", str(index)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "1 of 2 verified packages reproducible (50%); 1 of 3 not verified",
        "not reproducible: b: b2.whl: x",
    ]
