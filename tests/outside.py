"""A host outside this machine, for the tests of what a sandbox with user-mode networking
reaches: a network namespace joined to this one by a veth pair, holding an address this
machine reaches *through* it as a gateway, as it reaches a server on the internet (not
one of its own addresses, nor a network it is directly connected to, which a sandbox
never reaches). It serves a folder over HTTP and logs each path asked for.

    with OutsideHost() as host:
        url = host.serve(folder)          # http://203.0.113.X:PORT
        ... host.requests()               # the paths asked for, in order

Needs root (`ip netns`); `OutsideHost.skip_unless_possible()` skips a test elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SERVER = r"""
import http.server, functools, sys
folder, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        with open(log, "a") as f:
            f.write(self.path + "\n")
        super().do_GET()
handler = functools.partial(Handler, directory=folder)
server = http.server.ThreadingHTTPServer(("0.0.0.0", port), handler)
print("ready", flush=True)
server.serve_forever()
"""
_made = [0]


def host_address() -> str:
    """This machine's own address on its network (the one its default route leaves
    from): like its loopback, nothing a sandbox runs may reach it."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("203.0.113.1", 9))  # no packet is sent: it only picks a route
            address = s.getsockname()[0]
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("this machine has no network address besides loopback")
    return address


def ip(*args: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, text=True)


class OutsideHost:
    def __init__(self) -> None:
        _made[0] += 1
        n = (os.getpid() * 7 + _made[0]) % 60  # concurrent test runs get other numbers
        self.netns = f"wfoutside{os.getpid()}x{_made[0]}"
        tag = f"{os.getpid() % 100000}x{_made[0]}"
        self.host_end, self.far_end = f"wfh{tag}", f"wfo{tag}"  # at most 15 characters
        self.link = (f"198.51.100.{4 * n + 1}", f"198.51.100.{4 * n + 2}")  # a /30
        self.address = f"203.0.113.{n + 2}"
        self.servers: list[subprocess.Popen] = []
        self.log = Path(f"/tmp/{self.netns}.log")

    @staticmethod
    def skip_unless_possible() -> None:
        if os.geteuid() != 0 or not shutil.which("ip"):
            pytest.skip("a test host outside this machine needs root and `ip` (iproute2)")

    def __enter__(self) -> OutsideHost:
        self.skip_unless_possible()
        ip("netns", "add", self.netns)
        ip("link", "add", self.host_end, "type", "veth", "peer", "name", self.far_end)
        ip("link", "set", self.far_end, "netns", self.netns)
        ip("addr", "add", f"{self.link[0]}/30", "dev", self.host_end)
        ip("link", "set", self.host_end, "up")
        ip("addr", "add", f"{self.link[1]}/30", "dev", self.far_end, netns=self.netns)
        ip("link", "set", self.far_end, "up", netns=self.netns)
        ip("link", "set", "lo", "up", netns=self.netns)
        ip("addr", "add", f"{self.address}/32", "dev", "lo", netns=self.netns)
        ip("route", "add", "default", "via", self.link[0], netns=self.netns)
        ip("route", "add", f"{self.address}/32", "via", self.link[1])
        return self

    def serve(self, folder: Path, port: int = 8080) -> str:
        """Serve `folder` over HTTP from the outside host; its URL."""
        self.log.write_text("")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", SERVER, str(folder),
             str(port), str(self.log)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.servers.append(proc)
        return f"http://{self.address}:{port}"

    def requests(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def __exit__(self, *exc) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        for _ in range(50):  # the veth pair goes with the namespace, its route with it
            done = subprocess.run(["ip", "link", "show", self.host_end], capture_output=True)
            if done.returncode:
                break
            time.sleep(0.1)
        self.log.unlink(missing_ok=True)
