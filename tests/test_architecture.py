"""The layout shows the architecture: stages as sub-packages, imports only pointing down.

The farm's database tables (state) are below every stage that keeps records in
them. A package travels registry -> index -> pipeline -> cascade -> changes -> ops -> web -> cli,
and config.py (the composition root) wires them; these tests read every module's imports
(deferred and type-only ones too) and fail on a circle or an import that points up.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "master" / "wheelfarm"
WORKER_SIDE = PACKAGE.parent / "farmtool"  # shipped to workers as one zipapp
# Lowest first: a module may import its own stage and the stages before it.
LAYERS = [
    {"problems", "paths", "settings", "buildbot_internals"},
    {"state"},
    {"registry"},
    {"index"},
    {"pipeline"},
    {"cascade"},
    {"changes"},
    {"ops"},
    {"web"},
    {"cli"},
    {"config"},
]
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(("wheelfarm", *parts))] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The farm's modules that `name` imports, wherever in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target != "wheelfarm":
                out.add(target)
    return out


def layer(name: str) -> int:
    stage = name.split(".")[1]
    return next(i for i, stages in enumerate(LAYERS) if stage in stages)


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_module_belongs_to_a_stage():
    assert [n for n in modules() if n != "wheelfarm" and not _has_layer(n)] == []


def _has_layer(name: str) -> bool:
    try:
        layer(name)
    except StopIteration:
        return False
    return True


def test_imports_point_down_never_up():
    upward = [
        f"{name} imports {target}"
        for name, targets in graph().items()
        if name != "wheelfarm"
        for target in targets
        if layer(target) > layer(name)
    ]
    assert upward == []


def test_the_pipeline_does_not_import_cascades():
    g = graph()
    assert [
        (n, t) for n in g if n.startswith("wheelfarm.pipeline") for t in g[n] if ".cascade" in t
    ] == []


def test_no_import_circles():
    g = graph()
    cycles, done = [], set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append(path[path.index(node) :] + [node])
            return
        if node in done:
            return
        for target in sorted(g.get(node, ())):
            visit(target, [*path, node])
        done.add(node)

    for name in sorted(g):
        visit(name, [])
    assert cycles == []


def test_no_module_is_over_500_lines():
    paths = [*modules().values(), *WORKER_SIDE.rglob("*.py")]
    long = {str(p): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_worker_side_needs_only_the_standard_library():
    """farmtool runs on a volunteer's Python with nothing installed: it imports only the
    standard library and itself (packaging comes from the build's own frontend, loaded
    at run time from its folder)."""
    import sys

    outside = set()
    for path in WORKER_SIDE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("farmtool", "packaging"):
                    outside.add(f"{path.name}: {name}")
    assert outside == set()


def test_master_cfg_stays_a_few_lines():
    cfg = PACKAGE.parents[0] / "master.cfg"
    code = [line for line in cfg.read_text().splitlines() if line and not line.startswith("#")]
    assert len(code) <= 5


def test_buildbots_internals_are_touched_in_one_module():
    """No module but buildbot_internals replaces an attribute of something imported from
    Buildbot, or reaches a private attribute of the master's objects."""
    found = []
    for name, path in modules().items():
        if name == "wheelfarm.buildbot_internals":
            continue
        tree = ast.parse(path.read_text())
        from_buildbot = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("buildbot")
            for alias in node.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                        if target.value.id in from_buildbot:
                            found.append(f"{name}: {target.value.id}.{target.attr} = ...")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                if not node.attr.startswith("__") and "master" in ast.unparse(node.value):
                    found.append(f"{name}: {ast.unparse(node)}")
    assert found == []
