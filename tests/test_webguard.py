"""The web server's guards, without a network: cookie flags and the login throttle."""

from __future__ import annotations

from twisted.web.test.requesthelper import DummyChannel

from wheelfarm.web.guard import FarmRequest, LoginThrottle


def cookie(https_public_url: bool) -> bytes:
    FarmRequest.https_public_url = https_public_url
    try:
        request = FarmRequest(DummyChannel())
        request.addCookie(b"TWISTED_SESSION", b"token", path=b"/", secure=False)
        return request.cookies[-1]
    finally:
        FarmRequest.https_public_url = False


def test_session_cookie_flags():
    assert cookie(False) == b"TWISTED_SESSION=token; Path=/; HttpOnly; SameSite=lax"
    assert cookie(True) == b"TWISTED_SESSION=token; Path=/; Secure; HttpOnly; SameSite=lax"


def test_throttle_window():
    throttle = LoginThrottle(max_failures=3, window=60)
    keys = {"user:alice": 3, "address:1.2.3.4": 9}
    for t in range(3):
        assert throttle.retry_after(keys, now=t) == 0
        throttle.failed(list(keys), now=t)
    assert throttle.retry_after(keys, now=10) == 51  # the first failure leaves at 60
    assert throttle.retry_after({"user:bob": 3, "address:1.2.3.4": 9}, now=10) == 0
    assert throttle.retry_after(keys, now=60) == 0
    throttle.failed(list(keys), now=61)
    throttle.succeeded("user:alice")
    assert throttle.retry_after(keys, now=62) == 0
