"""The emulator as one object: tenants, app registrations, tokens, and both HTTP faces.

`Emulator.handle(method, url, headers, body)` is the whole transport contract: the
`responses` adapter (tests) and an HTTPS server (later) only translate to and from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .control import ControlApi
from .graph_api import GraphApi
from .login_api import LoginApi
from .messages import EmuRequest, EmuResponse
from .tenant import EmuApp, EmuTenant
from .tokens import TokenStore


class Emulator:
    """Microsoft Entra ID login + Microsoft Graph v1.0 for several in-memory tenants.

    `clock` and `sleep` are looked up on every use, so a test may replace them at any time
    (`emulator.clock = lambda: 1e9`) to expire tokens or skip waits.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        token_lifetime: int = 3599,
        throttle_limit: int | None = None,
        throttle_window: float = 10.0,
        graph_url: str = "https://graph.microsoft.com",
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.tenants: dict[str, EmuTenant] = {}
        self.apps: dict[str, EmuApp] = {}
        self.tokens = TokenStore(clock=self._now)
        self.graph = GraphApi(
            tenants=self.tenants,
            tokens=self.tokens,
            clock=self._now,
            sleep=self._sleep,
            throttle_limit=throttle_limit,
            throttle_window=throttle_window,
        )
        self.login = LoginApi(
            tenants=self.tenants,
            apps=self.apps,
            tokens=self.tokens,
            clock=self._now,
            token_lifetime=token_lifetime,
            graph_url=graph_url,
        )
        self.control = ControlApi(self)

    def _now(self) -> float:
        return self.clock()

    def _sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    # --- set-up -------------------------------------------------------------------------------

    def add_tenant(self, tenant: EmuTenant) -> EmuTenant:
        self.tenants[tenant.tenant_id.lower()] = tenant
        return tenant

    def remove_tenant(self, tenant_id: str) -> None:
        self.tenants.pop(tenant_id.lower(), None)

    def add_app(
        self,
        client_id: str,
        secret: str,
        *,
        secret_expired: bool = False,
        tenant_ids: set[str] | None = None,
        permissions: frozenset[str] | set[str] | None = None,
        redirect_uris: list[str] | None = None,
        display_name: str = "entra-sync Directory Sync",
        certificates: Sequence[str | bytes] = (),
    ) -> EmuApp:
        """Register an app; by default multi-tenant and consented in every tenant.

        `certificates` (PEM or DER) are uploaded to it, as `app.add_certificate` does later.
        """
        app = EmuApp(
            client_id=client_id,
            secret=secret,
            secret_expired=secret_expired,
            display_name=display_name,
            tenant_ids={t.lower() for t in tenant_ids} if tenant_ids is not None else None,
            permissions=frozenset(permissions) if permissions is not None else None,
            redirect_uris=list(redirect_uris or []),
        )
        for certificate in certificates:
            app.add_certificate(certificate)
        self.apps[client_id] = app
        return app

    # --- test controls ------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (Graph: 401 'expired')."""
        self.tokens.expire_all()

    def fail_next(self, status: int, count: int = 1, **kwargs: Any) -> None:
        """Shortcut for `emulator.graph.fail_next`."""
        self.graph.fail_next(status, count, **kwargs)

    @property
    def requests_seen(self) -> list[tuple[str, str]]:
        """Graph requests as (METHOD, URL), in order."""
        return self.graph.requests_seen

    # --- transport contract -------------------------------------------------------------------

    def handle(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | None = b"",
    ) -> EmuResponse:
        """One HTTP exchange. `/_emulator/...` goes to the control API, `/v1.0/...` and
        `/beta/...` to Graph, the rest to login."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        request = EmuRequest(method.upper(), url, dict(headers or {}), body or b"")
        first = request.segments[0] if request.segments else ""
        if first == "_emulator":
            return self.control.handle(request)
        if first in ("v1.0", "beta"):
            return self.graph.handle(request)
        return self.login.handle(request)
