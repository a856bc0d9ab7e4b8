"""Where the farm finds its files: the package's own data, and the farm's checkout.

The package's data (the pages' templates, the worker tools' lock) travels inside the
package, so an installed wheel works as a checkout does. `data/worker-requirements.txt`
is, in the checkout, a link to `workers/requirements.txt` (what volunteers install);
building the wheel copies the file in.

The farm's own files (packages.yaml, rollouts.yaml, workers/, master/master.cfg,
workers/podman/) are the checkout's: WHEELFARM_CHECKOUT when set, else the checkout this
package is installed from in editable mode (as `make venv` installs it), else the
current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "web" / "templates"
WORKER_LOCK = PACKAGE / "data" / "worker-requirements.txt"


def _checkout() -> Path:
    named = os.environ.get("WHEELFARM_CHECKOUT")
    if named:
        return Path(named).resolve()
    source = PACKAGE.parents[1]  # master/wheelfarm/ in a checkout
    if (source / "master" / "master.cfg").is_file() and (source / "packages.yaml").is_file():
        return source
    return Path.cwd()


CHECKOUT = _checkout()
REGISTRY = CHECKOUT / "packages.yaml"
ROLLOUTS = CHECKOUT / "rollouts.yaml"
WORKERS = CHECKOUT / "workers" / "workers.yaml"
MASTER_CFG = CHECKOUT / "master" / "master.cfg"
CONTAINERS_CONF = CHECKOUT / "workers" / "podman" / "containers.conf"
