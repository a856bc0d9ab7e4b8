"""Guards on the master's web server, for every endpoint: Buildbot's, the farm's, the index.

- Request bodies over `max_body_bytes` are answered 413 before any of them is kept:
  from the Content-Length when there is one, else (chunked) as soon as the limit is
  passed; the connection is then drained for a few seconds and closed.
- Session cookies are `HttpOnly` and `SameSite=Lax`, and `Secure` when the request
  came over HTTPS or the farm's public URL is https (a TLS proxy in front).
- Password guessing on `/auth/login` is throttled per user and per address: after
  `login_max_failures` failures for a user (three times that from one address) within
  `login_window` seconds, the login answers 429 with Retry-After, without checking
  the password, until the oldest failure leaves the window. Nothing blocks the reactor.

Buildbot's www is a twisted.web Site; its channels make requests with the site's
`requestFactory`, so `install()` points BuildbotSite's at FarmRequest (this process
has one web server) and sets what it enforces from the settings; `GuardService` calls it
when a configuration is taken, never while one is read (a refused one changes nothing).
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections import deque
from typing import Any

from buildbot.util.service import BuildbotService
from buildbot.www.auth import HTPasswdAuth
from twisted.internet import reactor
from twisted.web import resource, server

from ..buildbot_internals import requests_made_by
from ..settings import Settings


class FarmRequest(server.Request):
    """A request whose cookies carry the safe flags, and whose body has a size limit."""

    https_public_url = False  # set by install()
    max_body_bytes = 32 * 1024 * 1024  # set by install()
    DRAIN_SECONDS = 5.0  # how long a refused body is read (and dropped) before hanging up
    _received = 0
    _refused = False

    # -- the body: refused from its Content-Length before any of it is kept, or as soon
    #    as a chunked body passes the limit

    def gotLength(self, length):
        if length is not None and length > self.max_body_bytes:
            self._refuse_body()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body_bytes:
            self._refuse_body()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if not self._refused:  # a refused request is answered already, and never runs
            super().requestReceived(command, path, version)

    def _refuse_body(self) -> None:
        """Answer 413 now, read and drop what the client still sends for a few seconds
        (so it can read the answer), then hang up."""
        self._refused = True
        self.content = io.BytesIO()  # stays empty
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after the 413
        channel, transport = self.channel, self.channel.transport
        body = f"request body over the limit of {self.max_body_bytes} bytes\n".encode()
        transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        channel.dataReceived = lambda data: None  # the rest of the body goes nowhere
        channel.persistent = False
        transport.loseWriteConnection()
        reactor.callLater(self.DRAIN_SECONDS, transport.abortConnection)

    def addCookie(self, k, v, *args, **kwargs):
        kwargs["httpOnly"] = True
        kwargs["sameSite"] = "lax"
        if self.https_public_url or self.isSecure():
            kwargs["secure"] = True
        return super().addCookie(k, v, *args, **kwargs)


class LoginThrottle:
    """Failed logins per key (a user, an address) in a sliding window."""

    MAX_KEYS = 100_000  # a guesser inventing user names must not grow it forever

    def __init__(self, max_failures: int = 10, window: float = 300.0) -> None:
        self.max_failures, self.window = max_failures, window
        self._failures: dict[str, deque[float]] = {}

    def configure(self, max_failures: int, window: float) -> None:
        self.max_failures, self.window = max_failures, window

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, keys: dict[str, int], now: float | None = None) -> int:
        """Seconds until each key is under its limit (keys: key -> limit); 0: go ahead."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key, limit in keys.items():
            times = self._recent(key, now)
            if len(times) >= limit:
                wait = max(wait, times[len(times) - limit] + self.window - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self._failures) > self.MAX_KEYS:
            for key in list(self._failures):
                self._recent(key, now)  # drop what left the window
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


# one for the process: a reconfig makes new auth objects, and must not forget guesses
THROTTLE = LoginThrottle()
ADDRESS_FACTOR = 3  # one address may fail this many times a user's limit (shared NATs)


def login_user(request: server.Request) -> str:
    """The user name a basic or digest Authorization header names, or ''."""
    header = request.getHeader(b"authorization") or b""
    scheme, _, rest = header.partition(b" ")
    try:
        if scheme.lower() == b"basic":
            return base64.b64decode(rest.strip(), validate=True).partition(b":")[0].decode()
        if scheme.lower() == b"digest":
            found = re.search(rb'username="([^"]*)"', rest)
            return found.group(1).decode() if found else ""
    except ValueError:  # bad base64 or UTF-8: a guess all the same, under ''
        return ""
    return ""


class ThrottledLogin(resource.Resource):
    """/auth/login in front of Buildbot's password check: 429 while a user or an
    address has failed too often; a failure is an answer of 401 to given credentials."""

    isLeaf = True

    def __init__(self, inner: resource.Resource, throttle: LoginThrottle = THROTTLE) -> None:
        super().__init__()
        self.inner, self.throttle = inner, throttle

    def render(self, request: server.Request):
        if request.getHeader(b"authorization") is None:
            return self.inner.render(request)  # the challenge: nothing was tried
        user = f"user:{login_user(request).lower()}"
        address = f"address:{request.getClientAddress().host}"
        limit = self.throttle.max_failures
        wait = self.throttle.retry_after({user: limit, address: limit * ADDRESS_FACTOR})
        if wait:
            request.setResponseCode(429)
            request.setHeader(b"retry-after", str(wait).encode())
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return f"too many failed logins: try again in {wait} s\n".encode()

        def answered(_: Any) -> None:
            if request.code == 401:
                self.throttle.failed([user, address])
            elif request.code < 400:
                self.throttle.succeeded(user)

        def hung_up(_: Any) -> None:  # before the answer: counted as a failure
            self.throttle.failed([user, address])

        request.notifyFinish().addCallbacks(answered, hung_up)
        return self.inner.render(request)


class ThrottledHTPasswdAuth(HTPasswdAuth):
    """Buildbot's users-file login, throttled."""

    def getLoginResource(self) -> resource.Resource:
        return ThrottledLogin(super().getLoginResource())


def install(
    public_url: str, max_body_bytes: int, login_max_failures: int, login_window: float
) -> None:
    """Make the master's web server use FarmRequest, with these settings."""
    FarmRequest.https_public_url = public_url.startswith("https:")
    FarmRequest.max_body_bytes = max_body_bytes
    THROTTLE.configure(login_max_failures, login_window)
    requests_made_by(FarmRequest)


class GuardService(BuildbotService):
    """Applies the guards' settings when Buildbot takes a configuration (at start and
    at each reconfig it accepts), never while one is read: a refused configuration
    leaves the running guards as they were."""

    name = "wheelfarm-web-guard"

    def reconfigService(
        self, public_url: str, max_body_bytes: int, login_max_failures: int, login_window: float
    ):
        install(public_url, max_body_bytes, login_max_failures, login_window)
        return super().reconfigService()


def guard_service(settings: Settings) -> GuardService:
    return GuardService(
        public_url=settings.public_url,
        max_body_bytes=settings.max_body_bytes,
        login_max_failures=settings.login_max_failures,
        login_window=settings.login_window,
    )
