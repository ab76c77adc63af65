"""The Microsoft identity platform endpoints MSAL Python uses for client credentials.

- `GET /{tenant}/v2.0/.well-known/openid-configuration`: MSAL's tenant discovery. MSAL reads
  `authorization_endpoint` and `token_endpoint` (required), `issuer` and
  `device_authorization_endpoint` (optional), and takes its tenant from the token endpoint's
  path, so a domain-named tenant answers with GUID endpoints, as Microsoft does.
- `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`: MSAL sends the
  secret twice, as `client_secret` in the body and as HTTP Basic; either is accepted.
- Errors have the AADSTS shape: `error`, `error_description` ("AADSTSnnn: ...\\r\\nTrace ID:
  ..."), `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`.

Authorization code + PKCE, admin consent and sign-in pages come later: add a grant type to
`grant_handlers` and routes to `handle`.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from .graph_api import ALL_ROLES, GUID_RE
from .messages import EmuRequest, EmuResponse, dump_json
from .tenant import EmuApp, EmuTenant
from .tokens import GRAPH_APP_ID, TokenStore

GENERIC_TENANTS = ("common", "organizations")
DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class LoginError(Exception):
    def __init__(self, status: int, error: str, code: int, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.status = status
        self.error = error
        self.code = code
        self.message = message


@dataclass
class LoginFault:
    status: int
    remaining: int
    path_contains: str | None = None
    body: Any = None
    retry_after: int | None = None


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
    ) -> None:
        self.tenants = tenants
        self.apps = apps
        self.tokens = tokens
        self.clock = clock
        self.token_lifetime = token_lifetime  # seconds; tests shorten it to expire tokens
        self.graph_urls = {graph_url.rstrip("/").lower(), "https://graph.microsoft.com"}
        self.msgraph_host = graph_url.split("://", 1)[-1].rstrip("/")
        self.requests_seen: list[tuple[str, str]] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.faults: list[LoginFault] = []
        self.grant_handlers: dict[
            str, Callable[[EmuRequest, EmuTenant, dict[str, str]], dict[str, Any]]
        ] = {
            "client_credentials": self._client_credentials,
        }
        self._lock = threading.Lock()

    def add_graph_url(self, graph_url: str) -> None:
        """Accept `{graph_url}/.default` as Microsoft Graph's scope (an emulator host)."""
        self.graph_urls.add(graph_url.rstrip("/").lower())
        self.msgraph_host = graph_url.split("://", 1)[-1].rstrip("/")

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
        trace_id = str(uuid.uuid4())
        correlation_id = request.header("client-request-id") or str(uuid.uuid4())
        with self._lock:
            self.requests_seen.append((request.method.upper(), request.url))
            self.counters["requests"] += 1
            fault = self._take_fault(request)
        if fault is not None:
            return self._fault_response(request, fault, trace_id, correlation_id)
        try:
            status, body = self._route(request)
        except LoginError as error:
            status, body = error.status, self._error_body(request, error, trace_id, correlation_id)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Cache-Control": "no-store, no-cache",
            "Pragma": "no-cache",
            "x-ms-request-id": trace_id,
            "client-request-id": correlation_id,
        }
        with self._lock:
            self.counters[f"status.{status}"] += 1
        return EmuResponse(status, headers, dump_json(body))

    def _take_fault(self, request: EmuRequest) -> LoginFault | None:
        for fault in self.faults:
            if fault.remaining > 0 and (
                fault.path_contains is None or fault.path_contains in request.url
            ):
                fault.remaining -= 1
                self.faults = [f for f in self.faults if f.remaining > 0]
                return fault
        return None

    def _route(self, request: EmuRequest) -> tuple[int, dict[str, Any]]:
        segments = request.segments
        if len(segments) >= 2:
            tenant_key, rest = segments[0], segments[1:]
            if rest == ["v2.0", ".well-known", "openid-configuration"]:
                return 200, self._openid_configuration(request, tenant_key)
            if rest == ["discovery", "v2.0", "keys"]:
                self._resolve(tenant_key)
                return 200, {"keys": []}
            if rest == ["oauth2", "v2.0", "token"]:
                return 200, self._token(request, tenant_key)
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
        if tenant is None:
            raise LoginError(
                400,
                "invalid_request",
                50059,
                "No tenant-identifying information found in either the request or implied by any "
                "provided credentials.",
            )
        return handler(request, tenant, form)

    def _client_credentials(
        self, request: EmuRequest, tenant: EmuTenant, form: dict[str, str]
    ) -> dict[str, Any]:
        basic_id, basic_secret = _basic_credentials(request)
        client_id = form.get("client_id") or basic_id
        if not client_id:
            raise _missing("client_id")
        app = self.apps.get(client_id)
        if app is None or (
            app.tenant_ids is not None and tenant.tenant_id.lower() not in app.tenant_ids
        ):
            raise LoginError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
            )
        secret = form.get("client_secret") or basic_secret
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
                f"'{client_id}'.",
            )
        if app.secret_expired:
            raise LoginError(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{client_id}' are expired. Visit the "
                "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
                "consider using certificate credentials for added security: "
                "https://aka.ms/certCreds.",
            )
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
