"""Which place a step runs in (isolation/): the worker's own system, or a container of
the platform's build image when the master says the worker builds in one."""

from __future__ import annotations

import argparse

from .facts import fail
from .isolation import Place, resolve_isolation
from .isolation.container import ContainerPlace, zipapp_path
from .isolation.host import HostPlace


def place_for(args: argparse.Namespace, python_version: str) -> Place:
    if getattr(args, "container_engine", None):
        if not args.image:
            fail("--container-engine needs --image")
        zipapp_path()  # containers run this program from the build directory: fail early
        return ContainerPlace(args.container_engine, args.image, python_version,
                              args.container_arch)  # fmt: skip
    return HostPlace(resolve_isolation(args.isolation))
