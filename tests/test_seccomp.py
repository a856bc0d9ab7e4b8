"""The sandbox's system call filter as data: a program for each machine with a table,
none for another, and the container profile made from the engine's default."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from farmtool.facts import Failure
from farmtool.isolation import seccomp

ENGINE_DEFAULT = Path("/usr/share/containers/seccomp.json")


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_every_jump_lands_inside_the_program_and_it_ends_in_returns(machine):
    code = seccomp.program(machine)
    instructions = [struct.unpack("=HBBI", code[i : i + 8]) for i in range(0, len(code), 8)]
    assert len(code) % 8 == 0 and len(instructions) < 64
    for at, (op, jt, jf, _) in enumerate(instructions):
        if op & 0x07 == 0x05:  # a jump
            assert at + 1 + max(jt, jf) < len(instructions)
    assert instructions[-1][0] == seccomp.RET
    audit_arch = seccomp.ARCHES[machine][0]
    assert any(k == audit_arch for *_, k in instructions)


def test_a_machine_without_a_table_gets_no_sandbox_and_says_why():
    with pytest.raises(Failure, match="no system call filter for riscv64"):
        seccomp.program("riscv64")


@pytest.mark.skipif(not ENGINE_DEFAULT.exists(), reason="containers-common's profile")
def test_the_container_profile_is_the_engines_own_with_the_farms_rules():
    default = json.loads(ENGINE_DEFAULT.read_text())
    profile = seccomp.container_profile(default)
    allowed = {
        name
        for rule in profile["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args")
        for name in rule["names"]
    }
    assert not {"keyctl", "add_key", "request_key", "clone3", "unshare", "clone"} & allowed
    conditioned = [r for r in profile["syscalls"] if r.get("args")]
    assert {"unshare", "clone"} <= {n for r in conditioned for n in r["names"]}
    assert profile["defaultAction"] == default["defaultAction"]
    # everything else the engine allows is still allowed
    engine_allowed = {
        name
        for rule in default["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("includes") and not rule.get("args")
        for name in rule["names"]
    }
    assert engine_allowed - allowed == {"keyctl", "clone3", "unshare", "clone"}
