"""What emulation costs a volunteer: one sdist built natively and under QEMU, one run.

Builds the same sdist (markupsafe's, from PyPI) with farmtool's build step (a fresh
build venv, the sdist's build requirements from PyPI, the PEP 517 build) three ways,
side by side: on this host, in the native build image (podman), and in the arm64 image
under QEMU user-mode emulation. Needs root, podman and the images (make_image.py makes
them; this script asks it, so the first run also makes them).

    .venv/bin/python bench/emulation.py [--sdist markupsafe==3.0.3] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wheelfarm.pipeline.workerapp import zipapp_bytes

ROOT = Path(__file__).resolve().parents[1]
MAKE_IMAGE = ROOT / "workers" / "images" / "make_image.py"
ENV = dict(
    os.environ,
    CONTAINERS_CONF=str(ROOT / "workers" / "podman" / "containers.conf"),
    PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
)


def image(suite: str, arch: str) -> str:
    argv = [sys.executable, MAKE_IMAGE, "--suite", suite, "--arch", arch, "--python", "3.11"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, env=ENV)
    return done.stdout.strip().splitlines()[-1]


def timed_build(sdist: Path, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-emulation-") as tmp:
        work = Path(tmp)
        (work / "sdist").mkdir()
        shutil.copy(sdist, work / "sdist")
        (work / "farmtool.pyz").write_bytes(zipapp_bytes())  # as the master ships it
        argv = ["python3.11", "farmtool.pyz", "build", "--sdist-dir", "sdist", "--out", "out"]
        argv += ["--isolation", "bubblewrap"]
        start = time.perf_counter()
        done = subprocess.run([*argv, *extra], cwd=work, env=ENV, capture_output=True, text=True)
        took = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"build failed ({extra}):\n{done.stdout[-2000:]}{done.stderr}")
        (wheel,) = (work / "out").glob("*.whl")
        print(f"  {wheel.name}: {took:.1f} s", file=sys.stderr)
        return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", default="markupsafe==3.0.3")
    parser.add_argument("--repeat", type=int, default=2, help="builds per way; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sdist-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", "--dest", tmp, args.sdist],
            check=True,
        )  # fmt: skip
        (sdist,) = Path(tmp).iterdir()
        ways = {
            "this host (x86_64)": [],
            "native image (podman, amd64)": ["--container-engine", "podman", "--image",
                                             image("bullseye", "amd64")],
            "emulated image (podman + QEMU, arm64)": ["--container-engine", "podman",
                                                      "--container-arch", "arm64", "--image",
                                                      image("bookworm", "arm64")],
        }  # fmt: skip
        results = {}
        for way, extra in ways.items():
            print(way, file=sys.stderr)
            results[way] = min(timed_build(sdist, extra) for _ in range(args.repeat))
    native = results["native image (podman, amd64)"]
    print(f"\n{sdist.name}, best of {args.repeat}, load {os.getloadavg()[0]:.1f}\n")
    print("| build | time | vs the native image |")
    print("|---|---|---|")
    for way, took in results.items():
        print(f"| {way} | {took:.1f} s | {took / native:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
