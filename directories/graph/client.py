"""Microsoft Graph v1.0, read-only and app-only (the sign-in lives in `signin.py`).

One `GraphClient` per tenant and run. It gets tokens from a cached MSAL confidential client,
pages with `@odata.nextLink`, retries throttling and transient failures with bounded backoff,
and turns every other failure into one of the errors in `errors.py`. Delta rounds are merged
in `delta.py`; many groups' direct members are read through `$batch` (`group_members`).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias
from urllib.parse import quote, urlsplit

import msal
import requests

from .clean import Cleaning, ObjectKind, clean_text, escaped, parse_group, parse_user
from .delta import GroupRound, UserRound, member_ref
from .errors import (
    GraphBadResponse,
    GraphDeltaExpired,
    GraphError,
    GraphForbidden,
    GraphNotAssigned,
    GraphNotFound,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    GraphWrongTenant,
)
from .msal_http import new_msal_app
from .settings import GraphSettings
from .types import (
    AppRoleAssignment,
    DeltaRound,
    GraphGroup,
    GraphUser,
    GroupChange,
    MemberRef,
    Organization,
    RequestStats,
    ServicePrincipal,
    UserChange,
)

logger = logging.getLogger(__name__)

USER_FIELDS = (
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "givenName",
    "surname",
    "accountEnabled",
    "userType",
)
GROUP_FIELDS = (
    "id",
    "displayName",
    "description",
    "mail",
    "mailEnabled",
    "securityEnabled",
    "groupTypes",
)
ASSIGNMENT_FIELDS = ("id", "principalId", "principalType", "principalDisplayName")
SERVICE_PRINCIPAL_FIELDS = ("id", "appId", "displayName", "appRoleAssignmentRequired")
ORGANIZATION_FIELDS = ("id", "displayName", "verifiedDomains")
PAGE_SIZE = 999  # the largest page Graph serves for directory objects
# Pages one listing or delta round may take. Graph may send empty pages with a next link
# "many times" before the data (a known delta behaviour), so empty pages alone prove nothing;
# but 20,000 pages hold 20 million objects at 999 a page, far beyond any directory, and a
# server that keeps inventing next links must not hold a sync (and its lock) for ever.
MAX_PAGES = 20_000

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
QUERY_SAFE = ",'=()"  # keep $select lists and OData literals readable in URLs and logs
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
OK_STATUSES = frozenset({200})
# "Combine multiple HTTP requests using JSON batching": up to 20 requests in one batch.
BATCH_LIMIT = 20
# A parseable batch answers 200; "Microsoft Graph throttling guidance" (Throttling and batching)
# also has the batch itself fail with 424 when a request in it was throttled. Either way the
# answer is read request by request.
BATCH_OK_STATUSES = frozenset({200, 424})
# "Microsoft Graph error responses": syncStateNotFound ("the delta token is expired and data
# must be synchronized again") and resyncRequired ("the delta token is no longer valid, and the
# app must reset the sync state"), compared without case.
DELTA_EXPIRED_CODES = frozenset({"syncstatenotfound", "resyncrequired"})

# Graph's permission per kind of read, named in "forbidden" errors.
PERMISSION_USERS = "User.Read.All"
PERMISSION_MEMBERS = "GroupMember.Read.All"
PERMISSION_APPS = "Application.Read.All"
PERMISSION_ORGANIZATION = "Organization.Read.All"


def is_guid(value: str) -> bool:
    return bool(GUID_RE.match(value or ""))


_msal_apps: dict[tuple[str, ...], msal.ConfidentialClientApplication] = {}
_msal_apps_lock = threading.Lock()


def _msal_app(settings: GraphSettings, tenant_id: str) -> msal.ConfidentialClientApplication:
    """One MSAL application per (login host, tenant, client, credential), so tokens are reused."""
    credential = settings.credential_digest
    key = (settings.login_url, tenant_id, settings.client_id, credential, str(settings.verify))
    with _msal_apps_lock:
        app = _msal_apps.get(key)
        if app is None:
            app = new_msal_app(settings, tenant_id)
            _msal_apps[key] = app
        return app


def forget_cached_tokens(*, tenant_id: str | None = None) -> None:
    """Drop cached MSAL applications: all of them, or one tenant's.

    Besides tokens, MSAL remembers a refused token request (HTTP 400) for 60 seconds per app,
    so a tenant that was just consented to must be asked afresh (Verify Now), and a rotated
    secret or certificate or a test starts clean.
    """
    with _msal_apps_lock:
        if tenant_id is None:
            _msal_apps.clear()
            return
        for key in [k for k in _msal_apps if k[1].lower() == tenant_id.lower()]:
            del _msal_apps[key]


def token_error(result: dict[str, Any], tenant_id: str, client_id: str) -> GraphError:
    """Map a failed token request (AADSTS codes) to an error a person can act on."""
    codes = set(result.get("error_codes") or [])
    description = str(result.get("error_description") or result.get("error") or "")
    first_line = description.splitlines()[0] if description else "unknown error"
    if 90002 in codes or "AADSTS90002" in description:
        return GraphWrongTenant(
            f"Tenant {tenant_id} was not found in Microsoft Entra ID ({first_line})",
            code="AADSTS90002",
        )
    certificate_error = _certificate_error(codes, description, first_line)
    if certificate_error is not None:
        return certificate_error
    if 7000222 in codes or "AADSTS7000222" in description:
        return GraphUnauthorized(
            f"The client secret of the Directory Sync application has expired ({first_line})",
            remediation="Create a new client secret for the Directory Sync application, put "
            "its value in ENTRA_CLIENT_SECRET and restart entra-sync.",
            code="AADSTS7000222",
        )
    if 7000215 in codes or "AADSTS7000215" in description:
        return GraphUnauthorized(
            f"Microsoft rejected the client secret ({first_line})",
            remediation="Put the secret's Value (not its Secret ID) of the Directory Sync "
            "application in ENTRA_CLIENT_SECRET and restart entra-sync.",
            code="AADSTS7000215",
        )
    if 700016 in codes or "AADSTS700016" in description:
        return GraphUnauthorized(
            f"The Directory Sync application ({client_id}) is not present in tenant "
            f"{tenant_id} ({first_line})",
            remediation="An administrator of that tenant must grant admin consent: use "
            "Verify Now, or check ENTRA_CLIENT_ID.",
            code="AADSTS700016",
        )
    return GraphUnauthorized(
        f"Microsoft refused to issue a token ({first_line})",
        code=str(result.get("error") or ""),
    )


def _certificate_error(codes: set[int], description: str, first_line: str) -> GraphError | None:
    """The refusals of a certificate's client assertion ("Microsoft Entra authentication and
    authorization error codes"; "certificate credentials")."""

    def named(code: int) -> bool:
        return code in codes or re.search(rf"\bAADSTS{code}\b", description) is not None

    if named(700027):  # an unregistered (or other) certificate, or a bad signature
        return GraphUnauthorized(
            f"Microsoft did not accept the Directory Sync application's certificate ({first_line})",
            remediation="Upload the certificate of ENTRA_CLIENT_CERTIFICATE_PATH (its public "
            "part, the .crt) to the Directory Sync app registration under Certificates & "
            "secrets > Certificates, or point ENTRA_CLIENT_CERTIFICATE_PATH at the certificate "
            "uploaded there, then restart entra-sync.",
            code="AADSTS700027",
        )
    if named(700024):
        return GraphUnauthorized(
            "Microsoft found the certificate's signed assertion outside its valid time range "
            f"({first_line})",
            remediation="This server's clock is probably wrong: set it right (enable NTP); "
            "the next sync retries.",
            code="AADSTS700024",
        )
    if named(700023):
        return GraphUnauthorized(
            "Microsoft refused the certificate's signed assertion: it names another login "
            f"service as its audience ({first_line})",
            remediation="Set ENTRA_LOGIN_URL to the login service of the tenant's cloud "
            "(https://login.microsoftonline.com for the global one) and restart entra-sync.",
            code="AADSTS700023",
        )
    return None


