"""Running commands: argument lists only (never a shell line), their output echoed
to the step's log with every line and the whole bounded, and the line that says
what went wrong picked out of it.

Untrusted code prints into these pipes: a line is cut at LINE_MAX bytes, the log
stops at the step's output limit, and only the last `keep` lines are kept in
memory, so no output can grow this process.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from subprocess import DEVNULL
from typing import NamedTuple

from .facts import Failure, fail
from .tools import missing, resolve

Arg = str | os.PathLike[str]  # an item of an argument list
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LINE_MAX = 16 * 1024  # bytes of one output line shown; the rest is cut
OUTPUT_MAX = [32 << 20]  # bytes of output a step shows in all (the master may lower it)
_shown = [0]  # what this step has shown so far


def show(argv: Sequence[Arg]) -> None:
    say("+ " + shlex.join(str(a) for a in argv))


def say(line: str) -> None:
    """One line of our own to the log, within the step's output limit."""
    echo(line.encode("utf-8", "replace") + b"\n")


def echo(data: bytes) -> None:
    """Output of a command to the log, until the step's limit; then one notice."""
    limit = OUTPUT_MAX[0]
    if _shown[0] >= limit:
        return
    if _shown[0] + len(data) >= limit:
        data = data[: limit - _shown[0]] + b"\n... output truncated at %d bytes\n" % limit
    _shown[0] += len(data)
    sys.stdout.flush()  # what print() may have buffered goes first
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


class Result(NamedTuple):
    rc: int
    lines: list[str]  # the last lines of output, ANSI codes removed
    stopped: str | None  # why we ended it before it ended (a limit), if we did


def _reader(stream, out: queue.Queue) -> None:
    while chunk := stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16):
        out.put(chunk)
    out.put(None)


def run(
    argv: Sequence[Arg],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Arg | None = None,
    keep: int = 2000,
    echo_cmd: bool = True,
    quiet: bool = False,
    deadline: float | None = None,
    watch: Callable[[], str | None] | None = None,
    kill: Callable[[subprocess.Popen], None] | None = None,
    started: Callable[[subprocess.Popen], None] | None = None,
    **popen,
) -> Result:
    """Run argv, echoing its output (stdout and stderr merged) unless `quiet`.

    `deadline` (time.monotonic()) and `watch` (a check that returns why to stop, run
    every second) end it early: `kill` (default: SIGKILL) is called and the result
    says why. `started` is called with the process before its output is read.
    """
    if echo_cmd:
        show(argv)
    program = resolve(argv[0])
    try:
        proc = subprocess.Popen(
            [program, *(str(a) for a in argv[1:])],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            **popen,
        )
    except FileNotFoundError:
        fail(missing(program) if os.sep not in program else f"cannot run {program}: not found")
    except OSError as e:
        fail(f"cannot run {argv[0]}: {e.strerror or e}")
    stopped = None
    try:
        if started is not None:
            try:
                started(proc)
            except Failure as e:  # what the program said before it gave up says why
                _sigkill(proc)
                assert proc.stdout is not None
                said = proc.stdout.read(LINE_MAX).decode("utf-8", "replace").splitlines()
                proc.wait()
                fail(f"{e}: {error_line(said)}" if said else str(e))
        chunks: queue.Queue = queue.Queue(maxsize=64)
        threading.Thread(target=_reader, args=(proc.stdout, chunks), daemon=True).start()
        tail: deque[str] = deque(maxlen=keep)
        partial = b""
        next_watch = time.monotonic() + 1
        while True:
            now = time.monotonic()
            if stopped is None and deadline is not None and now >= deadline:
                stopped = "time"
            if stopped is None and watch is not None and now >= next_watch:
                stopped, next_watch = watch(), now + 1
            if stopped is not None:
                (kill or _sigkill)(proc)
                break
            try:
                chunk = chunks.get(timeout=0.25)
            except queue.Empty:
                continue
            if chunk is None:
                break
            partial = _lines(partial + chunk, tail, quiet)
        if partial:
            _lines(partial + b"\n", tail, quiet)
        rc = proc.wait()
    except BaseException:
        _sigkill(proc)
        proc.wait()
        raise
    return Result(rc, list(tail), stopped)


