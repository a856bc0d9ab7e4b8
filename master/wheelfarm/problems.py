"""What the validators report: one Problem per mistake, pointing at a file, line and field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# A field path as the YAML nests it, e.g. ("packages", 3, "versions").
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str  # shown as the caller gave it, so messages match what the user typed
    line: int | None  # 1-based; None when the problem concerns the whole file
    field: str  # dotted field path, e.g. "packages[3].versions"
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {_one_line(self.field)}: {_one_line(self.message)}"


def _one_line(text: str) -> str:
    """Control characters (a newline in a key, say) escaped: a problem is one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ValidationError(Exception):
    """A file failed validation; `problems` lists every mistake found, not just the first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def field_name(path: FieldPath) -> str:
    """("packages", 3, "versions") -> "packages[3].versions"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"