def _graph_error_body(response: requests.Response) -> tuple[str, str]:
    """Graph's `{"error": {"code", "message"}}`, or the status line when the body is not JSON."""
    try:
        error = response.json().get("error") or {}
        return str(error.get("code") or response.status_code), str(error.get("message") or "")
    except (ValueError, AttributeError):
        return str(response.status_code), response.reason or ""


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare for Graph; fall back to our own backoff


@dataclass(frozen=True)
class _Retry:
    """Send the request again, after Graph's Retry-After or (None) our own backoff."""

    failure: GraphError  # raised when there are no attempts left
    retry_after: float | None = None


class _RefreshToken:
    """Drop the cached token and send the request again (once per request)."""


_Verdict: TypeAlias = dict[str, Any] | _Retry | _RefreshToken


def _classify(
    response: requests.Response,
    *,
    permission: str,
    may_refresh_token: bool,
    ok_statuses: frozenset[int] = OK_STATUSES,
    delta: bool = False,
) -> _Verdict:
    """What to do with Graph's answer: return its JSON, refresh the token, retry, or raise.

    `delta`: the request belongs to a delta round, where 410 Gone and the expired-token error
    codes mean the stored link is dead and a full read is needed (GraphDeltaExpired).
    """
    request_id = response.headers.get("request-id")
    status = response.status_code
    if status in ok_statuses:
        return _json_object(response, request_id)
    code, message = _graph_error_body(response)
    detail = f"{code}: {message}".rstrip(": ")
    if delta and (status == 410 or _graph_error_codes(response) & DELTA_EXPIRED_CODES):
        raise _delta_expired(status, code, detail, request_id)
    if status == 401 and may_refresh_token:
        # MSAL can keep serving a cached token that Graph already rejects.
        return _RefreshToken()
    if status not in RETRYABLE_STATUSES:
        raise _status_error(status, code, detail, permission, request_id)
    failure = _retryable_failure(status, code, detail, request_id)
    return _Retry(failure, _parse_retry_after(response.headers.get("Retry-After")))


def _retryable_failure(status: int, code: str, detail: str, request_id: str | None) -> GraphError:
    """The error a retryable status (429, 5xx) ends in once no attempts are left."""
    if status == 429:
        return GraphThrottled(
            f"Microsoft Graph throttled the requests ({detail}).",
            status=status,
            code=code,
            request_id=request_id,
        )
    return GraphTransient(
        f"Microsoft Graph failed with HTTP {status} ({detail}).",
        status=status,
        code=code,
        request_id=request_id,
    )


def _graph_error_codes(response: requests.Response) -> set[str]:
    """Every `code` in Graph's error and its nested innerErrors, in lower case.

    "Microsoft Graph error responses": apps "should loop through all the error codes available".
    """
    try:
        body = response.json()
    except ValueError:
        return set()
    return _error_codes(body.get("error") if isinstance(body, dict) else None)


