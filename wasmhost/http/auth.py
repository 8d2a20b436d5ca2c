"""Bearer-token auth for the admin API.

With no token configured, admin routes are open (the server then refuses to
bind to a non-loopback address unless told --insecure). Tokens are compared in
constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from ..errors import Unauthorized


class AdminAuth:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def accepts(self, header: bytes) -> bool:
        """True when a raw `Authorization` header value is `Bearer <the admin token>`."""
        if self._token is None:
            return False
        scheme, _, given = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self._token)

    def check(self, request: Request) -> None:
        if self._token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized("this route needs an admin token: send 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(given.strip().encode(), self._token):
            raise Unauthorized("the admin token is not valid")
