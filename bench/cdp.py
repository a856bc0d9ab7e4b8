"""Headless Chromium driven through the DevTools protocol on a pipe.

`--remote-debugging-pipe` makes Chromium read protocol messages (JSON, each
ended by a NUL byte) on its fd 3 and write answers and events on its fd 4: no
websocket library is needed. `Browser.shown(url, js)` opens the URL in a new tab
and times how long until the JavaScript expression `js` is true in it (the
page's content is shown), and lists the API requests the page made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time


class Browser:
    def __init__(self, binary: str | None = None) -> None:
        binary = binary or shutil.which("chromium")
        if not binary:
            raise SystemExit("Debian's chromium is needed: apt-get install -y chromium")
        self.profile = tempfile.mkdtemp(prefix="wheelfarm-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:  # in the child: the pipes as fds 3 and 4
            read, write = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                f"--user-data-dir={self.profile}",
                "--window-size=1400,1000",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            close_fds=False,  # fds 3 and 4 are set up by fds(), after which nothing closes
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buf += chunk
        message, self._buf = self._buf.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        while True:
            answer = self._read()
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def shown(self, url: str, js: str, timeout: float = 60) -> tuple[float, list[str], str]:
        """Seconds until `js` is true on `url` in a new tab, the API requests
        it made, and the page's text then (or raise TimeoutError)."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        try:
            self.call("Network.enable", session)
            self.events.clear()
            start = time.perf_counter()
            self.call("Page.navigate", session, url=url)
            deadline = start + timeout
            while True:
                res = self.call(
                    "Runtime.evaluate", session, expression=f"!!({js})", returnByValue=True
                )
                if res.get("result", {}).get("value") is True:
                    took = time.perf_counter() - start
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{url}: {js} not true after {timeout} s")
                time.sleep(0.02)
            text = self.call(
                "Runtime.evaluate",
                session,
                expression="document.body.innerText",
                returnByValue=True,
            )["result"].get("value", "")
            requests = [
                e["params"]["request"]["url"]
                for e in self.events
                if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == session
            ]
            return took, requests, text
        finally:
            self.call("Target.closeTarget", targetId=target)
