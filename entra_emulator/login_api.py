"""The Microsoft identity platform (v2.0 endpoints) for the emulator's tenants and apps.

Each endpoint follows the Microsoft Learn page named beside it, so code that works here works
against login.microsoftonline.com:

- `GET /{tenant}/v2.0/.well-known/openid-configuration` ("OpenID Connect on the Microsoft
  identity platform"): MSAL's tenant discovery. A domain-named tenant answers with GUID
  endpoints; `common`/`organizations` answer with the issuer `{login}/{tenantid}/v2.0`.
- `GET /{tenant}/discovery/v2.0/keys`: the JWKS (`kid` = `x5t`, `x5c`, `issuer`) that
  verifies ID tokens, signed RS256 by the key in `signing.py`.
- `GET|POST /{tenant}/oauth2/v2.0/authorize` ("Microsoft identity platform and OAuth 2.0
  authorization code flow"): `response_type=code` with PKCE, `state`, `nonce`, `prompt`,
  `login_hint`, `response_mode` (query, fragment, form_post). A sign-in page (`pages.py`)
  posts back here with an opaque transaction id (`ctx`); a consent page follows when the app
  has no consent in the user's tenant. Errors about the client or the redirect URI are pages,
  never redirects; protocol errors are redirected with `error`, `error_description`,
  `error_uri` and `state`.
- `GET|POST /{tenant}/v2.0/adminconsent` ("Admin consent on the Microsoft identity
  platform"): an admin signs in and accepts the app's permissions for the tenant; the app is
  then consented there (client credentials work) and the browser returns to
  `redirect_uri?admin_consent=True&tenant={tid}&scope=...&state=...`.
- `POST /{tenant}/oauth2/v2.0/token` with `grant_type` client_credentials, authorization_code
  or refresh_token. MSAL sends the secret twice, as `client_secret` and as HTTP Basic; either
  is accepted. Instead of the secret, a client assertion signed with a certificate uploaded to
  the app ("certificate credentials", checked in `client_assertions.py`).
- Token errors have the AADSTS shape: `error`, `error_description` ("AADSTSnnn: ...\\r\\nTrace
  ID: ..."), `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`. Codes and
  messages are those of "Microsoft Entra authentication and authorization error codes".

There are no SSO cookies: every authorize request shows the sign-in page (`prompt=none` gets
`login_required`). Accounts that can sign in are users with a `password` (see `tenant.py`).
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_plus, urlencode, urlsplit

from . import pages
from .client_assertions import CLIENT_ASSERTION_TYPE, AssertionRefused, check_client_assertion
from .graph_api import ALL_ROLES
from .messages import EmuRequest, EmuResponse, dump_json
from .odata import GUID_RE
from .signing import SigningKey
from .tenant import EmuApp, EmuTenant, EmuUser
from .tokens import GRAPH_APP_ID, TokenStore

GENERIC_TENANTS = ("common", "organizations")
DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")

CODE_LIFETIME = 600  # "Authorization codes are short lived... about 10 minutes"
FLOW_LIFETIME = 1800  # an unfinished sign-in page stays usable this long
ID_TOKEN_LIFETIME = 3600
REFRESH_INACTIVITY = 90 * 24 * 3600  # AADSTS700082: "inactive for 90.00:00:00"
LOOPBACK_HOSTS = frozenset(("localhost", "127.0.0.1", "::1"))
RESPONSE_MODES = ("query", "fragment", "form_post")

# OpenID Connect scopes, as the consent page names them.
OIDC_SCOPES = {
    "openid": "Sign you in",
    "profile": "View your basic profile",
    "email": "View your email address",
    "offline_access": "Maintain access to data you have given it access to",
}
# Delegated Microsoft Graph permissions the emulator knows (canonical case).
DELEGATED_SCOPES = {
    "User.Read": "Sign in and read user profile",
    "User.ReadBasic.All": "Read all users' basic profiles",
    "User.Read.All": "Read all users' full profiles",
    "GroupMember.Read.All": "Read group memberships",
    "Group.Read.All": "Read all groups",
    "Directory.Read.All": "Read directory data",
    "Application.Read.All": "Read applications",
    "Organization.Read.All": "Read organization information",
    "Calendars.Read": "Read user calendars",
    "Mail.Read": "Read user mail",
    "Mail.Send": "Send mail as a user",
}
# Application permissions (app roles), as the admin consent page names them.
APP_PERMISSIONS = {
    "User.Read.All": "Read all users' full profiles",
    "User.ReadWrite.All": "Read and write all users' full profiles",
    "GroupMember.Read.All": "Read all group memberships",
    "Group.Read.All": "Read all groups",
    "Group.ReadWrite.All": "Read and write all groups",
    "Directory.Read.All": "Read directory data",
    "Application.Read.All": "Read all applications",
    "Application.ReadWrite.All": "Read and write all applications",
    "Organization.Read.All": "Read organization information",
    "Organization.ReadWrite.All": "Read and write organization information",
}
_CANONICAL_DELEGATED = {name.lower(): name for name in DELEGATED_SCOPES}

FlowKind = Literal["authorize", "adminconsent"]


class LoginError(Exception):
    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status = status
        self.error = error
        self.code = code
        self.message = message


class _SignInError(Exception):
    """A failed password check: the sign-in page is shown again with these words."""

    def __init__(self, shown: str, code: int | None = None, message: str = "") -> None:
        super().__init__(shown)
        self.shown = shown
        self.code = code
        self.message = message


@dataclass
class LoginFault:
    status: int
    remaining: int
    path_contains: str | None = None
    body: Any = None
    retry_after: int | None = None


@dataclass(frozen=True)
class _Ids:
    """One exchange's trace and correlation ids, for error bodies, pages and redirects."""

    trace_id: str
    correlation_id: str
    now: float

    @property
    def stamp(self) -> str:
        return dt.datetime.fromtimestamp(self.now, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    def details(self, error: LoginError) -> pages.ErrorDetails:
        iso = dt.datetime.fromtimestamp(self.now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return pages.ErrorDetails(
            error.code, error.message, self.trace_id, self.correlation_id, iso
        )


@dataclass(frozen=True)
class Scopes:
    """A parsed `scope`: OpenID Connect scopes and Microsoft Graph permissions (short names)."""

    raw: str
    oidc: tuple[str, ...]
    graph: tuple[str, ...]  # "User.Read", ...; ".default" for the static scope

    @property
    def static(self) -> bool:
        return ".default" in self.graph

    def granted(self) -> tuple[str, ...]:
        """What a delegated token is for: Graph scopes, then the ID token scopes."""
        graph = tuple(s for s in self.graph if s != ".default") or ("User.Read",)
        return graph + tuple(s for s in self.oidc if s != "offline_access")


@dataclass
class _Reply:
    """Where and how a browser response goes back to the app."""

    redirect_uri: str
    state: str | None
    mode: str = "query"
    admin_consent: bool = False


@dataclass
class _Flow:
    """A sign-in in progress, found again by the `ctx` its pages post back."""

    ctx: str
    kind: FlowKind
    tenant_key: str
    client_id: str
    reply: _Reply
    params: dict[str, str]
    scopes: Scopes
    created_at: float
    tenant_id: str | None = None  # set once the user has signed in
    user_id: str | None = None


@dataclass
class AuthorizationCode:
    """What a code is bound to: client, redirect URI, PKCE challenge, user and scopes."""

    code: str
    client_id: str
    redirect_uri: str
    tenant_id: str
    user_id: str
    scopes: Scopes
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    session_id: str
    issued_at: float
    redeemed: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    tenant_id: str
    user_id: str
    scopes: Scopes
    session_id: str
    issued_at: float
    last_used: float = field(default=0.0)


GrantHandler = Callable[[EmuRequest, EmuTenant | None, dict[str, str]], dict[str, Any]]


class LoginApi:
    """login.microsoftonline.com for the emulator's tenants and app registrations."""

    def __init__(
        self,
        *,
        tenants: Mapping[str, EmuTenant],
        apps: Mapping[str, EmuApp],
        tokens: TokenStore,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = 3599,
        graph_url: str = "https://graph.microsoft.com",
        signing_key: SigningKey | None = None,
    ) -> None:
        self.tenants = tenants
        self.apps = apps
        self.tokens = tokens
        self.clock = clock
        self.token_lifetime = token_lifetime  # seconds; tests shorten it to expire tokens
        self.code_lifetime = CODE_LIFETIME
        self.graph_urls = {graph_url.rstrip("/").lower(), "https://graph.microsoft.com"}
        self.msgraph_host = graph_url.split("://", 1)[-1].rstrip("/")
        self.requests_seen: list[tuple[str, str]] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.faults: list[LoginFault] = []
        self.grant_handlers: dict[str, GrantHandler] = {
            "client_credentials": self._client_credentials,
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
        }
        self._signing_key = signing_key
        self._flows: dict[str, _Flow] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh: dict[str, RefreshGrant] = {}
        self._lock = threading.Lock()

    def add_graph_url(self, graph_url: str) -> None:
        """Accept `{graph_url}/.default` as Microsoft Graph's scope (an emulator host)."""
        self.graph_urls.add(graph_url.rstrip("/").lower())
        self.msgraph_host = graph_url.split("://", 1)[-1].rstrip("/")

    @property
    def signing_key(self) -> SigningKey:
        """The ID token key; made on first use, so emulators that never sign pay nothing."""
        with self._lock:
            if self._signing_key is None:
                self._signing_key = SigningKey.generate()
            return self._signing_key

    @signing_key.setter
    def signing_key(self, key: SigningKey) -> None:
        self._signing_key = key

    def use_signing_key_file(self, path: str | os.PathLike[str]) -> SigningKey:
        """Sign with the key in `path` (created if missing), so `kid` survives restarts."""
        self._signing_key = SigningKey.load_or_create(path)
        return self._signing_key

    def fail_next(
        self,
        status: int,
        count: int = 1,
        path_contains: str | None = None,
        body: Any = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `status` (an AADSTS error body)."""
        with self._lock:
            self.faults.append(LoginFault(status, count, path_contains, body, retry_after))

    # --- entry point --------------------------------------------------------------------------

    def handle(self, request: EmuRequest) -> EmuResponse:
        ids = _Ids(
            trace_id=str(uuid.uuid4()),
            correlation_id=request.header("client-request-id") or str(uuid.uuid4()),
            now=self.clock(),
        )
        with self._lock:
            self.requests_seen.append((request.method.upper(), request.url))
            self.counters["requests"] += 1
            fault = self._take_fault(request)
        if fault is not None:
            return self._fault_response(request, fault, ids.trace_id, ids.correlation_id)
        try:
            result = self._route(request, ids)
        except LoginError as error:
            result = (
                error.status,
                self._error_body(request, error, ids.trace_id, ids.correlation_id),
            )
        if isinstance(result, EmuResponse):
            response = result
            response.headers.setdefault("x-ms-request-id", ids.trace_id)
            response.headers.setdefault("client-request-id", ids.correlation_id)
        else:
            status, body = result
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Cache-Control": "no-store, no-cache",
                "Pragma": "no-cache",
                "x-ms-request-id": ids.trace_id,
                "client-request-id": ids.correlation_id,
            }
            response = EmuResponse(status, headers, dump_json(body))
        with self._lock:
            self.counters[f"status.{response.status}"] += 1
        return response

    def _take_fault(self, request: EmuRequest) -> LoginFault | None:
        for fault in self.faults:
            if fault.remaining > 0 and (
                fault.path_contains is None or fault.path_contains in request.url
            ):
                fault.remaining -= 1
                self.faults = [f for f in self.faults if f.remaining > 0]
                return fault
        return None

    def _route(self, request: EmuRequest, ids: _Ids) -> EmuResponse | tuple[int, dict[str, Any]]:
        segments = request.segments
        if len(segments) >= 2:
            tenant_key, rest = segments[0], segments[1:]
            if rest == ["v2.0", ".well-known", "openid-configuration"]:
                return 200, self._openid_configuration(request, tenant_key)
            if rest == ["discovery", "v2.0", "keys"]:
                return 200, self._jwks(request, tenant_key)
            if rest == ["oauth2", "v2.0", "token"]:
                return 200, self._token(request, tenant_key)
            if rest == ["oauth2", "v2.0", "authorize"]:
                return self._browser(request, tenant_key, "authorize", ids)
            if rest == ["v2.0", "adminconsent"]:
                return self._browser(request, tenant_key, "adminconsent", ids)
        return 404, {"error": "not_found", "error_description": "The emulator has no such page."}

    # --- tenants ------------------------------------------------------------------------------

    def _resolve(self, key: str) -> EmuTenant | None:
        """The tenant a path names (GUID or verified domain); None for common/organizations."""
        lowered = key.lower()
        if lowered in GENERIC_TENANTS:
            return None
        if GUID_RE.match(key):
            for tenant in self.tenants.values():
                if tenant.tenant_id.lower() == lowered:
                    return tenant
        elif DOMAIN_RE.match(key):
            for tenant in self.tenants.values():
                if lowered in (d.lower() for d in tenant.verified_domains()):
                    return tenant
        else:
            raise LoginError(
                400,
                "invalid_request",
                900023,
                f"Specified tenant identifier '{key}' is neither a valid DNS name, nor a valid "
                "external domain.",
            )
        raise LoginError(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may "
            "happen if there are no active subscriptions for the tenant.",
        )

    def _tenant_by_id(self, tenant_id: str) -> EmuTenant | None:
        return self.tenants.get(tenant_id.lower())

    def _openid_configuration(self, request: EmuRequest, key: str) -> dict[str, Any]:
        tenant = self._resolve(key)
        base = request.base
        path = tenant.tenant_id if tenant is not None else key.lower()
        issuer_tenant = tenant.tenant_id if tenant is not None else "{tenantid}"
        return {
            "token_endpoint": f"{base}/{path}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{path}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"https://{self.msgraph_host}/oidc/userinfo",
            "authorization_endpoint": f"{base}/{path}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/{path}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/{path}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/{path}/kerberos",
            "tenant_region_scope": "EU" if tenant is not None else None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": self.msgraph_host,
            "rbac_url": "https://pas.windows.net",
        }

    def _jwks(self, request: EmuRequest, key: str) -> dict[str, Any]:
        """Microsoft's v2.0 keys list each key's `issuer` (a template for multi-tenant paths)."""
        tenant = self._resolve(key)
        issuer_tenant = tenant.tenant_id if tenant is not None else "{tenantid}"
        return {"keys": [self.signing_key.jwk(issuer=f"{request.base}/{issuer_tenant}/v2.0")]}

    # --- browser: authorize and admin consent -------------------------------------------------

    def _browser(self, request: EmuRequest, key: str, kind: FlowKind, ids: _Ids) -> EmuResponse:
        """GET (or POST) starts a flow; a POST with `ctx` continues one."""
        params = dict(request.query)
        if request.method.upper() == "POST":
            form = request.form()
            if "ctx" in form:
                return self._continue(request, key, kind, form, ids)
            params.update(form)
        elif request.method.upper() != "GET":
            return self._error_page(
                LoginError(
                    400,
                    "invalid_request",
                    900561,
                    "The endpoint only accepts GET, POST requests. Received a "
                    f"{request.method.upper()} request.",
                ),
                ids,
            )
        # Until client and redirect URI check out, errors are pages: never send them elsewhere.
        app: EmuApp | None = None
        try:
            tenant = self._resolve(key)
            app = self._browser_app(params.get("client_id"), tenant, key)
            redirect_uri = self._redirect_uri(app, params.get("redirect_uri"))
        except LoginError as error:
            return self._error_page(error, ids, app)
        mode = params.get("response_mode") or "query"
        reply = _Reply(
            redirect_uri,
            params.get("state"),
            mode if mode in RESPONSE_MODES else "query",
            admin_consent=kind == "adminconsent",
        )
        try:
            if kind == "authorize":
                scopes = self._check_authorize(params)
            else:
                reply.mode = "query"
                scopes = self._parse_scopes(params.get("scope"))
        except LoginError as error:
            return self._reply(reply, self._error_params(request, error, ids, reply))
        flow = _Flow(
            ctx=secrets.token_urlsafe(32),
            kind=kind,
            tenant_key=key,
            client_id=app.client_id,
            reply=reply,
            params=params,
            scopes=scopes,
            created_at=self.clock(),
        )
        with self._lock:
            now = self.clock()
            for stale in [c for c, f in self._flows.items() if now - f.created_at > FLOW_LIFETIME]:
                del self._flows[stale]
            self._flows[flow.ctx] = flow
        return self._page(
            200,
            pages.sign_in_page(
                app_name=app.display_name,
                action=self._action(request, flow),
                ctx=flow.ctx,
                login=params.get("login_hint", ""),
            ),
        )

    def _browser_app(self, client_id: str | None, tenant: EmuTenant | None, key: str) -> EmuApp:
        if not client_id:
            raise _missing("client_id")
        app = self.apps.get(client_id)
        if app is None:
            raise _app_not_found(client_id, tenant.display_name if tenant else key)
        return app

    def _redirect_uri(self, app: EmuApp, redirect_uri: str | None) -> str:
        if not redirect_uri:
            raise LoginError(400, "invalid_request", 900971, "No reply address provided.")
        if not _redirect_allowed(app, redirect_uri):
            raise LoginError(
                400,
                "invalid_request",
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{app.client_id}'. Make sure the "
                "redirect URI sent in the request matches one added to your application in the "
                "Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more "
                "about how to fix this.",
            )
        return redirect_uri

    def _check_authorize(self, params: dict[str, str]) -> Scopes:
        """The protocol checks Microsoft answers by redirecting back to the app."""
        mode = params.get("response_mode") or "query"
        if mode not in RESPONSE_MODES:
            raise LoginError(
                400, "invalid_request", 70007, f"The response_mode '{mode}' is not supported."
            )
        response_type = params.get("response_type")
        if not response_type:
            raise _missing("response_type")
        types = set(response_type.split())
        if types != {"code"}:
            if "token" in types:
                raise LoginError(
                    400,
                    "unsupported_response_type",
                    700051,
                    "response_type 'token' is not enabled for the application.",
                )
            if "id_token" in types:
                raise LoginError(
                    400,
                    "unsupported_response_type",
                    700054,
                    "response_type 'id_token' is not enabled for the application.",
                )
            raise LoginError(
                400,
                "unsupported_response_type",
                70005,
                f"The response type '{response_type}' is not supported.",
            )
        scopes = self._parse_scopes(params.get("scope"))
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if method and not challenge:
            raise _missing("code_challenge")
        if challenge:
            if (method or "plain") not in ("S256", "plain"):
                raise LoginError(
                    400, "invalid_request", 50149, "Invalid Code_Challenge_method parameter."
                )
            if not 43 <= len(challenge) <= 128:
                raise LoginError(
                    400, "invalid_request", 501491, "Invalid size of Code_Challenge parameter."
                )
        if params.get("prompt") == "none":
            # The emulator keeps no session cookies, so a silent sign-in never succeeds.
            raise LoginError(
                400,
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            )
        return scopes

    def _parse_scopes(self, raw: str | None) -> Scopes:
        """OIDC scopes plus Microsoft Graph permissions; anything else is AADSTS70011."""
        if not raw or not raw.split():
            raise _missing("scope")
        oidc: list[str] = []
        graph: list[str] = []
        for item in raw.split():
            lowered = item.lower()
            if lowered in OIDC_SCOPES:
                oidc.append(lowered)
                continue
            name: str | None = item
            if "/" in item or ":" in item:
                name = None
                for base in (*self.graph_urls, GRAPH_APP_ID):
                    if lowered.startswith(base.lower() + "/"):
                        name = item[len(base) + 1 :]
            canonical = ".default" if name == ".default" else None
            if name is not None and canonical is None:
                canonical = _CANONICAL_DELEGATED.get(name.lower())
            if canonical is None:
                raise _invalid_scope(item)
            graph.append(canonical)
        if ".default" in graph and len(set(graph)) > 1:
            raise _invalid_scope(raw)
        return Scopes(raw=raw, oidc=tuple(dict.fromkeys(oidc)), graph=tuple(dict.fromkeys(graph)))

    def _continue(
        self, request: EmuRequest, key: str, kind: FlowKind, form: dict[str, str], ids: _Ids
    ) -> EmuResponse:
        with self._lock:
            flow = self._flows.get(form.get("ctx", ""))
        if (
            flow is None
            or flow.kind != kind
            or flow.tenant_key.lower() != key.lower()
            or self.clock() - flow.created_at > FLOW_LIFETIME
        ):
            return self._error_page(_flow_expired(), ids)
        app = self.apps.get(flow.client_id)
        if app is None:
            self._end(flow)
            return self._error_page(_app_not_found(flow.client_id, key), ids)
        if flow.user_id is None or flow.tenant_id is None:
            return self._sign_in(request, flow, app, form, ids)
        tenant = self._tenant_by_id(flow.tenant_id)
        user = tenant.users.get(flow.user_id) if tenant is not None else None
        if tenant is None or user is None:
            self._end(flow)
            return self._error_page(_flow_expired(), ids)
        self._end(flow)
        if form.get("consent") != "accept":
            error = LoginError(
                400, "access_denied", 65004, "User declined to consent to access the app."
            )
            return self._reply(flow.reply, self._error_params(request, error, ids, flow.reply))
        app.delegated_tenant_ids.add(tenant.tenant_id.lower())
        if flow.kind == "adminconsent":
            if app.tenant_ids is not None:
                app.tenant_ids.add(tenant.tenant_id.lower())
            self.counters["admin_consents"] += 1
            return self._reply(
                flow.reply,
                [
                    ("admin_consent", "True"),
                    ("tenant", tenant.tenant_id),
                    ("scope", flow.scopes.raw),
                    *_state(flow.reply),
                ],
            )
        return self._issue_code(flow, app, tenant, user)

    def _sign_in(
        self, request: EmuRequest, flow: _Flow, app: EmuApp, form: dict[str, str], ids: _Ids
    ) -> EmuResponse:
        login = form.get("login", "").strip()
        try:
            tenant, user = self._check_password(flow, login, form.get("passwd", ""))
        except _SignInError as failure:
            details = (
                ids.details(LoginError(400, "invalid_grant", failure.code, failure.message))
                if failure.code is not None
                else None
            )
            self.counters["sign_in_failures"] += 1
            return self._page(
                200,
                pages.sign_in_page(
                    app_name=app.display_name,
                    action=self._action(request, flow),
                    ctx=flow.ctx,
                    login=login,
                    error=failure.shown,
                    details=details,
                ),
            )
        self.counters["sign_ins"] += 1
        authority = self._resolve(flow.tenant_key)
        if authority is not None and authority.tenant_id != tenant.tenant_id:
            self._end(flow)
            error = LoginError(
                400,
                "access_denied",
                50020,
                "User account '{EmailHidden}' from identity provider "
                f"'https://sts.windows.net/{tenant.tenant_id}/' does not exist in tenant "
                f"'{authority.display_name}' and cannot access the application "
                f"'{app.client_id}'({app.display_name}) in that tenant. The account needs to be "
                "added as an external user in the tenant first. Sign out and sign in again with "
                "a different Azure Active Directory user account.",
            )
            if flow.kind == "adminconsent":
                return self._reply(flow.reply, self._error_params(request, error, ids, flow.reply))
            return self._error_page(error, ids, app)
        flow.tenant_id, flow.user_id = tenant.tenant_id, user.id
        if flow.kind == "adminconsent":
            if not user.is_admin:
                self._end(flow)
                return self._need_admin_approval(request, flow, app, ids)
            return self._consent(request, flow, app, tenant, user)
        consented = (
            app.consented_in(tenant.tenant_id)
            or tenant.tenant_id.lower() in app.delegated_tenant_ids
        )
        if consented and flow.params.get("prompt") != "consent":
            self._end(flow)
            return self._issue_code(flow, app, tenant, user)
        return self._consent(request, flow, app, tenant, user)

    def _check_password(self, flow: _Flow, login: str, password: str) -> tuple[EmuTenant, EmuUser]:
        """Find the account by UPN (the authority's tenant first) and check its password."""
        if not login:
            raise _SignInError("Enter a valid email address, phone number, or Skype name.")
        authority = self._resolve(flow.tenant_key)
        domain = login.rpartition("@")[2].lower()
        candidates = list(self.tenants.values())
        candidates.sort(
            key=lambda t: (
                authority is None or t.tenant_id != authority.tenant_id,
                domain not in (d.lower() for d in t.verified_domains()),
            )
        )
        for tenant in candidates:
            user = tenant.user_by_key(login)
            if user is not None and user.user_principal_name.lower() == login.lower():
                break
        else:
            directory = authority.default_domain if authority is not None else domain
            raise _SignInError(
                "This username may be incorrect. Make sure you typed it correctly. Otherwise, "
                "contact your admin.",
                50034,
                f"The user account {{EmailHidden}} does not exist in the '{directory}' "
                "directory. To sign into this application, the account must be added to the "
                "directory.",
            )
        if user.password is None:
            raise _SignInError(
                "Your account or password is incorrect.",
                50056,
                "Invalid or null password: password doesn't exist in the directory for this user.",
            )
        if not secrets.compare_digest(user.password.encode(), password.encode()):
            raise _SignInError(
                "Your account or password is incorrect. If you don't remember your password, "
                "reset it now.",
                50126,
                "Error validating credentials due to invalid username or password.",
            )
        if not user.account_enabled:
            raise _SignInError(
                "Your account has been locked. Contact your support person to unlock it, then "
                "try again.",
                50057,
                "The user account is disabled.",
            )
        return tenant, user

    def _consent(
        self, request: EmuRequest, flow: _Flow, app: EmuApp, tenant: EmuTenant, user: EmuUser
    ) -> EmuResponse:
        """The "Permissions requested" page. For `/.default`, exactly the app permissions the
        registration is configured with (every role only for `permissions=None`), as Microsoft
        lists a registration's configured permissions, so an admin sees what they grant."""
        for_organization = flow.kind == "adminconsent"
        permissions: list[tuple[str, str]] = []
        if for_organization and flow.scopes.static:
            granted = sorted(app.permissions) if app.permissions is not None else ALL_ROLES
            permissions += [(name, APP_PERMISSIONS.get(name, name)) for name in granted]
        permissions += [
            (name, DELEGATED_SCOPES[name]) for name in flow.scopes.graph if name != ".default"
        ]
        if not for_organization and flow.scopes.static:
            permissions.append(("User.Read", DELEGATED_SCOPES["User.Read"]))
        permissions += [(name, OIDC_SCOPES[name]) for name in flow.scopes.oidc]
        return self._page(
            200,
            pages.consent_page(
                app_name=app.display_name,
                action=self._action(request, flow),
                ctx=flow.ctx,
                user=user.user_principal_name,
                tenant_name=tenant.display_name,
                permissions=permissions,
                for_organization=for_organization,
            ),
        )

    def _need_admin_approval(
        self, request: EmuRequest, flow: _Flow, app: EmuApp, ids: _Ids
    ) -> EmuResponse:
        error = LoginError(400, "access_denied", 90094, "Administrator consent is required.")
        declined = LoginError(
            400, "access_denied", 65004, "User declined to consent to access the app."
        )
        back = _location(flow.reply, self._error_params(request, declined, ids, flow.reply))
        again = f"{request.base}/{flow.tenant_key}/v2.0/adminconsent?{urlencode(flow.params)}"
        return self._page(
            200,
            pages.need_admin_approval_page(
                app_name=app.display_name,
                details=ids.details(error),
                admin_sign_in_url=again,
                return_url=back,
            ),
        )

    def _issue_code(
        self, flow: _Flow, app: EmuApp, tenant: EmuTenant, user: EmuUser
    ) -> EmuResponse:
        params = flow.params
        record = AuthorizationCode(
            code=f"1.A{secrets.token_urlsafe(96)}",
            client_id=app.client_id,
            redirect_uri=flow.reply.redirect_uri,
            tenant_id=tenant.tenant_id,
            user_id=user.id,
            scopes=flow.scopes,
            nonce=params.get("nonce"),
            code_challenge=params.get("code_challenge") or None,
            code_challenge_method=(params.get("code_challenge_method") or "plain")
            if params.get("code_challenge")
            else None,
            session_id=str(uuid.uuid4()),
            issued_at=self.clock(),
        )
        with self._lock:
            # Forget codes nobody can redeem any more, so a long-running server stays small.
            horizon = record.issued_at - 2 * self.code_lifetime
            for stale in [c for c, r in self._codes.items() if r.issued_at < horizon]:
                del self._codes[stale]
            self._codes[record.code] = record
        self.counters["codes_issued"] += 1
        answer = [("code", record.code)]
        if params.get("client_info") == "1":
            answer.append(("client_info", _client_info(user.id, tenant.tenant_id)))
        answer += [*_state(flow.reply), ("session_state", record.session_id)]
        return self._reply(flow.reply, answer)

    def _end(self, flow: _Flow) -> None:
        with self._lock:
            self._flows.pop(flow.ctx, None)

    def _action(self, request: EmuRequest, flow: _Flow) -> str:
        path = "oauth2/v2.0/authorize" if flow.kind == "authorize" else "v2.0/adminconsent"
        return f"{request.base}/{flow.tenant_key}/{path}"

    # --- browser responses --------------------------------------------------------------------

    @staticmethod
    def _page(status: int, html: str) -> EmuResponse:
        return EmuResponse(
            status,
            {
                "Content-Type": "text/html; charset=utf-8",
                "Cache-Control": "no-store, no-cache",
                "Pragma": "no-cache",
                "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer",
            },
            html.encode("utf-8"),
        )

    def _error_page(self, error: LoginError, ids: _Ids, app: EmuApp | None = None) -> EmuResponse:
        self.counters["error_pages"] += 1
        return self._page(
            error.status,
            pages.error_page(
                details=ids.details(error), app_name=app.display_name if app else None
            ),
        )

    def _reply(self, reply: _Reply, params: list[tuple[str, str]]) -> EmuResponse:
        """Send parameters back to the app as `response_mode` says."""
        if reply.mode == "form_post":
            return self._page(200, pages.form_post_page(action=reply.redirect_uri, fields=params))
        return EmuResponse(
            302,
            {
                "Location": _location(reply, params),
                "Content-Type": "text/html; charset=utf-8",
                "Cache-Control": "no-store, no-cache",
                "Pragma": "no-cache",
            },
            b"",
        )

    def _error_params(
        self, request: EmuRequest, error: LoginError, ids: _Ids, reply: _Reply
    ) -> list[tuple[str, str]]:
        """Microsoft's redirected error: the admin consent flow adds `admin_consent=True`."""
        params = [
            ("error", error.error),
            ("error_description", self._description(error, ids)),
            ("error_uri", f"{request.base}/error?code={error.code}"),
        ]
        if reply.admin_consent:
            params.append(("admin_consent", "True"))
        return params + _state(reply)

    @staticmethod
    def _description(error: LoginError, ids: _Ids) -> str:
        return (
            f"AADSTS{error.code}: {error.message}\r\nTrace ID: {ids.trace_id}"
            f"\r\nCorrelation ID: {ids.correlation_id}\r\nTimestamp: {ids.stamp}"
        )

    # --- tokens -------------------------------------------------------------------------------

    def _token(self, request: EmuRequest, key: str) -> dict[str, Any]:
        if request.method.upper() != "POST":
            raise LoginError(
                400,
                "invalid_request",
                900561,
                "The endpoint only accepts POST, OPTIONS requests. Received a "
                f"{request.method.upper()} request.",
            )
        tenant = self._resolve(key)
        form = request.form()
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _missing("grant_type")
        handler = self.grant_handlers.get(grant_type)
        if handler is None:
            raise LoginError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        return handler(request, tenant, form)

    def _client_credentials(
        self, request: EmuRequest, tenant: EmuTenant | None, form: dict[str, str]
    ) -> dict[str, Any]:
        if tenant is None:
            raise LoginError(
                400,
                "invalid_request",
                50059,
                "No tenant-identifying information found in either the request or implied by any "
                "provided credentials.",
            )
        basic_id, basic_secret = _basic_credentials(request)
        client_id = form.get("client_id") or basic_id
        if not client_id:
            raise _missing("client_id")
        app = self.apps.get(client_id)
        if app is None or not app.consented_in(tenant.tenant_id):
            # No service principal in this tenant: Microsoft answers the same as for no app.
            raise _app_not_found(client_id, tenant.display_name)
        self._authenticate(request, app, tenant, form, basic_secret)
        scope = form.get("scope")
        if not scope:
            raise _missing("scope")
        resource = self._graph_resource(scope, tenant)
        roles = tuple(sorted(app.permissions)) if app.permissions is not None else ALL_ROLES
        info = self.tokens.issue(
            tenant_id=tenant.tenant_id,
            client_id=client_id,
            lifetime=self.token_lifetime,
            roles=roles,
            audience=resource,
        )
        self.counters["tokens_issued"] += 1
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": info.token,
        }

    def _graph_resource(self, scope: str, tenant: EmuTenant) -> str:
        """Client credentials take exactly `{resource}/.default`; only Graph is a resource here."""
        scopes = scope.split()
        for item in scopes:
            if not item.endswith("/.default"):
                raise LoginError(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {item} is not valid. Client credential flows "
                    "must have a scope value with /.default suffixed to the resource identifier "
                    "(application ID URI).",
                )
        resource = scopes[0].removesuffix("/.default")
        if resource.rstrip("/").lower() not in self.graph_urls and resource != GRAPH_APP_ID:
            raise LoginError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant.display_name}. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant. You "
                "might have sent your authentication request to the wrong tenant.",
            )
        return resource

    def _confidential_client(
        self, request: EmuRequest, tenant: EmuTenant | None, form: dict[str, str], key: str
    ) -> EmuApp:
        """The registered app, authenticated by its secret (body or HTTP Basic) or a client
        assertion."""
        basic_id, basic_secret = _basic_credentials(request)
        client_id = form.get("client_id") or basic_id
        if not client_id:
            raise _missing("client_id")
        app = self.apps.get(client_id)
        if app is None:
            raise _app_not_found(client_id, tenant.display_name if tenant else key)
        self._authenticate(request, app, tenant, form, basic_secret)
        return app

    def _authenticate(
        self,
        request: EmuRequest,
        app: EmuApp,
        tenant: EmuTenant | None,
        form: dict[str, str],
        basic_secret: str | None,
    ) -> None:
        """A client assertion signed with one of the app's certificates, else its secret."""
        assertion = form.get("client_assertion")
        if assertion is None:
            _check_secret(app, form.get("client_secret") or basic_secret)
            return
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise LoginError(
                400,
                "invalid_request",
                90014,
                "The required field 'client_assertion_type' is missing from the credential. "
                "Ensure that you have all the necessary parameters for the login request.",
            )
        try:
            check_client_assertion(
                assertion,
                client_id=app.client_id,
                certificates=app.certificates,
                audiences=self._token_endpoints(request, tenant),
                now=self.clock(),
            )
        except AssertionRefused as refused:
            raise LoginError(401, "invalid_client", refused.code, refused.message) from None

    @staticmethod
    def _token_endpoints(request: EmuRequest, tenant: EmuTenant | None) -> set[str]:
        """What a client assertion's `aud` may be: this tenant's token endpoint (v2.0 or v1),
        named by the path's tenant, its id or one of its domains."""
        names = {request.segments[0].lower()}
        if tenant is not None:
            names |= {tenant.tenant_id.lower(), *(d.lower() for d in tenant.verified_domains())}
        base = request.base.rstrip("/").lower()
        return {
            f"{base}/{name}/{path}"
            for name in names
            for path in ("oauth2/v2.0/token", "oauth2/token")
        }

    def _authorization_code(
        self, request: EmuRequest, tenant: EmuTenant | None, form: dict[str, str]
    ) -> dict[str, Any]:
        """Redeem a code: single use, short-lived, bound to client, redirect URI and PKCE."""
        app = self._confidential_client(request, tenant, form, request.segments[0])
        code = form.get("code")
        if not code:
            raise _missing("code")
        with self._lock:
            record = self._codes.get(code)
        if record is None:
            raise _malformed_grant()
        if record.client_id != app.client_id:
            raise _invalid_grant()
        if tenant is not None and tenant.tenant_id != record.tenant_id:
            raise LoginError(
                400,
                "invalid_grant",
                700005,
                "Provided Authorization Code is intended to use against other tenant, thus "
                "rejected.",
            )
        if record.redeemed:
            raise LoginError(
                400,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid "
                "code or use an existing refresh token.",
            )
        if self.clock() >= record.issued_at + self.code_lifetime:
            raise LoginError(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        redirect_uri = form.get("redirect_uri")
        if not redirect_uri:
            raise _missing("redirect_uri")
        if redirect_uri != record.redirect_uri:
            raise LoginError(
                400,
                "invalid_client",
                500112,
                f"The reply address '{redirect_uri}' does not match the reply address "
                f"'{record.redirect_uri}' provided when requesting Authorization code.",
            )
        if record.code_challenge is not None and not _pkce_matches(
            record.code_challenge, record.code_challenge_method, form.get("code_verifier")
        ):
            raise LoginError(
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the "
                "authorization request.",
            )
        with self._lock:
            if record.redeemed:  # a concurrent redemption won
                raise _invalid_grant()
            record.redeemed = True
        return self._user_tokens(
            request,
            app,
            record.tenant_id,
            record.user_id,
            record.scopes,
            session_id=record.session_id,
            nonce=record.nonce,
            client_info=form.get("client_info") == "1",
        )

    def _refresh_token(
        self, request: EmuRequest, tenant: EmuTenant | None, form: dict[str, str]
    ) -> dict[str, Any]:
        app = self._confidential_client(request, tenant, form, request.segments[0])
        token = form.get("refresh_token")
        if not token:
            raise _missing("refresh_token")
        with self._lock:
            grant = self._refresh.get(token)
        if grant is None:
            raise _malformed_grant()
        if grant.client_id != app.client_id or (
            tenant is not None and tenant.tenant_id != grant.tenant_id
        ):
            raise _invalid_grant()
        now = self.clock()
        if now - grant.last_used >= REFRESH_INACTIVITY:
            issued = dt.datetime.fromtimestamp(grant.issued_at, dt.UTC).isoformat()
            raise LoginError(
                400,
                "invalid_grant",
                700082,
                f"The refresh token has expired due to inactivity. The token was issued on "
                f"{issued.replace('+00:00', 'Z')} and was inactive for 90.00:00:00.",
            )
        grant.last_used = now
        return self._user_tokens(
            request,
            app,
            grant.tenant_id,
            grant.user_id,
            grant.scopes,
            session_id=grant.session_id,
            nonce=None,
            client_info=form.get("client_info") == "1",
        )

    def _user_tokens(
        self,
        request: EmuRequest,
        app: EmuApp,
        tenant_id: str,
        user_id: str,
        scopes: Scopes,
        *,
        session_id: str,
        nonce: str | None,
        client_info: bool,
    ) -> dict[str, Any]:
        """A delegated token response, shaped as the authorization code flow page shows it."""
        tenant = self._tenant_by_id(tenant_id)
        user = tenant.users.get(user_id) if tenant is not None else None
        if tenant is None or user is None:
            raise _invalid_grant()
        granted = scopes.granted()
        info = self.tokens.issue(
            tenant_id=tenant.tenant_id,
            client_id=app.client_id,
            lifetime=self.token_lifetime,
            audience=GRAPH_APP_ID,
            scopes=granted,
            user_id=user.id,
        )
        self.counters["tokens_issued"] += 1
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(granted),
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": info.token,
        }
        if "offline_access" in scopes.oidc:
            refresh = f"1.A{secrets.token_urlsafe(120)}"
            now = self.clock()
            with self._lock:
                self._refresh[refresh] = RefreshGrant(
                    app.client_id, tenant.tenant_id, user.id, scopes, session_id, now, now
                )
            body["refresh_token"] = refresh
        if "openid" in scopes.oidc:
            body["id_token"] = self._id_token(
                request, app, tenant, user, scopes, nonce=nonce, session_id=session_id
            )
        if client_info:
            body["client_info"] = _client_info(user.id, tenant.tenant_id)
        return body

    def _id_token(
        self,
        request: EmuRequest,
        app: EmuApp,
        tenant: EmuTenant,
        user: EmuUser,
        scopes: Scopes,
        *,
        nonce: str | None,
        session_id: str,
    ) -> str:
        """A v2.0 ID token ("ID token claims reference"); name/oid/username need `profile`."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "aud": app.client_id,
            "iss": f"{request.base}/{tenant.tenant_id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + ID_TOKEN_LIFETIME,
            "aio": _b64(secrets.token_bytes(72)),
        }
        if "email" in scopes.oidc and user.mail:
            claims["email"] = user.mail
        if "profile" in scopes.oidc:
            claims["name"] = user.display_name
        if nonce is not None:
            claims["nonce"] = nonce
        if "profile" in scopes.oidc:
            claims["oid"] = user.id
            claims["preferred_username"] = user.user_principal_name
        claims.update(
            {
                "rh": f"1.A{_b64(secrets.token_bytes(48))}.",
                "sid": session_id,
                # Pairwise, as Microsoft's: the same user has another `sub` in another app.
                "sub": _b64(
                    hashlib.sha256(
                        f"{app.client_id}:{tenant.tenant_id}:{user.id}".encode()
                    ).digest()
                ),
                "tid": tenant.tenant_id,
                "uti": _b64(uuid.uuid4().bytes),
                "ver": "2.0",
            }
        )
        self.counters["id_tokens_issued"] += 1
        return self.signing_key.sign(claims)

    # --- errors -------------------------------------------------------------------------------

    def _error_body(
        self, request: EmuRequest, error: LoginError, trace_id: str, correlation_id: str
    ) -> dict[str, Any]:
        stamp = dt.datetime.fromtimestamp(self.clock(), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": error.error,
            "error_description": f"AADSTS{error.code}: {error.message}\r\nTrace ID: {trace_id}"
            f"\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {stamp}",
            "error_codes": [error.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{request.base}/error?code={error.code}",
        }

    def _fault_response(
        self, request: EmuRequest, fault: LoginFault, trace_id: str, correlation_id: str
    ) -> EmuResponse:
        headers = {"Content-Type": "application/json; charset=utf-8", "x-ms-request-id": trace_id}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.body is None:
            error = LoginError(
                fault.status,
                "temporarily_unavailable",
                90033,
                "A transient error has occurred. Please try again.",
            )
            body = dump_json(self._error_body(request, error, trace_id, correlation_id))
        elif isinstance(fault.body, bytes | str):
            body = fault.body.encode() if isinstance(fault.body, str) else fault.body
        else:
            body = dump_json(fault.body)
        self.counters[f"status.{fault.status}"] += 1
        return EmuResponse(fault.status, headers, body)


def _missing(name: str) -> LoginError:
    return LoginError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _invalid_scope(scope: str) -> LoginError:
    return LoginError(
        400,
        "invalid_scope",
        70011,
        f"The provided value for the input parameter 'scope' is not valid. The scope {scope} "
        "is not valid.",
    )


def _app_not_found(client_id: str, directory: str) -> LoginError:
    return LoginError(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory "
        f"'{directory}'. This can happen if the application has not been installed by the "
        "administrator of the tenant or consented to by any user in the tenant. You may have "
        "sent your authentication request to the wrong tenant.",
    )


def _flow_expired() -> LoginError:
    return LoginError(
        400, "invalid_request", 50089, "Authentication failed due to flow token expired."
    )


def _malformed_grant() -> LoginError:
    return LoginError(
        400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
    )


def _invalid_grant() -> LoginError:
    return LoginError(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")


def _check_secret(app: EmuApp, secret: str | None) -> None:
    if not secret:
        raise LoginError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )
    if secret != app.secret:
        raise LoginError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            f"the client secret value, not the client secret ID, for a secret added to app "
            f"'{app.client_id}'.",
        )
    if app.secret_expired:
        raise LoginError(
            401,
            "invalid_client",
            7000222,
            f"The provided client secret keys for app '{app.client_id}' are expired. Visit the "
            "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
            "consider using certificate credentials for added security: "
            "https://aka.ms/certCreds.",
        )


def _redirect_allowed(app: EmuApp, redirect_uri: str) -> bool:
    """Exact match; loopback URLs match whatever their port (Microsoft ignores it there).

    An app with no registered redirect URIs accepts loopback URLs only, so tests and local
    tools work without set-up and nothing is ever sent to another host.
    """
    if redirect_uri in app.redirect_uris:
        return True
    parts = urlsplit(redirect_uri)
    try:
        host = parts.hostname
    except ValueError:
        return False
    loopback = parts.scheme in ("http", "https") and host in LOOPBACK_HOSTS and not parts.fragment
    if not loopback:
        return False
    if not app.redirect_uris:
        return True
    for registered in app.redirect_uris:
        known = urlsplit(registered)
        if (known.scheme, known.hostname, known.path or "/", known.query) == (
            parts.scheme,
            host,
            parts.path or "/",
            parts.query,
        ):
            return True
    return False


def _pkce_matches(challenge: str, method: str | None, verifier: str | None) -> bool:
    if not verifier:
        return False
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        return secrets.compare_digest(_b64(digest), challenge)
    return secrets.compare_digest(verifier.encode(), challenge.encode())


def _state(reply: _Reply) -> list[tuple[str, str]]:
    return [("state", reply.state)] if reply.state is not None else []


def _location(reply: _Reply, params: list[tuple[str, str]]) -> str:
    """The redirect URL: parameters in the query (or fragment), after the app's own query."""
    encoded = urlencode(params)
    if reply.mode == "fragment":
        return f"{reply.redirect_uri}#{encoded}"
    separator = "&" if "?" in reply.redirect_uri else "?"
    return f"{reply.redirect_uri}{separator}{encoded}"


def _client_info(user_id: str, tenant_id: str) -> str:
    """MSAL's `client_info`: base64url JSON with the user (`uid`) and home tenant (`utid`)."""
    return _b64(json.dumps({"uid": user_id, "utid": tenant_id}).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _basic_credentials(request: EmuRequest) -> tuple[str | None, str | None]:
    """client_id and secret from `Authorization: Basic` (each form-urlencoded, RFC 6749 2.3.1)."""
    header = request.header("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        decoded = base64.b64decode(value.strip()).decode("utf-8")
    except ValueError:
        return None, None
    user, _, password = decoded.partition(":")
    return unquote_plus(user), unquote_plus(password)
