"""The folders of a build directory, named once.

The build directory is Buildbot's, kept from build to build on a worker. The first
step of every build (`fetch`) empties every folder an earlier build wrote, so that
nothing one build left is seen by the next one's sandboxes (they see the build
directory read-only).
"""

from __future__ import annotations

BUILD_TOOL = ".buildtool"  # the frontend: the trusted side installs it, sandboxes read it
BUILD_ENV = ".buildenv"  # the build venv: the trusted side installs it, sandboxes read it
BUILD_SRC = ".buildsrc"  # the unpacked sdist: the backend writes it
BUILD_OUT = ".buildout"  # the backend's wheel, before the host copies it out
BUILD_RESULT = ".buildresult"  # the frontend's answers
PYCACHE = ".pycache"  # bytecode of this step's untrusted processes
CARGO_HOME = ".cargohome"  # crates fetched with the network, built without
WHEELS = ".buildwheels"  # wheels built here from sdists among the requirements
DEPS = ".deps"  # where those are built
HOME = ".home"  # $HOME where nothing sandboxes the build
TEST_TOOL = ".testtool"
TEST_ENV = ".testenv"
TEST_RUN = ".testrun"  # where the imports and tests run, the only folder they write
TEST_WHEELS = ".testwheels"
OUTPUTS = "dist"  # the wheel as built and as repaired (the trusted side writes them)

EARLIER_BUILDS = (
    BUILD_TOOL, BUILD_ENV, BUILD_SRC, BUILD_OUT, BUILD_RESULT, PYCACHE, CARGO_HOME, WHEELS,
    DEPS, HOME, TEST_TOOL, TEST_ENV, TEST_RUN, TEST_WHEELS, OUTPUTS,
)  # fmt: skip