def _lines(data: bytes, tail: deque[str], quiet: bool) -> bytes:
    """Echo and keep the whole lines of `data` (each cut at LINE_MAX); return the
    unfinished rest, itself cut at LINE_MAX."""
    *whole, rest = data.split(b"\n")
    for line in whole:
        if len(line) > LINE_MAX:
            line = line[:LINE_MAX] + b" [line cut]"
        if not quiet:
            echo(line + b"\n")
        tail.append(ANSI.sub("", line.decode("utf-8", "replace").rstrip("\r")))
    if len(rest) > LINE_MAX:  # a line with no end: show what fits, drop the rest
        if not quiet:
            echo(rest[:LINE_MAX] + b" [line cut]\n")
        tail.append(rest[:LINE_MAX].decode("utf-8", "replace"))
        rest = b""
    return rest


def _sigkill(proc: subprocess.Popen) -> None:
    try:
        proc.kill()
    except OSError:
        pass


def check_run(argv: Sequence[Arg], what: str, **kwargs) -> list[str]:
    """run() that fails with `what: <the error line of the output>` on a non-zero exit."""
    result = run(argv, **kwargs)
    if result.rc:
        program = Path(str(argv[0])).name
        fail(f"{what}: {error_line(result.lines) or f'{program} exited {result.rc}'}")
    return result.lines


def capture(argv: Sequence[Arg], timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """A farm tool's short answer (its version, a query), its output bounded."""
    try:
        done = subprocess.run(
            [str(a) for a in argv], capture_output=True, stdin=DEVNULL, timeout=timeout, **kwargs
        )
    except (OSError, subprocess.SubprocessError) as e:
        return subprocess.CompletedProcess(argv, 127, b"", str(e).encode())
    done.stdout, done.stderr = done.stdout[: LINE_MAX * 64], done.stderr[: LINE_MAX * 64]
    return done


# Lines that only say "something above failed".
_GENERIC = re.compile(
    r"^error: command .* failed with exit (code|status)"
    r"|^error: Command .* returned non-zero exit status"
    r"|^error: subprocess-exited-with-error"
    r"|^ERROR Backend subprocess exited"
    r"|^(\w+\.)*(CalledProcessError|BuildBackendException|SystemExit)\b"
    r"|^(\w+\.)*\w*(CompileError|LinkError|ExecError)\b"
    r"|collect2: error: ld returned"
    r"|^error: (legacy-install-failure|metadata-generation-failed)"
    r"|^ninja: build stopped"
    r"|^make(\[\d+\])?: \*\*\*"
    r"|^note: This (error|is an issue)"
    r"|^hint: "
)
# A compiler's error diagnostic (gcc/clang `f.c:3:5: error:`, MSVC `f.c(3): error C1234:`).
_COMPILER_ERROR = re.compile(r"^\S.*?(:\d+(:\d+)?|\(\d+\)): (fatal )?error\b")
# Lines a compiler prints around its diagnostics (context, source excerpt, caret).
_COMPILER_CONTEXT = re.compile(
    r"^(\S.*?(:\d+(:\d+)?|\(\d+\)): |In file included from |from \S+:\d+|\S+: In |\d+ \||\|)"
)
_MEANINGFUL = re.compile(
    r"\bld(\.\w+)?: .*(cannot find|undefined reference|not found)"  # the linker
    r"|undefined reference to "
    r"|^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: |$)"  # a Python exception
    r"|^(fatal )?error: "  # setuptools, distutils, uv
    r"|^ERROR: "  # pip, build
    r"|^cause: "  # uv's explanation (not on a terminal)
    r"|^(╰─▶|×) "  # the same, on a terminal
)


def error_line(lines: Sequence[str], limit: int = 300) -> str:
    """The line of tool output that says what went wrong, shortened.

    That is the last meaningful line that is not a generic "command failed" one;
    for a compiler's error, the first error of the failing compile (later ones
    often follow from it).
    """
    stripped = [ANSI.sub("", line).strip() for line in lines if line.strip()]
    found = None
    for i in range(len(stripped) - 1, -1, -1):
        line = stripped[i]
        if _GENERIC.search(line):
            continue
        if _COMPILER_ERROR.search(line) or _MEANINGFUL.search(line):
            found = i
            break
    if found is None:
        rest = [line for line in stripped if not line.startswith(("+ ", "hint:"))]
        line = rest[-1] if rest else ""
    else:
        line = stripped[found]
        if _COMPILER_ERROR.search(line):
            start = found
            while start > 0 and _COMPILER_CONTEXT.search(stripped[start - 1]):
                start -= 1
            line = next(ln for ln in stripped[start:] if _COMPILER_ERROR.search(ln))
    line = re.sub(r"^(ERROR|error|cause):\s*", "", line)
    line = re.sub(r"^(╰─▶|×)\s*", "", line)
    return line if len(line) <= limit else line[: limit - 3] + "..."
