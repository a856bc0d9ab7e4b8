"""Typed readers for the fields of a loaded YAML file, shared by the registry and workers files.

Each reader checks one value, records a Problem (with the line from the Doc) when it is
wrong and returns None, so a validator reads every field and reports every mistake in
one run instead of stopping at the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable
from typing import Any, TypeVar

from ..problems import FieldPath, Problem, ValidationError, field_name
from .platforms import PLATFORMS, SUPPORTED_PYTHONS
from .safeyaml import Doc

SCHEMA_VERSION = 1

T = TypeVar("T")
Check = Callable[[str], str | None]  # a string -> an error message, or None if it is fine

_KINDS = {dict: "mapping", list: "list", str: "string", bool: "bool", int: "int", float: "float"}


def kind(value: Any) -> str:
    """The YAML-ish name of a loaded value's type, for messages."""
    return _KINDS.get(type(value), "null")


def did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_platform(name: str) -> str | None:
    if name in PLATFORMS:
        return None
    return f"unknown platform {name!r} (known: {', '.join(PLATFORMS)})"


def unsupported_python(version: str) -> str | None:
    if version in SUPPORTED_PYTHONS:
        return None
    return f"unsupported Python version {version!r} (supported: {', '.join(SUPPORTED_PYTHONS)})"


class Fields:
    def __init__(self, doc: Doc, file: str):
        self.doc = doc
        self.file = file
        self.problems: list[Problem] = []

    def error(self, path: FieldPath, message: str) -> None:
        self.problems.append(Problem(self.file, self.doc.line(path), field_name(path), message))

    def raise_problems(self) -> None:
        """Raise ValidationError with every problem, in file order, if there are any."""
        if self.problems:
            raise ValidationError(sorted(self.problems, key=lambda p: p.line or 0))

    def _expect(self, path: FieldPath, value: Any, expected: type, what: str) -> bool:
        # bool is an int in Python, but `max_builds: yes` is not a number
        if isinstance(value, expected) and (expected is bool or not isinstance(value, bool)):
            return True
        got = f"got {kind(value)}"
        if what == "a string" and isinstance(value, int | float):
            got += f" {value!r} (put it in quotes)"  # `python: [3.10]` reads as the float 3.1
        self.error(path, f"expected {what}, {got}")
        return False

    def get(
        self,
        mapping: dict[str, Any],
        path: FieldPath,
        key: str,
        read: Callable[..., Any],
        default: T,
        **kw: Any,
    ) -> T:
        """`read` mapping[key] at path.key; `default` if the key is absent or its value is wrong."""
        if key not in mapping:
            return default
        value = read((*path, key), mapping[key], **kw)
        return default if value is None else value

    def mapping(
        self,
        path: FieldPath,
        value: Any,
        known: Collection[str] | None = None,  # None: any key
        required: Iterable[str] = (),
    ) -> dict[str, Any] | None:
        if not self._expect(path, value, dict, "a mapping"):
            return None
        for key in value:
            if known is not None and key not in known:
                self.error((*path, key), f"unknown key {key!r}{did_you_mean(key, known)}")
        for key in required:
            if key not in value:
                self.error((*path, key), "required key is missing")
        return value

    def string(self, path: FieldPath, value: Any, check: Check | None = None) -> str | None:
        if not self._expect(path, value, str, "a string"):
            return None
        message = check(value) if check else None
        if message:
            self.error(path, message)
            return None
        return value

    def strings(
        self, path: FieldPath, value: Any, check: Check | None = None, nonempty: bool = False
    ) -> tuple[str, ...] | None:
        """A list of strings, each passing `check`; only the good ones are returned."""
        if not self._expect(path, value, list, "a list"):
            return None
        if nonempty and not value:
            self.error(path, "must not be an empty list")
            return None
        items = (self.string((*path, i), item, check) for i, item in enumerate(value))
        return tuple(item for item in items if item is not None)

    def boolean(self, path: FieldPath, value: Any) -> bool | None:
        return value if self._expect(path, value, bool, "true or false") else None

    def integer(self, path: FieldPath, value: Any) -> int | None:
        return value if self._expect(path, value, int, "an integer") else None

    def positive(self, path: FieldPath, value: Any) -> int | None:
        """An integer of at least 1 (a count of builds)."""
        number = self.integer(path, value)
        if number is not None and number < 1:
            self.error(path, f"must be at least 1, not {number}")
            return None
        return number

    def top_level(self, data: Any, list_key: str) -> list[Any]:
        """The `schema: 1` + `<list_key>: [...]` frame both files share; its list, or []."""
        top = self.mapping((), data, ("schema", list_key), required=("schema", list_key))
        if top is None:
            return []
        schema = self.get(top, (), "schema", self.integer, SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            # a different version means different rules: checking further would only mislead
            message = f"unsupported schema version {schema} (this farm reads {SCHEMA_VERSION})"
            self.error(("schema",), message)
            return []
        return self.get(top, (), list_key, self._list, [])

    def _list(self, path: FieldPath, value: Any) -> list[Any] | None:
        return value if self._expect(path, value, list, "a list") else None