def _error_codes(error: Any) -> set[str]:
    codes: set[str] = set()
    for _ in range(10):  # nesting is shallow in practice; never loop on a strange body
        if not isinstance(error, dict):
            break
        if isinstance(error.get("code"), str):
            codes.add(error["code"].lower())
        error = error.get("innerError", error.get("innererror"))
    return codes


def _delta_expired(
    status: int, code: str, detail: str, request_id: str | None
) -> GraphDeltaExpired:
    return GraphDeltaExpired(
        f"Microsoft Graph no longer accepts the stored delta link (HTTP {status}, {detail}); "
        "a full read of the directory is needed.",
        status=status,
        code=code,
        request_id=request_id,
    )


def _json_object(response: requests.Response, request_id: str | None) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise GraphBadResponse(
            "Microsoft Graph sent a response that is not valid JSON.", request_id=request_id
        ) from exc
    if not isinstance(body, dict):
        raise GraphBadResponse(
            "Microsoft Graph sent JSON that is not an object.", request_id=request_id
        )
    return body


def _status_error(
    status: int, code: str, detail: str, permission: str, request_id: str | None
) -> GraphError:
    """The error for a status that no retry will fix."""
    if status == 401:
        return GraphUnauthorized(
            f"Microsoft Graph refused the access token ({detail}).",
            status=status,
            code=code,
            request_id=request_id,
        )
    if status == 403:
        return GraphForbidden(
            f"Microsoft Graph denied access ({detail}). The Directory Sync application "
            f"needs the {permission} application permission.",
            status=status,
            code=code,
            request_id=request_id,
        )
    if status == 404:
        return GraphNotFound(
            f"Not found in Microsoft Graph ({detail}).",
            status=status,
            code=code,
            request_id=request_id,
        )
    return GraphBadResponse(
        f"Microsoft Graph rejected the request with HTTP {status} ({detail}).",
        status=status,
        code=code,
        request_id=request_id,
    )


