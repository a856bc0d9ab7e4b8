"""The system calls a bubblewrap sandbox is refused: a classic BPF program, built here
from a table and installed by the sandbox's reaper before it starts the build.

Namespaces do not cover everything the kernel keeps per user. The kernel's keyrings
are per uid: a build on a root worker runs as the real uid 65534 in the host's user
namespace, so a key it added (`add_key` to `@u`) would still be there for the next
build, for a test command, or for any other process of that uid. Podman's default
profile refuses the key calls and new user namespaces (a new one gives a process
every capability inside it: the kernel's less-trodden paths); the same rules here:

- `add_key`, `request_key`, `keyctl`: EPERM;
- `unshare` and `clone` with CLONE_NEWUSER: EPERM; `clone3`, whose flags a filter
  cannot read: ENOSYS, so the C library falls back to `clone`;
- another ABI than the native one (i386 `int 0x80`, x32 on x86-64): ENOSYS, so the
  table's numbers cannot be dodged by calling them under other numbers.
"""

from __future__ import annotations

import errno
import platform
import struct

from ..facts import Failure

CLONE_NEWUSER = 0x10000000
X32_BIT = 0x40000000
# machine -> (AUDIT_ARCH_*, {call: number}); the calls' numbers from the kernel's tables
ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {"add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272, "clone": 56,
         "clone3": 435},
    ),
    "aarch64": (
        0xC00000B7,
        {"add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97, "clone": 220,
         "clone3": 435},
    ),
}  # fmt: skip
REFUSED = ("add_key", "request_key", "keyctl")
USERNS_FLAGGED = ("unshare", "clone")  # refused when their first argument has CLONE_NEWUSER

# classic BPF opcodes and seccomp's return values
LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
RET = 0x06  # BPF_RET | BPF_K
ALLOW = 0x7FFF0000
ERRNO = 0x00050000
# offsets in struct seccomp_data: nr, arch, then the arguments from 16 (little-endian:
# the low half of the first argument is at 16)
NR, ARCH, ARG0_LOW = 0, 4, 16


class Unsupported(Failure):
    """This machine's architecture has no table: no sandbox without its filter."""


def program(machine: str | None = None) -> bytes:
    """The filter for `machine` (this one's by default), as struct sock_filter[]."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise Unsupported(f"no system call filter for {machine}: the sandbox needs one")
    audit_arch, numbers = ARCHES[machine]
    # instructions (opcode, jump-if-true label, jump-if-false label, k) and labels
    code: list[str | tuple[int, str | None, str | None, int]] = [
        (LD_ABS, None, None, ARCH),
        (JEQ, None, "enosys", audit_arch),
        (LD_ABS, None, None, NR),
    ]
    if machine == "x86_64":
        code.append((JGE, "enosys", None, X32_BIT))
    code += [(JEQ, "eperm", None, numbers[name]) for name in REFUSED]
    code.append((JEQ, "enosys", None, numbers["clone3"]))
    code += [(JEQ, "flags", None, numbers[name]) for name in USERNS_FLAGGED]
    code += [
        (RET, None, None, ALLOW),
        "flags",
        (LD_ABS, None, None, ARG0_LOW),
        (AND, None, None, CLONE_NEWUSER),
        (JEQ, "allow", "eperm", 0),
        "allow",
        (RET, None, None, ALLOW),
        "eperm",
        (RET, None, None, ERRNO | errno.EPERM),
        "enosys",
        (RET, None, None, ERRNO | errno.ENOSYS),
    ]
    return _assemble(code)


def _assemble(code: list[str | tuple[int, str | None, str | None, int]]) -> bytes:
    labels: dict[str, int] = {}
    instructions: list[tuple[int, str | None, str | None, int]] = []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(instructions)
        else:
            instructions.append(item)
    out = []
    for at, (op, true, false, k) in enumerate(instructions):
        # a jump counts the instructions it skips after the next one
        jt = labels[true] - at - 1 if true else 0
        jf = labels[false] - at - 1 if false else 0
        out.append(struct.pack("=HBBI", op, jt, jf, k))
    return b"".join(out)


# Installed by the reaper (bubblewrap.REAPER) in the sandbox, as the build's user, after
# no_new_privs: `prog` is program()'s bytes.
INSTALL = r"""
import ctypes
def install_filter(prog):
    libc = ctypes.CDLL(None, use_errno=True)
    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "no_new_privs")
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "seccomp")
"""


# -- containers: the engine's own default profile, with the same rules added

ENGINE_PROFILES = ("/usr/share/containers/seccomp.json",)  # containers-common's (podman)


def container_profile(default: dict) -> dict:
    """The engine's default profile (JSON, as containers-common ships it) with the key
    calls and `clone3` left out of every rule that allows them (the profile's default
    action refuses what no rule allows), and `unshare` and `clone` allowed only without
    CLONE_NEWUSER."""
    flagged = set(USERNS_FLAGGED)
    dropped = {*REFUSED, "clone3", *flagged}
    rules = []
    for rule in default.get("syscalls", []):
        rule = dict(rule)
        if rule.get("action") == "SCMP_ACT_ALLOW":
            rule["names"] = [n for n in rule.get("names", []) if n not in dropped]
            if not rule["names"]:
                continue
        rules.append(rule)
    without_newuser = {"index": 0, "value": CLONE_NEWUSER, "valueTwo": 0,
                       "op": "SCMP_CMP_MASKED_EQ"}  # fmt: skip
    rules.append({"names": sorted(flagged), "action": "SCMP_ACT_ALLOW", "args": [without_newuser]})
    return {**default, "defaultErrnoRet": errno.ENOSYS, "syscalls": rules}
