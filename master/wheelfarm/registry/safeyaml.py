"""Loading YAML that strangers wrote: plain data out, line numbers kept, nothing executed.

Even PyYAML's safe loader accepts things a registry never needs and an attacker likes:
aliases (a few hundred bytes of nested aliases expand to gigabytes), nesting deep enough
to crash the C composer, exotic tags, and duplicate keys (silently overwritten). This
loader refuses all of them and reports each as a Problem with file, line and field.

    doc = load("packages.yaml")
    doc.data                            # plain dicts, lists, str, int, float, bool, None
    doc.line(("packages", 3, "name"))   # 1-based line of that field

It builds the data straight from libyaml's event stream instead of calling yaml.compose:
aliases arrive as events and are never expanded; nesting is counted as it opens (the C
composer recurses and segfaults near 100,000 levels); and one pass, keeping only data
and line numbers rather than a node tree, loads a 3 MB registry in about a second.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from ..problems import FieldPath, Problem, ValidationError, field_name

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64  # a registry needs about 5

# libyaml's C parser is ~20x faster than the pure-Python one.
_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

STR, INT, FLOAT, BOOL, NULL, SEQ, MAP = (
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
)
_constructor = yaml.constructor.SafeConstructor()
_SCALARS = {
    INT: _constructor.construct_yaml_int,
    FLOAT: _constructor.construct_yaml_float,
    BOOL: _constructor.construct_yaml_bool,
    NULL: _constructor.construct_yaml_null,
}


class _Resolver(yaml.resolver.Resolver):
    # Plain scalars resolve only to str/int/float/bool/null (YAML 1.1 rules, so `2.0` is a
    # float and `yes` a bool). Timestamps, merge keys (<<) and '=' stay plain strings.
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag in _SCALARS]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


_resolver = _Resolver()


@lru_cache(maxsize=4096)  # keys and common values repeat thousands of times in a registry
def _plain_tag(value: str) -> str:
    """The tag of an untagged, unquoted scalar: `2.0` is a float, `yes` a bool."""
    return _resolver.resolve(yaml.ScalarNode, value, (True, False))


class _Lines:
    """Line numbers shadowing one collection: its own, and each child's (an int or _Lines).

    A mapping entry's line is its key's line, so a block list that starts on the next
    line is still reported where its key is written.
    """

    __slots__ = ("line", "children")

    def __init__(self, line: int, children: dict[str, Any] | list[Any]):
        self.line = line
        self.children: Any = children  # a dict or a list, as its collection is


@dataclass(frozen=True)
class Doc:
    data: Any
    lines: _Lines | int | None

    def line(self, path: FieldPath) -> int:
        """1-based line of the node at `path`, or of its deepest existing ancestor."""
        node: Any = self.lines
        line = 1 if node is None else node if isinstance(node, int) else node.line
        for part in path:
            try:
                node = node.children[part]
            except (AttributeError, KeyError, IndexError, TypeError):
                break
            line = node if isinstance(node, int) else node.line
        return line


def load(path: str | os.PathLike[str]) -> Doc:
    """Parse one YAML document, raising ValidationError listing everything refused."""
    file = os.fspath(path)
    raw = _read(file)
    problems: list[Problem] = []
    try:
        data, lines = _build(file, raw, problems)
    except yaml.YAMLError as e:
        problems.append(_yaml_problem(file, raw, e))
    if problems:
        raise ValidationError(problems)
    return Doc(data, lines)


def _read(file: str) -> bytes:
    def fail(line: int | None, message: str) -> ValidationError:
        return ValidationError([Problem(file, line, "(file)", message)])

    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_BYTES + 1)  # never read more than the limit, whatever the file is
    except OSError as e:
        raise fail(None, f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:
        raise fail(None, f"larger than {MAX_BYTES // 2**20} MiB; refusing to parse it")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise fail(line, f"not valid UTF-8 (byte 0x{raw[e.start]:02x})") from None
    return raw


def _yaml_problem(file: str, raw: bytes, e: yaml.YAMLError) -> Problem:
    mark = getattr(e, "problem_mark", None)
    if mark is not None:
        line: int | None = mark.line + 1
        message = ", ".join(
            filter(None, [getattr(e, "problem", None), getattr(e, "context", None)])
        )
    elif isinstance(e, yaml.reader.ReaderError):  # libyaml reports these by byte offset
        line = raw.count(b"\n", 0, e.position) + 1
        message = str(e.reason)
    else:
        line, message = None, str(e)
    return Problem(file, line, "(yaml)", f"invalid YAML: {message or e}")


_NODE_EVENTS = {
    yaml.ScalarEvent,
    yaml.AliasEvent,
    yaml.MappingStartEvent,
    yaml.SequenceStartEvent,
    yaml.MappingEndEvent,
    yaml.SequenceEndEvent,
}
_NO_KEY = object()  # a mapping waits for its next key
_DROP = object()  # a mapping drops the next value: its key was refused


class _Frame:
    """A collection being built: its data, its line numbers, where it is, its pending key."""

    __slots__ = ("data", "lines", "path", "key", "key_line", "refused")

    def __init__(self, data: dict[str, Any] | list[Any], line: int, path: FieldPath, refused: bool):
        self.data = data
        self.lines = _Lines(line, {} if isinstance(data, dict) else [])
        self.path = path
        self.key: Any = _NO_KEY
        self.key_line = 0
        self.refused = refused  # wrong tag: build it (to find nested problems), keep None


def _child_path(top: _Frame | None) -> FieldPath:
    if top is None:
        return ()
    if isinstance(top.data, list):
        return (*top.path, len(top.data))
    return top.path if top.key is _NO_KEY or top.key is _DROP else (*top.path, top.key)


def _build(file: str, raw: bytes, problems: list[Problem]) -> tuple[Any, _Lines | int | None]:
    stack: list[_Frame] = []
    root: tuple[Any, _Lines | int | None] = (None, None)
    documents = 0

    def report(line: int, message: str, where: FieldPath | None = None) -> None:
        if where is None:
            where = _child_path(stack[-1] if stack else None)
        problems.append(Problem(file, line, field_name(where), message))

    event: Any  # dispatched on its exact class below (speed), which the checker cannot narrow
    for event in yaml.parse(raw, Loader=_Parser):
        kind = type(event)  # dispatch on the exact class: this loop runs once per node
        if kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                report(event.start_mark.line + 1, "only one YAML document is allowed")
                break
            continue
        if kind not in _NODE_EVENTS:
            continue  # stream start and end, document end
        line = event.start_mark.line + 1
        value: Any = None
        lines: _Lines | int = line
        if getattr(event, "anchor", None) is not None:  # end events have no anchor
            sigil = "*" if kind is yaml.AliasEvent else "&"
            # An alias is never expanded: it stays None, so alias bombs cost nothing.
            report(line, f"YAML anchors and aliases are not allowed ({sigil}{event.anchor})")
        if kind is yaml.ScalarEvent:
            tag = event.tag
            if tag is None or tag == "!":
                tag = _plain_tag(event.value) if event.implicit[0] else STR
            if tag == STR:
                value = event.value
            elif tag in _SCALARS:
                value = _SCALARS[tag](yaml.ScalarNode(tag, event.value))
            else:
                report(line, f"the tag {_short(tag)} is not allowed")
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if len(stack) >= MAX_DEPTH:
                report(line, f"nested more than {MAX_DEPTH} levels deep")
                break
            mapping = kind is yaml.MappingStartEvent
            refused = event.tag not in (None, "!", MAP if mapping else SEQ)
            if refused:
                report(line, f"the tag {_short(event.tag)} is not allowed")
            path = _child_path(stack[-1] if stack else None)
            stack.append(_Frame({} if mapping else [], line, path, refused))
            continue
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            frame = stack.pop()
            value = None if frame.refused else frame.data
            lines = frame.lines
            line = lines.line
        if not stack:
            root = (value, lines)
        else:
            _add(stack[-1], value, lines, line, report)
    return root


def _add(
    top: _Frame, value: Any, lines: _Lines | int, line: int, report: Callable[..., None]
) -> None:
    """Put a finished value into the collection being built."""
    if isinstance(top.data, list):
        top.data.append(value)
        top.lines.children.append(lines)
    elif top.key is _NO_KEY:  # `value` is a key
        if not isinstance(value, str):
            shown = type(value).__name__ if isinstance(value, list | dict) else repr(value)
            report(line, f"mapping key {shown} is not a string (quote it)")
            top.key = _DROP
        elif value in top.data:
            first = top.lines.children[value]
            first_line = first if isinstance(first, int) else first.line
            msg = f"duplicate key {value!r} (first on line {first_line})"
            report(line, msg, (*top.path, value))
            top.key = _DROP
        else:
            top.key, top.key_line = value, line
    else:
        if top.key is not _DROP:
            top.data[top.key] = value
            if isinstance(lines, _Lines):
                lines.line = top.key_line  # a mapping entry is reported at its key
            else:
                lines = top.key_line
            top.lines.children[top.key] = lines
        top.key = _NO_KEY


def _short(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")
