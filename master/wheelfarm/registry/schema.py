"""The JSON Schema of packages.yaml, for editors (`# yaml-language-server: $schema=...`).

Generated from the registry's own tables, so it cannot drift from what `wheelfarm check`
accepts: `python -m wheelfarm.registry.schema > packages.schema.json`.
"""

from __future__ import annotations

import json
from typing import Any

from .fields import SCHEMA_VERSION
from .packages import (
    ABI_KINDS,
    ENV_NAME,
    GITHUB_HANDLE,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    SYSTEM_MANAGERS,
)
from .platforms import PLATFORMS, SUPPORTED_PYTHONS


def json_schema() -> dict[str, Any]:
    """A JSON Schema (2020-12) of packages.yaml, for editors; see packages.schema.json."""

    def strings(items: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
        return {
            "type": "array",
            "items": {"type": "string", **items},
            "description": description,
            **extra,
        }

    requirements = strings({"minLength": 1}, 'PEP 508 requirements, e.g. "cython>=3".')
    package = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {
                "type": "string",
                "pattern": NAME_PATTERN,
                "maxLength": MAX_NAME_LENGTH,
                "description": "The project's name on PyPI.",
            },
            "versions": {
                "type": "string",
                "minLength": 1,
                "default": "latest",
                "description": '"latest", or a PEP 440 version specifier such as ">=2.0,<4".',
            },
            "prereleases": {
                "type": "boolean",
                "default": False,
                "description": "Build pre-releases too.",
            },
            "platforms": strings(
                {"enum": list(PLATFORMS)}, "Platforms to build for; default: all.", minItems=1
            ),
            "python": strings(
                {"enum": list(SUPPORTED_PYTHONS)},
                "Python versions to build for; default: all.",
                minItems=1,
            ),
            "build": {
                "type": "object",
                "additionalProperties": False,
                "description": "How to build the wheel.",
                "properties": {
                    "requires": requirements,
                    "env": {
                        "type": "object",
                        "propertyNames": {"pattern": f"^{ENV_NAME.pattern}$"},
                        "additionalProperties": {"type": "string"},
                        "description": "Environment variables for the build.",
                    },
                    "system": {
                        "type": "object",
                        "additionalProperties": False,
                        "description": "System packages the build needs, per package manager.",
                        "properties": {
                            manager: strings(
                                {"pattern": f"^{pattern.pattern}$"},
                                f"{manager} package names",
                                minItems=1,
                            )
                            for manager, pattern in SYSTEM_MANAGERS.items()
                        },
                    },
                },
            },
            "test": {
                "type": "object",
                "additionalProperties": False,
                "description": "How to test the wheel; default: import it.",
                "properties": {
                    "requires": requirements,
                    "command": strings(
                        {}, "The test command as a list of arguments (no shell).", minItems=1
                    ),
                    "skip_imports": strings(
                        {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"},
                        "Modules (or packages) the import check leaves out, e.g. other"
                        " platforms' modules.",
                    ),
                },
            },
            "depends": strings(
                {"pattern": NAME_PATTERN}, "Registry packages this one builds or runs against."
            ),
            "abi": {"enum": list(ABI_KINDS), "description": "Which version change breaks the ABI."},
            "run_exports": {
                "type": "string",
                "pattern": r"^[^{}]*(\{(version|major|minor|next_major|next_minor)\}[^{}]*)*$",
                "description": "What a compiled wheel built against this package requires of it,"
                ' instead of the default of `abi` (minor: ">={version},<{next_minor}"), e.g.'
                ' ">=1.25,<{next_major}". Placeholders: {version} {major} {minor}'
                " {next_major} {next_minor}.",
            },
            "maintainers": strings({"pattern": f"^{GITHUB_HANDLE.pattern}$"}, "GitHub handles."),
            "skip": {
                "type": "string",
                "pattern": r"\S",
                "description": "Why the package is not built.",
            },
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:wheelfarm:packages.schema.json",
        "title": "wheelfarm package registry (packages.yaml)",
        "description": "Generated by `python -m wheelfarm.registry.schema`; do not edit by hand.",
        "type": "object",
        "additionalProperties": False,
        "required": ["schema", "packages"],
        "properties": {
            "schema": {"const": SCHEMA_VERSION, "description": "Format version of this file."},
            "packages": {
                "type": "array",
                "items": package,
                "description": "The packages to build.",
            },
        },
    }


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