class GraphClient:
    """Reads one tenant's directory through Microsoft Graph v1.0."""

    def __init__(
        self,
        *,
        tenant_id: str,
        settings: GraphSettings,
        low_priority: bool = False,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.settings = settings
        self.low_priority = low_priority
        self.stats = RequestStats()
        # What this run cleaned or skipped, summed up in stats.warnings (clean.py).
        self.cleaning = Cleaning(self.stats.warnings)
        self._session = session or requests.Session()
        self._sleep = sleep or time.sleep
        self._lock = threading.Lock()
        self._graph_host = urlsplit(settings.graph_url).netloc
        self._graph_scheme = urlsplit(settings.graph_url).scheme
        self._scope = f"{settings.graph_url}/.default"

    # --- tokens -------------------------------------------------------------------------------

    def _app(self) -> msal.ConfidentialClientApplication:
        try:
            return _msal_app(self.settings, self.tenant_id)
        except ValueError as exc:
            # MSAL raises ValueError when the authority's OpenID configuration is refused,
            # which is how an unknown tenant shows up.
            raise GraphWrongTenant(
                f"Tenant {self.tenant_id} was not found in Microsoft Entra ID (the login "
                "service refused its OpenID configuration)."
            ) from exc

    def _access_token(self) -> str:
        result = self._app().acquire_token_for_client(scopes=[self._scope])
        if "access_token" not in result:
            raise token_error(result, self.tenant_id, self.settings.client_id)
        return str(result["access_token"])

    def _drop_cached_tokens(self) -> None:
        cache = self._app().token_cache
        for token in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(token)

    # --- requests -----------------------------------------------------------------------------

    def _url(self, path: str, params: dict[str, str] | None = None) -> str:
        url = f"{self.settings.graph_url}/v1.0/{path.lstrip('/')}"
        if params:
            url += "?" + "&".join(f"{k}={quote(v, safe=QUERY_SAFE)}" for k, v in params.items())
        return url

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self.settings.backoff_cap, self.settings.backoff_base * 2.0**attempt)
        return delay * random.uniform(0.5, 1.0)

    def _count(
        self, *, retry: bool = False, request_id: str | None = None, subrequests: int = 0
    ) -> None:
        with self._lock:
            if retry:
                self.stats.retries += 1
            else:
                self.stats.requests += 1
                self.stats.subrequests += subrequests
                if request_id:
                    self.stats.last_request_id = request_id

    def get_json(
        self, url: str, *, permission: str, advanced_query: bool = False
    ) -> dict[str, Any]:
        """GET one Graph URL and return its JSON object, retrying what is worth retrying.

        `advanced_query` sends `ConsistencyLevel: eventual`, which the URL's `$count=true`
        needs: Graph asks for the pair on OData casts of directory-object relationships.
        """
        return self._request_json(url, permission=permission, advanced_query=advanced_query)

    def _request_json(
        self,
        url: str,
        *,
        permission: str,
        advanced_query: bool = False,
        json_body: dict[str, Any] | None = None,
        ok_statuses: frozenset[int] = OK_STATUSES,
        delta: bool = False,
        subrequests: int = 0,
    ) -> dict[str, Any]:
        """GET (or, with `json_body`, POST) one Graph URL with retries; its JSON object.

        `subrequests`: how many requests a `$batch` body carries, counted per POST sent.
        """
        self._check_graph_url(url)
        may_refresh_token = True
        attempt = 0
        while True:
            try:
                response = self._send(
                    url,
                    advanced_query=advanced_query,
                    json_body=json_body,
                    subrequests=subrequests,
                )
            except GraphTransient as failure:  # Microsoft could not be reached
                verdict: _Verdict = _Retry(failure)
            else:
                verdict = _classify(
                    response,
                    permission=permission,
                    may_refresh_token=may_refresh_token,
                    ok_statuses=ok_statuses,
                    delta=delta,
                )
            if isinstance(verdict, dict):
                return verdict
            if isinstance(verdict, _RefreshToken):
                may_refresh_token = False
                self._drop_cached_tokens()
                self._count(retry=True)
                continue
            wait = self._wait(verdict, attempt)
            if attempt >= self.settings.max_retries:
                raise verdict.failure
            attempt += 1
            self._count(retry=True)
            logger.info("Graph request retried in %.1fs: %s", wait, verdict.failure.message)
            self._sleep(wait)

    def _check_graph_url(self, url: str) -> None:
        # Scheme too: an http:// next link would send the bearer token in clear text.
        if urlsplit(url).netloc != self._graph_host or urlsplit(url).scheme != self._graph_scheme:
            raise GraphBadResponse(f"Graph pointed to another host ({urlsplit(url).netloc}).")

    def _send(
        self,
        url: str,
        *,
        advanced_query: bool = False,
        json_body: dict[str, Any] | None = None,
        subrequests: int = 0,
    ) -> requests.Response:
        """Send one GET (a POST of `json_body`) with a current token.

        GraphTransient when Microsoft cannot be reached.
        """
        try:
            headers = self._headers()  # gets a token: MSAL may raise for the login service
            if advanced_query:
                headers["ConsistencyLevel"] = "eventual"
            if json_body is None:
                response = self._session.get(
                    url,
                    headers=headers,
                    timeout=self.settings.timeout,
                    verify=self.settings.verify,
                )
            else:
                response = self._session.post(
                    url,
                    json=json_body,  # and Content-Type: application/json
                    headers=headers,
                    timeout=self.settings.timeout,
                    verify=self.settings.verify,
                )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise GraphTransient(
                f"Could not reach Microsoft ({type(exc).__name__}: {exc})."
            ) from exc
        except msal.exceptions.MsalServiceError as exc:
            # The login service answered 5xx while getting the token (MSAL raises, not requests).
            raise GraphTransient(f"The Microsoft login service failed ({exc}).") from exc
        self._count(request_id=response.headers.get("request-id"), subrequests=subrequests)
        return response

    def _headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._access_token()}",
            "Accept": "application/json",
            "client-request-id": str(uuid.uuid4()),
            "User-Agent": "entra-sync",
        }
        if self.low_priority:
            headers["x-ms-throttle-priority"] = "low"
        return headers

    def _wait(self, retry: _Retry, attempt: int) -> float:
        """Graph's Retry-After (within reason), or our own backoff when it gave none."""
        if retry.retry_after is not None:
            return min(retry.retry_after, self.settings.max_retry_after)
        return self._backoff(attempt)

    def _paged(
        self,
        path: str,
        params: dict[str, str],
        *,
        permission: str,
        advanced_query: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Every object of a collection, following `@odata.nextLink` verbatim.

        An advanced query (an OData cast on a relationship, in Microsoft's table of queries
        that need it) asks with `$count=true` and sends `ConsistencyLevel: eventual` on every
        page: a next link carries the `$count` but a header is ours to send each time.
        """
        if advanced_query:
            params = {**params, "$count": "true"}
        url: str | None = self._url(path, {**params, "$top": str(PAGE_SIZE)})
        seen: set[str] = set()
        pages = 0
        while url:
            pages = _count_page(pages, self.stats.last_request_id)
            body = self.get_json(url, permission=permission, advanced_query=advanced_query)
            value = body.get("value")
            if not isinstance(value, list):
                raise GraphBadResponse(
                    "Microsoft Graph sent a page without a list of objects ('value').",
                    request_id=self.stats.last_request_id,
                )
            yield from value
            next_link = body.get("@odata.nextLink")
            if next_link is None:
                return
            if not isinstance(next_link, str) or next_link in seen:
                raise GraphBadResponse(
                    "Microsoft Graph sent the same next-page link twice; the listing would "
                    "never end.",
                    request_id=self.stats.last_request_id,
                )
            seen.add(next_link)
            url = next_link

    # --- reads --------------------------------------------------------------------------------

    def organization(self) -> Organization:
        """The tenant itself: its id, name and verified domains."""
        body = self.get_json(
            self._url("organization", {"$select": ",".join(ORGANIZATION_FIELDS)}),
            permission=PERMISSION_ORGANIZATION,
        )
        orgs = body.get("value")
        if not isinstance(orgs, list) or not orgs or not isinstance(orgs[0], dict):
            raise GraphBadResponse(
                "Microsoft Graph returned no organization for this tenant.",
                request_id=self.stats.last_request_id,
            )
        return _organization(orgs[0])

    def service_principal(self, app_id: str) -> ServicePrincipal:
        """The tenant's service principal of an application (the Authentication app)."""
        try:
            body = self.get_json(
                self._url(
                    f"servicePrincipals(appId='{_guid(app_id)}')",
                    {"$select": ",".join(SERVICE_PRINCIPAL_FIELDS)},
                ),
                permission=PERMISSION_APPS,
            )
        except GraphNotFound as exc:
            raise _authentication_app_missing(app_id, exc.request_id) from exc
        return _service_principal(body)

    def app_role_assignments(self, app_id: str) -> list[AppRoleAssignment]:
        """Users, groups and service principals assigned to an application."""
        path = f"servicePrincipals(appId='{_guid(app_id)}')/appRoleAssignedTo"
        try:
            items = list(
                self._paged(
                    path, {"$select": ",".join(ASSIGNMENT_FIELDS)}, permission=PERMISSION_APPS
                )
            )
        except GraphNotFound as exc:
            raise _authentication_app_missing(app_id, exc.request_id) from exc
        request_id = self.stats.last_request_id
        found = (_assignment(item, self.cleaning, request_id) for item in items)
        return [assignment for assignment in found if assignment is not None]

    def groups(self) -> Iterator[GraphGroup]:
        """Every group in the tenant."""
        for item in self._paged(
            "groups", {"$select": ",".join(GROUP_FIELDS)}, permission=PERMISSION_MEMBERS
        ):
            group = parse_group(item, self.cleaning, request_id=self.stats.last_request_id)
            if group is not None:
                yield group

    def group(self, group_id: str) -> GraphGroup:
        body = self.get_json(
            self._url(f"groups/{quote(group_id, safe='')}", {"$select": ",".join(GROUP_FIELDS)}),
            permission=PERMISSION_MEMBERS,
        )
        return _group(body, self.cleaning)

    def group_transitive_users(self, group_id: str) -> list[GraphUser]:
        """The users in a group, directly or through nested groups (other members skipped)."""
        path = f"groups/{quote(group_id, safe='')}/transitiveMembers/microsoft.graph.user"
        users = []
        for item in self._paged(
            path,
            {"$select": ",".join(USER_FIELDS)},
            permission=PERMISSION_MEMBERS,
            advanced_query=True,  # an OData cast
        ):
            odata_type = item.get("@odata.type") if isinstance(item, dict) else None
            if odata_type not in (None, "#microsoft.graph.user"):
                continue  # a cast already filters; stay safe if a proxy ignores it
            if isinstance(item, dict) and item.get("id") and not item.get("userPrincipalName"):
                # Graph hides the properties of objects the app may not read: see "Limited
                # information returned for inaccessible member objects".
                raise GraphForbidden(
                    "Microsoft Graph returned group members without their properties, so the "
                    f"Directory Sync application cannot read users: it needs {PERMISSION_USERS}.",
                    request_id=self.stats.last_request_id,
                )
            user = parse_user(item, self.cleaning, request_id=self.stats.last_request_id)
            if user is not None:
                users.append(user)
        return users

    def user_transitive_groups(self, user_id: str) -> list[GraphGroup]:
        """The groups a user is in, directly or through nested groups.

        Used to explain why a user is (not) synced. Uncast on purpose: Microsoft's OpenAPI
        description has no `transitiveMemberOf/microsoft.graph.group` path, so directory roles
        and administrative units are skipped here by their `@odata.type`.
        """
        path = f"users/{quote(user_id, safe='@')}/transitiveMemberOf"
        groups = []
        for item in self._paged(
            path, {"$select": ",".join(GROUP_FIELDS)}, permission=PERMISSION_USERS
        ):
            odata_type = item.get("@odata.type") if isinstance(item, dict) else None
            if odata_type != "#microsoft.graph.group":
                continue
            group = parse_group(item, self.cleaning, request_id=self.stats.last_request_id)
            if group is not None:
                groups.append(group)
        return groups

    def user(self, id_or_upn: str) -> GraphUser:
        body = self.get_json(
            self._url(f"users/{quote(id_or_upn, safe='@')}", {"$select": ",".join(USER_FIELDS)}),
            permission=PERMISSION_USERS,
        )
        return _user(body, self.cleaning)

    def users(self) -> Iterator[GraphUser]:
        """Every user in the tenant."""
        for item in self._paged(
            "users", {"$select": ",".join(USER_FIELDS)}, permission=PERMISSION_USERS
        ):
            user = parse_user(item, self.cleaning, request_id=self.stats.last_request_id)
            if user is not None:
                yield user

    # --- delta rounds ---------------------------------------------------------------------------

    def users_delta(self, delta_link: str | None = None) -> DeltaRound[UserChange]:
        """A whole `/users/delta` round: from scratch (None), or the changes since `delta_link`.

        Raises GraphDeltaExpired when Graph no longer knows the link: read everything instead.
        """
        url = delta_link
        if url is None:
            url = self._url("users/delta", {"$select": ",".join(USER_FIELDS)})
        fold = UserRound(self.cleaning)
        link = self._delta_round(url, permission=PERMISSION_USERS, add=fold.add)
        return DeltaRound(changes=fold.changes(), delta_link=link)

    def groups_delta(self, delta_link: str | None = None) -> DeltaRound[GroupChange]:
        """A whole `/groups/delta` round with direct membership changes (`members@delta`).

        A large group's members come over several pages, the group repeated on each; they are
        merged here. Raises GraphDeltaExpired when Graph no longer knows the link.
        """
        url = delta_link
        if url is None:
            url = self._url("groups/delta", {"$select": ",".join((*GROUP_FIELDS, "members"))})
        fold = GroupRound(self.cleaning)
        link = self._delta_round(url, permission=PERMISSION_MEMBERS, add=fold.add)
        return DeltaRound(changes=fold.changes(), delta_link=link)

    def latest_delta_link(self, resource: Literal["users", "groups"]) -> str:
        """A delta link for "from now on", without reading any object (`$deltatoken=latest`).

        "Use delta query to track changes": Entra ID resources support "sync from now"; the
        answer has an @odata.deltaLink and no resource data. The `$select` is the one the
        rounds use, since a delta link keeps the query it was made with.
        """
        if resource == "users":
            select, permission = USER_FIELDS, PERMISSION_USERS
        elif resource == "groups":
            select, permission = (*GROUP_FIELDS, "members"), PERMISSION_MEMBERS
        else:
            raise ValueError(f"no delta query for {resource!r}")
        url = self._url(f"{resource}/delta", {"$select": ",".join(select), "$deltatoken": "latest"})
        objects: list[str | None] = []
        link = self._delta_round(
            url, permission=permission, add=lambda item, rid: objects.append(rid)
        )
        if objects:
            logger.warning(
                "Graph sent %d objects for a $deltatoken=latest %s delta link; ignored",
                len(objects),
                resource,
            )
        return link

    def _delta_round(
        self, url: str, *, permission: str, add: Callable[[Any, str | None], None]
    ) -> str:
        """Follow a delta round's next links verbatim to its deltaLink; each item to `add`."""
        seen = {url}
        pages = 0
        while True:
            pages = _count_page(pages, self.stats.last_request_id)
            body = self._request_json(url, permission=permission, delta=True)
            request_id = self.stats.last_request_id
            value = body.get("value")
            if not isinstance(value, list):
                raise GraphBadResponse(
                    "Microsoft Graph sent a delta page without a list of objects ('value').",
                    request_id=request_id,
                )
            for item in value:
                add(item, request_id)
            next_link = body.get("@odata.nextLink")
            if next_link is None:
                delta_link = body.get("@odata.deltaLink")
                if not isinstance(delta_link, str) or not delta_link:
                    raise GraphBadResponse(
                        "Microsoft Graph ended a delta round without an @odata.deltaLink, so "
                        "the changes after it could not be asked for.",
                        request_id=request_id,
                    )
                self._check_graph_url(delta_link)  # it is stored, and sent with our token
                return delta_link
            if not isinstance(next_link, str) or next_link in seen:
                raise GraphBadResponse(
                    "Microsoft Graph sent the same next-page link twice; the delta round "
                    "would never end.",
                    request_id=request_id,
                )
            seen.add(next_link)
            url = next_link

    # --- direct members of many groups, through JSON batching ------------------------------------

    def group_members(self, group_ids: Sequence[str]) -> dict[str, list[MemberRef]]:
        """The DIRECT members of each group, read through `$batch` (20 requests a POST).

        Groups that no longer exist (404) are left out. Every other group is in the answer with
        its complete member list, or the call fails: a sub-request that is throttled or fails
        transiently is sent again (after its own Retry-After, or our backoff), a paged answer
        is followed to its last page, and any other failure raises.
        """
        return self._batched_listings(
            group_ids,
            lambda group_id: (
                f"/groups/{quote(group_id, safe='')}/members?$select=id&$top={PAGE_SIZE}"
            ),
            permission=PERMISSION_MEMBERS,
            kind="member",
        )

    def users_member_of(self, user_ids: Sequence[str]) -> dict[str, list[MemberRef]]:
        """The groups (and roles, units: kind "other") each user is DIRECTLY in, via `$batch`.

        A restored user's memberships come back without a `members@delta` entry, and a group
        read while one of its members was deleted did not list it: a user new to a delta
        round has its memberships read this way. Users that no longer exist are left out.
        """
        return self._batched_listings(
            user_ids,
            lambda user_id: (
                f"/users/{quote(user_id, safe='')}/memberOf?$select=id&$top={PAGE_SIZE}"
            ),
            permission=PERMISSION_USERS,
            kind="membership",
        )

    def _batched_listings(
        self,
        keys: Sequence[str],
        url_for: Callable[[str], str],
        *,
        permission: str,
        kind: ObjectKind,
    ) -> dict[str, list[MemberRef]]:
        """One listing per key (members of a group, groups of a user), 20 per `$batch` POST."""
        ids = list(dict.fromkeys(keys))
        members: dict[str, dict[str, MemberRef]] = {group_id: {} for group_id in ids}
        gone: set[str] = set()
        queue = [
            _SubRequest(group_id=group_id, url=url_for(group_id), permission=permission, kind=kind)
            for group_id in ids
        ]
        clock = 0.0  # seconds this call has slept: when each queued sub-request may go
        while queue:
            ready = [sub for sub in queue if sub.due <= clock]
            if not ready:
                wake = min(sub.due for sub in queue)
                self._sleep(wake - clock)
                clock = wake
                continue
            queue = [sub for sub in queue if sub.due > clock]
            for start in range(0, len(ready), BATCH_LIMIT):
                batch = ready[start : start + BATCH_LIMIT]
                queue.extend(self._send_batch(batch, members, gone, clock))
        return {
            group_id: list(members[group_id].values()) for group_id in ids if group_id not in gone
        }

    def _send_batch(
        self,
        batch: list[_SubRequest],
        members: dict[str, dict[str, MemberRef]],
        gone: set[str],
        clock: float,
    ) -> list[_SubRequest]:
        """POST one batch and read every answer; the sub-requests to send again (or next)."""
        sent = {str(number): sub for number, sub in enumerate(batch, 1)}
        body = {
            "requests": [
                {"id": number, "method": "GET", "url": sub.url} for number, sub in sent.items()
            ]
        }
        answer = self._request_json(
            self._url("$batch"),
            permission=batch[0].permission,
            json_body=body,
            ok_statuses=BATCH_OK_STATUSES,
            subrequests=len(batch),
        )
        batch_request_id = self.stats.last_request_id
        answers = _batch_answers(answer, sent, batch_request_id)
        again: list[_SubRequest] = []
        refresh_token = False
        for number, sub in sent.items():
            status, headers, sub_body = answers[number]
            request_id = headers.get("request-id") or _body_request_id(sub_body)
            if status == 200:
                again.extend(self._read_members_page(sub, sub_body, members, request_id, clock))
                continue
            if status == 404:  # deleted while we were reading: simply not there any more
                gone.add(sub.group_id)
                members[sub.group_id].clear()
                continue
            code, message = _body_error(sub_body, status)
            detail = f"{code}: {message}".rstrip(": ")
            if status == 401 and sub.may_refresh_token:
                refresh_token = True
                self._count(retry=True)
                again.append(replace(sub, may_refresh_token=False, due=clock))
                continue
            if status not in RETRYABLE_STATUSES:
                raise _status_error(status, code, detail, sub.permission, request_id)
            retry = _Retry(
                _retryable_failure(status, code, detail, request_id),
                _parse_retry_after(headers.get("retry-after")),
            )
            wait = self._wait(retry, sub.attempt)
            if sub.attempt >= self.settings.max_retries:
                raise retry.failure
            self._count(retry=True)
            logger.info(
                "Graph batch request for group %s retried in %.1fs: %s",
                sub.group_id,
                wait,
                retry.failure.message,
            )
            again.append(replace(sub, attempt=sub.attempt + 1, due=clock + wait))
        if refresh_token:
            # One answer for all: the POST carried one token for every sub-request.
            self._drop_cached_tokens()
        return again

    def _read_members_page(
        self,
        sub: _SubRequest,
        page: Any,
        members: dict[str, dict[str, MemberRef]],
        request_id: str | None,
        clock: float,
    ) -> list[_SubRequest]:
        """Keep a page of members; the sub-request for its next page, if there is one."""
        value = page.get("value") if isinstance(page, dict) else None
        if not isinstance(value, list):
            raise GraphBadResponse(
                f"Microsoft Graph answered the members of group {sub.group_id} without a list "
                "of objects ('value').",
                request_id=request_id,
            )
        found = members[sub.group_id]
        within = (
            f"the members of group {sub.group_id}"
            if sub.kind == "member"
            else f"the groups of user {sub.group_id}"
        )
        for item in value:
            ref = member_ref(
                item, self.cleaning, request_id=request_id, within=within, kind=sub.kind
            )
            if ref is not None:
                found.setdefault(ref.id, ref)
        next_link = page.get("@odata.nextLink")
        if next_link is None:
            return []
        pages = _count_page(sub.pages, request_id)
        if not isinstance(next_link, str) or next_link in sub.seen_links:
            raise GraphBadResponse(
                f"Microsoft Graph sent the same next-page link twice for the members of group "
                f"{sub.group_id}; the listing would never end.",
                request_id=request_id,
            )
        # The next page goes in a later batch, where a request's url is relative to /v1.0.
        self._check_graph_url(next_link)
        prefix = f"{self.settings.graph_url}/v1.0/"
        if not next_link.startswith(prefix):
            raise GraphBadResponse(
                f"Microsoft Graph sent a next-page link outside v1.0 ({next_link}).",
                request_id=request_id,
            )
        sub.seen_links.add(next_link)  # shared along one listing: pages are read in turn
        return [
            _SubRequest(
                sub.group_id,
                "/" + next_link.removeprefix(prefix),
                permission=sub.permission,
                kind=sub.kind,
                due=clock,
                seen_links=sub.seen_links,
                pages=pages,
            )
        ]


@dataclass
class _SubRequest:
    """One GET inside a `$batch`: a page of one group's members, and its retry state."""

    group_id: str  # the listing's key: a group (its members) or a user (its groups)
    url: str  # relative to /v1.0, as the batch's requests are
    permission: str = PERMISSION_MEMBERS  # named if Graph answers 403
    attempt: int = 0
    may_refresh_token: bool = True
    due: float = 0.0  # when (seconds into group_members) it may be sent
    seen_links: set[str] = field(default_factory=set)  # the listing's next links so far
    kind: ObjectKind = "member"  # what the listing holds, for warnings: members or memberships
    pages: int = 1  # pages of the listing read when this one is sent


def _batch_answers(
    answer: dict[str, Any], sent: dict[str, _SubRequest], request_id: str | None
) -> dict[str, tuple[int, dict[str, str], Any]]:
    """The batch's answers by request id: (status, headers in lower case, body).

    "Individual responses might appear in a different order than the requests": matched by
    id (not case-sensitive). Every request must have exactly one answer.
    """
    responses = answer.get("responses")
    if not isinstance(responses, list):
        raise GraphBadResponse(
            "Microsoft Graph answered a batch without its list of responses.",
            request_id=request_id,
        )
    by_id: dict[str, tuple[int, dict[str, str], Any]] = {}
    for item in responses:
        number = str(item.get("id", "")).lower() if isinstance(item, dict) else ""
        status = item.get("status") if isinstance(item, dict) else None
        if number not in sent or number in by_id or not isinstance(status, int):
            raise GraphBadResponse(
                "Microsoft Graph answered a batch with a response that matches none of its "
                f"requests, or twice, or without a status (id {number or '?'}).",
                request_id=request_id,
            )
        headers = item.get("headers")
        lowered = (
            {str(k).lower(): str(v) for k, v in headers.items()}
            if isinstance(headers, dict)
            else {}
        )
        by_id[number] = (status, lowered, item.get("body"))
    missing = [sent[number].group_id for number in sent if number not in by_id]
    if missing:
        raise GraphBadResponse(
            "Microsoft Graph answered a batch without a response for the members of "
            f"group(s) {', '.join(missing)}.",
            request_id=request_id,
        )
    return by_id


def _body_error(body: Any, status: int) -> tuple[str, str]:
    """Graph's `{"error": {"code", "message"}}` in a batch answer's body, or the status."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return str(status), ""
    return str(error.get("code") or status), str(error.get("message") or "")


def _body_request_id(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    inner = error.get("innerError") if isinstance(error, dict) else None
    request_id = inner.get("request-id") if isinstance(inner, dict) else None
    return request_id if isinstance(request_id, str) else None


# --- JSON -> dataclasses -----------------------------------------------------------------------


def _guid(value: str) -> str:
    if not is_guid(value):
        raise GraphNotAssigned(
            f"{value!r} is not an application (client) id.",
            remediation="Set ENTRA_AUTH_CLIENT_ID to the Authentication application's "
            "Application (client) ID, a GUID.",
        )
    return value


def _authentication_app_missing(app_id: str, request_id: str | None) -> GraphNotAssigned:
    return GraphNotAssigned(
        f"The Authentication application ({app_id}) has no service principal in this tenant, "
        "so no groups can be assigned to it.",
        remediation="Have a tenant administrator sign in to the Authentication application "
        "once (or grant it admin consent) so it appears under Enterprise applications, then "
        "assign groups to it. Or check ENTRA_AUTH_CLIENT_ID.",
        request_id=request_id,
    )


def _count_page(pages: int, request_id: str | None) -> int:
    """One more page of a listing; GraphBadResponse past MAX_PAGES."""
    if pages >= MAX_PAGES:
        raise GraphBadResponse(
            f"Microsoft Graph kept sending next-page links: more than {MAX_PAGES:,} pages for "
            "one listing, far more than any directory fills, so the listing would never end.",
            request_id=request_id,
        )
    return pages + 1


def _require_id(item: Any, kind: str) -> dict[str, Any]:
    """One object asked for by itself (verify's organization, service principal): it must have
    an id, since nothing else could stand in for it."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise GraphBadResponse(f"Microsoft Graph sent a {kind} without an id.")
    return item


def _text(value: Any, limit: int = 256) -> str | None:
    """A string property of an object that is shown or stored outside a sync (the tenant's
    name, an assignee's name): cleaned and clipped like a synced one, without a warning."""
    return clean_text(value, limit) if isinstance(value, str) else None


def _user(item: Any, cleaning: Cleaning | None = None) -> GraphUser:
    """One user asked for by itself: without a usable id it cannot be skipped, so it fails."""
    user = parse_user(item, cleaning or Cleaning())
    if user is None:
        raise GraphBadResponse(f"Microsoft Graph sent a user with an invalid id ({_id_of(item)}).")
    return user


def _group(item: Any, cleaning: Cleaning | None = None) -> GraphGroup:
    """One group asked for by itself: without a usable id it cannot be skipped, so it fails."""
    group = parse_group(item, cleaning or Cleaning())
    if group is None:
        raise GraphBadResponse(f"Microsoft Graph sent a group with an invalid id ({_id_of(item)}).")
    return group


def _id_of(item: Any) -> str:
    return escaped(item.get("id") if isinstance(item, dict) else None)


def _assignment(
    item: Any, cleaning: Cleaning, request_id: str | None = None
) -> AppRoleAssignment | None:
    """An assignment to the Authentication app; None (skipped, with a warning) when its
    principalId could name no object we store: no group we sync can be lost by skipping it."""
    principal_id = cleaning.object_id(
        {"id": item.get("principalId")} if isinstance(item, dict) else item,
        "assignment",
        within="the Authentication application's assignments",
        request_id=request_id,
    )
    if principal_id is None:
        return None
    return AppRoleAssignment(
        id=_text(item.get("id"), 64) or "",
        principal_id=principal_id,
        principal_type=_text(item.get("principalType"), 32) or "",
        principal_display_name=_text(item.get("principalDisplayName")) or "",
    )


def _organization(item: Any) -> Organization:
    data = _require_id(item, "organization")
    domains = [d for d in data.get("verifiedDomains") or [] if isinstance(d, dict)]
    default = next((d.get("name") for d in domains if d.get("isDefault")), None)
    return Organization(
        id=data["id"],
        display_name=_text(data.get("displayName")) or "",
        verified_domains=tuple(name for d in domains if (name := _text(d.get("name")))),
        default_domain=_text(default),
    )


def _service_principal(item: Any) -> ServicePrincipal:
    data = _require_id(item, "service principal")
    return ServicePrincipal(
        id=data["id"],
        app_id=_text(data.get("appId")) or "",
        display_name=_text(data.get("displayName")) or "",
        app_role_assignment_required=bool(data.get("appRoleAssignmentRequired")),
    )
