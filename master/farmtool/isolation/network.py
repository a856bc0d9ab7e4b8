"""User-mode networking for the few sandboxed phases that need the network.

Never the host's network namespace (`--share-net`): the phase gets a namespace of
its own, which Debian's slirp4netns (what rootless podman uses) connects to the
outside through a user-mode TCP/IP stack, with the host's loopback unreachable
(`--disable-host-loopback`): not the master's UI, not a database or broker that
listens on 127.0.0.1. Its resolver is slirp4netns's (10.0.2.3).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

from ..facts import fail
from ..tools import which

RESOLVER = "nameserver 10.0.2.3\n"


class UserNet:
    """Pipes bwrap reports to and waits on; `attach` gives the blocked sandbox its
    network, then lets it go on."""

    def __init__(self, network: bool) -> None:
        self.network = network
        self.slirp: subprocess.Popen | None = None
        self.info_r, self.info_w = os.pipe()
        self.block_r, self.block_w = os.pipe()
        self.resolv_conf: str | None = None
        if network:
            if not which("slirp4netns"):
                fail(
                    "this phase needs user-mode networking: install slirp4netns "
                    "(apt-get install slirp4netns)"
                )
            fd, self.resolv_conf = tempfile.mkstemp(prefix="wheelfarm-resolv-")
            os.write(fd, RESOLVER.encode())
            os.close(fd)

    @property
    def child_fds(self) -> tuple[int, int]:
        return self.info_w, self.block_r

    def child_pid(self) -> int:
        """The sandbox's first process, as bwrap reports it on its info fd."""
        os.close(self.info_w)
        os.close(self.block_r)
        data = b""
        while True:
            chunk = os.read(self.info_r, 4096)
            if not chunk:
                fail("bubblewrap did not start the sandbox")
            data += chunk
            try:
                return int(json.loads(data)["child-pid"])
            except (ValueError, KeyError):
                continue

    def attach(self, pid: int, timeout: float = 30) -> None:
        """Connect the sandbox's namespace (of process `pid`) to the outside."""
        if not self.network:
            return
        ready_r, ready_w = os.pipe()
        argv = ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback"]
        argv += ["--ready-fd", str(ready_w), str(pid), "tap0"]
        self.slirp = subprocess.Popen(
            argv,
            pass_fds=(ready_w,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(ready_w)
        deadline = time.monotonic() + timeout
        ok = b""
        while time.monotonic() < deadline and not ok:
            ok = os.read(ready_r, 1)
            if not ok:
                break
        os.close(ready_r)
        if ok != b"1":
            fail("slirp4netns could not give the sandbox its network")

    def release(self) -> None:
        os.write(self.block_w, b"go")

    def close(self) -> None:
        for fd in (self.info_r, self.block_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.slirp is not None:
            self.slirp.terminate()
            try:
                self.slirp.wait(10)
            except subprocess.TimeoutExpired:
                self.slirp.kill()
                self.slirp.wait()
        if self.resolv_conf:
            os.unlink(self.resolv_conf)
