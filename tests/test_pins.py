"""ABI pins: the arithmetic (ABI key x version x the wheel's own requirement) and the rewrite."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import subprocess
import sys
import zipfile

import pytest
from packaging.metadata import Metadata
from packaging.specifiers import SpecifierSet

from sdists import make_wheel
from wheelfarm.index import pinning
from wheelfarm.registry import pins
from wheelfarm.registry.pins import (
    Pin,
    PinError,
    export_rule,
    intersect,
    pin_for,
    render,
    rule_error,
)


@pytest.mark.parametrize(
    ("abi", "version", "own", "want"),
    [
        ("minor", "2.1.3", None, ">=2.1.3,<2.2"),
        ("major", "2.1.3", None, ">=2.1.3,<3"),
        ("every-release", "2.1.3", None, "==2.1.3"),
        ("major", "1.0", None, ">=1.0,<2"),
        ("minor", "1.0rc1", None, ">=1.0rc1,<1.1"),
        # the wheel's own requirement tightens the pin, never widens it
        ("major", "2.1.3", ">=2.0", ">=2.1.3,<3"),
        ("major", "2.1.3", ">2.0", ">=2.1.3,<3"),
        ("major", "2.1.3", "<2.5", ">=2.1.3,<2.5"),
        ("major", "2.1.3", "<=3", ">=2.1.3,<3"),
        ("major", "2.1.3", "<3", ">=2.1.3,<3"),
        ("minor", "2.1.3", "!=2.1.4", ">=2.1.3,<2.2,!=2.1.4"),
        ("every-release", "2.1.3", ">=2", "==2.1.3"),
        ("major", "2.1.3", "~=2.1", ">=2.1.3,<3,~=2.1"),
    ],
)
def test_pin_arithmetic(abi, version, own, want):
    rule = export_rule(abi, None)
    pin = pin_for("Abi_Core", version, abi, rule, SpecifierSet(own) if own else None)
    assert pin.specifier == want
    assert pin.name == "abi-core"
    assert SpecifierSet(pin.specifier).contains(version, prereleases=True)


def test_a_pinned_build_of_the_dependency_pins_its_public_version():
    pin = pin_for("a", "2.0+c.1.0", "major", export_rule("major", None), SpecifierSet(">=1"))
    assert (pin.specifier, pin.built_against) == (">=2.0,<3", "2.0")
    assert pins.local_label([pin]) == "a.2.0"


def test_own_rule_instead_of_the_default():
    # numpy's C API: built against 2.0.1, runs on numpy 1.25 and later 2.x
    rule = export_rule("major", ">=1.25,<{next_major}")
    assert pin_for("numpy", "2.0.1", "major", rule).specifier == ">=1.25,<3"
    assert str(render(">={minor},<{next_minor}", "2.1.3")) in (">=2.1,<2.2", "<2.2,>=2.1")


def test_what_exports_nothing():
    assert export_rule("none", None) is None
    assert export_rule(None, None) is None  # unset: cascades, but no runtime requirement
    assert export_rule(None, ">=1") == ">=1"


def test_conflicts_are_refused():
    with pytest.raises(PinError, match=r"built against a 2.1.3, which its own requirement a<2"):
        pin_for("a", "2.1.3", "major", export_rule("major", None), SpecifierSet("<2"))
    with pytest.raises(PinError, match="excludes 1.0"):
        pin_for("numpy", "1.0", "major", ">=1.25,<{next_major}")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (">={version},<{next_major}", None),
        (">=1.22", None),
        ("=={version}", None),
        (">={verison}", "unknown placeholder {verison}"),
        (">={version", "unbalanced braces"),
        ("at least {version}", "is not a version specifier"),
        (">=1.22,,", "is not a version specifier"),
    ],
)
def test_rule_validation(rule, message):
    error = rule_error(rule)
    assert (error is None) if message is None else (message in error)


def test_intersect_orders_bounds_first():
    assert intersect(SpecifierSet("<3,>=2"), SpecifierSet(">2.5")) == ">2.5,<3"
    assert intersect(SpecifierSet(">=2"), SpecifierSet(">2")) == ">2"
    assert intersect(SpecifierSet("<=2"), SpecifierSet("<2")) == "<2"


def test_local_label_orders_newer_abis_higher():
    old = [Pin("abicore", "1.0", "1", ">=1.0,<2")]
    new = [Pin("abicore", "2.0", "2", ">=2.0,<3")]
    assert pins.local_label(old) == "abicore.1.0"
    from packaging.version import Version

    assert Version(f"1.0+{pins.local_label(new)}") > Version(f"1.0+{pins.local_label(old)}")
    two = [Pin("zeta-lib", "3.1", "3.1", ""), Pin("abicore", "2.0", "2", "")]
    assert pins.local_label(two) == "abicore.2.0.zetalib.3.1"
    # one ABI, two versions built against: two versions of the wheel, the newer higher
    patch = [Pin("abicore", "1.1", "1", ">=1.1,<2")]
    assert Version(f"1.0+{pins.local_label(patch)}") > Version(f"1.0+{pins.local_label(old)}")


def _record_ok(wheel) -> list[str]:
    """The RECORD's hashes and sizes, checked against every file; returns the names."""
    with zipfile.ZipFile(wheel) as zf:
        (record,) = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        rows = list(csv.reader(io.StringIO(zf.read(record).decode())))
        assert {r[0] for r in rows} == {n for n in zf.namelist() if not n.endswith("/")}
        for path, digest, size in rows:
            if path == record:
                assert digest == size == ""
                continue
            data = zf.read(path)
            algo, _, value = digest.partition("=")
            want = base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=")
            assert value == want.decode() and int(size) == len(data), path
        return [r[0] for r in rows]


