"""User-mode networking for the few sandboxed phases that need the network.

Never the host's network namespace (`--share-net`): the phase gets a namespace of its
own, which Debian's slirp4netns (what rootless podman uses) connects to the outside
through a user-mode TCP/IP stack with the host's loopback unreachable
(`--disable-host-loopback`). farmtool configures that namespace itself before the
sandbox runs anything: an address and a default route through slirp4netns, and
blackhole routes for what is not "the outside": the host's own addresses, the networks
it is directly connected to (a volunteer's LAN), and the private, shared, link-local
and reserved ranges (`UNREACHABLE`). Its resolver is slirp4netns's (10.0.2.3).
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import tempfile
import time

from ..facts import fail
from ..tools import which

RESOLVER = "nameserver 10.0.2.3\n"
TAP, ADDRESS, GATEWAY = "tap0", "10.0.2.100/24", "10.0.2.2"  # slirp4netns's defaults
# Never reachable from a sandbox, besides the host's addresses and connected networks.
UNREACHABLE = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "224.0.0.0/4", "240.0.0.0/4",
)  # fmt: skip


def host_networks() -> list[str]:
    """The host's own IPv4 addresses and the networks it is directly connected to."""
    found: list[str] = []
    ip = which("ip")
    if not ip:
        fail("this phase needs user-mode networking: install iproute2 (the `ip` command)")
    for argv in (
        [ip, "-j", "-4", "addr", "show"],
        [ip, "-j", "-4", "route", "show", "table", "main"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        try:
            items = json.loads(done.stdout or "[]")
        except ValueError:
            items = []
        for item in items:
            for addr in item.get("addr_info", []):
                found.append(f"{addr['local']}/32")
            if item.get("scope") == "link" and item.get("dst", "default") != "default":
                found.append(str(item["dst"]))
    return [n for n in dict.fromkeys(found) if _network(n)]


def _network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def namespace_setup() -> str:
    """`ip -batch` commands that give the namespace its way out, and only that."""
    lines = [f"link set {TAP} up", f"addr add {ADDRESS} dev {TAP}"]
    lines.append(f"route add default via {GATEWAY} dev {TAP}")
    own = ipaddress.ip_network(ADDRESS, strict=False)  # its connected route stays the way out
    for network in dict.fromkeys((*UNREACHABLE, *host_networks())):
        net = ipaddress.ip_network(network, strict=False)
        if net != own:
            lines.append(f"route add blackhole {net}")
    return "\n".join(lines) + "\n"


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
            if not which("slirp4netns") or not which("nsenter"):
                fail(
                    "this phase needs user-mode networking: install slirp4netns "
                    "(apt-get install slirp4netns)"
                )
            fd, self.resolv_conf = tempfile.mkstemp(prefix="wheelfarm-resolv-")
            os.write(fd, RESOLVER.encode())
            os.fchmod(fd, 0o644)  # the build's user reads it
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
        argv = [str(which("slirp4netns")), "--mtu=65520", "--disable-host-loopback"]
        argv += ["--ready-fd", str(ready_w), str(pid), TAP]
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
        # into the sandbox's namespace: as root, its network one; else through the user
        # namespace it owns (bwrap made it for this user)
        enter = [str(which("nsenter")), f"--target={pid}", "--net"]
        if os.geteuid() != 0:
            enter += ["--user", "--preserve-credentials"]
        done = subprocess.run(
            [*enter, str(which("ip")), "-batch", "-"],
            input=namespace_setup(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode:
            fail(f"cannot configure the sandbox's network: {done.stderr.strip()[:300]}")

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