def _user(folder, version="1.0", deps=("abicore>=1.0", "extra-thing; extra == 'x'")):
    return make_wheel(
        folder, "abiuser", version, {"abiuser/__init__.py": "X = 1\n"}, dependencies=deps
    )


def test_rewrite_metadata_record_and_name(tmp_path):
    wheel = _user(tmp_path / "in")
    pin = pin_for("abicore", "1.0", "major", export_rule("major", None), SpecifierSet(">=1.0"))
    out = pinning.rewrite_wheel(wheel, tmp_path / "out", [pin])
    assert out.name == "abiuser-1.0+abicore.1.0-py3-none-any.whl"
    names = _record_ok(out)
    assert "abiuser-1.0+abicore.1.0.dist-info/METADATA" in names
    assert not any(n.startswith("abiuser-1.0.dist-info") for n in names)
    meta = Metadata.from_email(pinning.read_wheel_metadata(out))
    assert str(meta.version) == "1.0+abicore.1.0"
    reqs = [str(r) for r in meta.requires_dist]
    assert "abicore<2,>=1.0" in reqs  # the one unconditional line, merged with its own
    assert 'extra-thing; extra == "x"' in reqs  # conditional lines are left alone
    assert len(reqs) == 2
    # deterministic: the same wheel and pins give the same bytes
    again = pinning.rewrite_wheel(wheel, tmp_path / "again", [pin])
    assert again.read_bytes() == out.read_bytes()


def test_rewrite_refuses_a_pin_its_own_requirement_excludes(tmp_path):
    wheel = _user(tmp_path / "in", deps=("abicore<2",))
    pin = Pin("abicore", "2.0", "2", ">=2.0,<3")
    with pytest.raises(PinError, match="excludes"):
        pinning.rewrite_wheel(wheel, tmp_path / "out", [pin])


def _pip(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--isolated", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
    )


def test_pinned_wheels_resolve_to_matching_pairs_with_pip(tmp_path):
    """Two builds of abiuser 1.0, pinned to abicore 1 and 2: pip picks a matching pair."""
    found = tmp_path / "links"
    for version in ("1.0", "2.0"):
        make_wheel(found, "abicore", version)
    for version in ("1.0", "2.0"):
        pin = pin_for("abicore", version, "major", export_rule("major", None))
        pinning.rewrite_wheel(_user(tmp_path / version, deps=("abicore",)), found, [pin])

    def installed(*reqs):
        target = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        done = _pip(
            "install", "--no-index", "--find-links", found, "--target", target, *reqs, cwd=tmp_path
        )
        if done.returncode:
            return done.stdout + done.stderr
        return sorted(p.name for p in target.glob("*.dist-info"))

    assert installed("abiuser") == ["abicore-2.0.dist-info", "abiuser-1.0+abicore.2.0.dist-info"]
    assert installed("abiuser", "abicore==1.0") == [
        "abicore-1.0.dist-info",
        "abiuser-1.0+abicore.1.0.dist-info",
    ]
    refused = installed("abiuser==1.0+abicore.2.0", "abicore==1.0")
    assert isinstance(refused, str) and "ResolutionImpossible" in refused


def test_the_record_lists_registry_packages_of_the_build_environment(tmp_path):
    class Entry:
        def __init__(self, abi=None, run_exports=None):
            self.abi, self.run_exports = abi, run_exports

    registry = {"abicore": Entry("major"), "cython-ish": Entry(), "abiuser": Entry()}
    build_env = {
        "abicore": {"version": "1.0", "from": "farm", "wheel": "w.whl", "sha256": "ab" * 32},
        "cython_ish": {"version": "3.0", "from": "elsewhere"},  # no farm wheel yet: PyPI's
        "setuptools": {"version": "80.0", "from": "elsewhere"},  # not a registry package
        "abiuser": {"version": "1.0", "from": "elsewhere"},  # the build itself, never
    }
    built = pinning.built_against(build_env, registry, "abiuser")
    assert built == {
        "abicore": {"version": "1.0", "from": "farm", "wheel": "w.whl", "sha256": "ab" * 32},
        "cython-ish": {"version": "3.0", "from": "elsewhere", "note": pinning.NOT_FROM_THE_FARM},
    }
    # only abicore declares an ABI: one pin; a pure wheel gets none
    wheel = make_wheel(tmp_path, "abiuser", "1.0", {"abiuser/__init__.py": ""})
    compiled = wheel.with_name("abiuser-1.0-cp311-cp311-manylinux_2_28_x86_64.whl")
    wheel.rename(compiled)
    out, found = pinning.pin_wheel(compiled, built, registry, tmp_path / "pinned")
    assert [p.requirement for p in found] == ["abicore>=1.0,<2"]
    assert out.name == "abiuser-1.0+abicore.1.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    pure = make_wheel(tmp_path / "pure", "abiuser", "1.0", {"abiuser/__init__.py": ""})
    assert pinning.pin_wheel(pure, built, registry, tmp_path / "p2") == (pure, [])


def test_pins_outside_depends_are_named():
    from wheelfarm.pipeline.publish import undeclared_pins

    pinned = ["abicore>=1.0,<2", "Other_Lib==2.1"]
    assert undeclared_pins(pinned, ("abicore",)) == ["other-lib"]
    assert undeclared_pins(pinned, ("abicore", "other-lib")) == []
    assert undeclared_pins([], ()) == []
