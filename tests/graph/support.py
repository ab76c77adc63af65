"""Test doubles for the Graph client tests: the login service and Graph, served by `responses`.

The JSON bodies live in tests/fixtures/graph/ and look like the examples on Microsoft's doc pages
(see the README there). They keep Microsoft's hosts; `load_fixture` swaps in the test hosts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import responses

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "graph"

LOGIN_URL = "https://login.example.test"
GRAPH_URL = "https://graph.example.test"
MICROSOFT_LOGIN_URL = "https://login.microsoftonline.com"
INSTANCE_DISCOVERY_URL = f"{MICROSOFT_LOGIN_URL}/common/discovery/instance"

TENANT_ID = "84841066-274d-4ec0-a5c1-276be684bdd3"  # the organization on "List organization"
CLIENT_ID = "535fb089-9ff3-47b6-9bfb-4f1264799865"  # the client credentials flow page's app
CLIENT_SECRET = "sampleCredentia1s"  # the same page's sample secret
AUTH_APP_ID = (
    "a7770d29-4321-41a6-b863-ca11d6639448"  # the Authentication app (service-principal.json)
)
GROUP_ID = "02bd9fd6-8f93-4758-87c3-1fb73740a315"  # the group on "List group transitive members"
TIMEOUT = 7.5  # seconds; any value the client would not pick by itself

USER_SELECT = "id,userPrincipalName,mail,displayName,givenName,surname,accountEnabled,userType"
GROUP_SELECT = "id,displayName,description,mail,mailEnabled,securityEnabled,groupTypes"
ASSIGNMENT_SELECT = "id,principalId,principalType,principalDisplayName"
SERVICE_PRINCIPAL_SELECT = "id,appId,displayName,appRoleAssignmentRequired"
ORGANIZATION_SELECT = "id,displayName,verifiedDomains"

V1 = f"{GRAPH_URL}/v1.0"
GROUPS_URL = f"{V1}/groups?$select={GROUP_SELECT}&$top=999"
ORGANIZATION_URL = f"{V1}/organization?$select={ORGANIZATION_SELECT}"
SERVICE_PRINCIPAL_PATH = f"{V1}/servicePrincipals(appId='{AUTH_APP_ID}')"
SERVICE_PRINCIPAL_URL = f"{SERVICE_PRINCIPAL_PATH}?$select={SERVICE_PRINCIPAL_SELECT}"
ASSIGNMENTS_URL = f"{SERVICE_PRINCIPAL_PATH}/appRoleAssignedTo?$select={ASSIGNMENT_SELECT}&$top=999"
# An OData cast: an advanced query, asked with $count=true (and ConsistencyLevel: eventual).
MEMBERS_URL = (
    f"{V1}/groups/{GROUP_ID}/transitiveMembers/microsoft.graph.user"
    f"?$select={USER_SELECT}&$count=true&$top=999"
)
GROUP_URL = f"{V1}/groups/{GROUP_ID}?$select={GROUP_SELECT}"
USER_URL = f"{V1}/users/admin@contoso.com?$select={USER_SELECT}"
USERS_URL = f"{V1}/users?$select={USER_SELECT}&$top=999"
# Delta rounds: the first request of a round; later ones follow Graph's links verbatim.
USERS_DELTA_URL = f"{V1}/users/delta?$select={USER_SELECT}"
GROUPS_DELTA_URL = f"{V1}/groups/delta?$select={GROUP_SELECT},members"
USERS_LATEST_URL = f"{USERS_DELTA_URL}&$deltatoken=latest"
GROUPS_LATEST_URL = f"{GROUPS_DELTA_URL}&$deltatoken=latest"
BATCH_URL = f"{V1}/$batch"


def members_path(group_id: str) -> str:
    """A group's direct members, as a `$batch` request's url (relative to /v1.0)."""
    return f"/groups/{group_id}/members?$select=id&$top=999"


def load_fixture(name: str, *, login_url: str = LOGIN_URL) -> Any:
    """A fixture's JSON, with Microsoft's hosts replaced by the ones the test serves."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    text = text.replace("https://graph.microsoft.com", GRAPH_URL)
    text = text.replace(MICROSOFT_LOGIN_URL, login_url)
    return json.loads(text)


def access_token(label: str = "one") -> str:
    """An access token shaped like the client credentials page's, distinct per label."""
    token: str = load_fixture("token-response.json")["access_token"]
    return f"{token}-{label}"


@dataclass
class FakeLogin:
    """The two login endpoints MSAL uses for app-only tokens: OpenID configuration and token."""

    rsps: responses.RequestsMock
    url: str = LOGIN_URL

    @property
    def openid_configuration_url(self) -> str:
        return f"{self.url}/{TENANT_ID}/v2.0/.well-known/openid-configuration"

    @property
    def token_url(self) -> str:
        return f"{self.url}/{TENANT_ID}/oauth2/v2.0/token"

    def start(self, *tokens: str) -> FakeLogin:
        # "OpenID Connect on the Microsoft identity platform": MSAL reads authorization_endpoint
        # and token_endpoint from it (msal/authority.py).
        self.rsps.get(
            self.openid_configuration_url,
            json=load_fixture("openid-configuration.json", login_url=self.url),
        )
        self.issue_tokens(*(tokens or (access_token(),)))
        return self

    def issue_tokens(self, *tokens: str) -> None:
        """Answer token requests with these tokens in turn (the last one repeats)."""
        self.rsps.remove(responses.POST, self.token_url)
        for token in tokens:
            # "Microsoft identity platform and the OAuth 2.0 client credentials flow"
            body = {**load_fixture("token-response.json"), "access_token": token}
            self.rsps.post(self.token_url, json=body)

    def refuse_tokens(self, fixture: str, *, status: int) -> None:
        # "Microsoft Entra authentication and authorization error codes"
        self.rsps.remove(responses.POST, self.token_url)
        body = load_fixture(fixture, login_url=self.url)
        self.rsps.post(self.token_url, status=status, json=body)

    def refuse_tenant(self, fixture: str, *, status: int = 400) -> None:
        self.rsps.remove(responses.GET, self.openid_configuration_url)
        body = load_fixture(fixture, login_url=self.url)
        self.rsps.get(self.openid_configuration_url, status=status, json=body)

    @property
    def token_requests(self) -> list[Any]:
        return [
            call
            for call in self.rsps.calls
            if call.request.method == "POST" and call.request.url == self.token_url
        ]


@dataclass
class FakeGraph:
    """Graph's answers, one registration per URL (with its query, so the query must match)."""

    rsps: responses.RequestsMock

    def reply(
        self,
        url: str,
        fixture: str | None = None,
        *,
        status: int = 200,
        json_body: Any = None,
        body: str | Exception | None = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue one answer for `url`; answers for the same URL are served in order."""
        if fixture is not None:
            json_body = load_fixture(fixture)
        all_headers = dict(headers or {})
        if request_id:
            all_headers["request-id"] = request_id
            all_headers["client-request-id"] = request_id
        if isinstance(body, Exception):
            self.rsps.get(url, body=body)
        elif body is not None:
            self.rsps.get(
                url, status=status, body=body, headers=all_headers, content_type="application/json"
            )
        else:
            self.rsps.get(url, status=status, json=json_body, headers=all_headers)

    def error(self, url: str, fixture: str, *, status: int, retry_after: str | None = None) -> str:
        """Queue a Graph error from a fixture; its innerError request-id goes in the header."""
        body = load_fixture(fixture)
        request_id: str = body["error"]["innerError"]["request-id"]
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.reply(url, status=status, json_body=body, request_id=request_id, headers=headers)
        return request_id

    @property
    def requests(self) -> list[Any]:
        """The prepared requests sent to the Graph host, in order."""
        host = urlsplit(GRAPH_URL).netloc
        return [c.request for c in self.rsps.calls if urlsplit(c.request.url).netloc == host]


@dataclass
class SubAnswer:
    """One answer inside a batch response: status, headers and body."""

    status: int
    body: Any
    headers: dict[str, str]


def _reversed(items: list[Any]) -> list[Any]:
    return items[::-1]


@dataclass
class FakeBatch:
    """Graph's `$batch` endpoint: answers each request by its url from a queue (the last repeats).

    The envelope follows "Combine multiple HTTP requests using JSON batching" (batch-response.json):
    every request gets an answer with its id, status, headers and body, in an order of the
    fake's choosing (reversed by default: "Individual responses might appear in a different
    order than the requests").
    """

    rsps: responses.RequestsMock
    answers: dict[str, list[SubAnswer]] = field(default_factory=dict)
    outer: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    posted: list[list[dict[str, Any]]] = field(default_factory=list)
    order: Callable[[list[Any]], list[Any]] = _reversed

    def start(self) -> FakeBatch:
        self.rsps.add_callback(responses.POST, BATCH_URL, callback=self._answer)
        return self

    def reply(
        self,
        path: str,
        fixture: str | None = None,
        *,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue one answer for the request with this url."""
        if fixture is not None:
            body = load_fixture(fixture)
        envelope = OK_HEADERS if status == 200 else ERROR_HEADERS
        answer = SubAnswer(status, body, {**envelope, **(headers or {})})
        self.answers.setdefault(path, []).append(answer)

    def error(
        self, path: str, fixture: str, *, status: int, headers: dict[str, str] | None = None
    ) -> str:
        """Queue a Graph error from a fixture; its innerError request-id, for the asserts."""
        body = load_fixture(fixture)
        self.reply(path, status=status, body=body, headers=headers)
        return str(body["error"]["innerError"]["request-id"])

    def fail_batch(
        self, status: int, fixture: str, *, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next POST itself with an error (before reading any request in it)."""
        self.outer.append((status, headers or {}, load_fixture(fixture)))

    @property
    def urls(self) -> list[list[str]]:
        """The urls of the requests in each POST, in the order they were put in it."""
        return [[request["url"] for request in batch] for batch in self.posted]

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        batch = json.loads(request.body)["requests"]
        self.posted.append(batch)
        if self.outer:
            status, headers, body = self.outer.pop(0)
            return status, headers, json.dumps(body)
        out = []
        for sub in batch:
            queue = self.answers[sub["url"]]  # a url the test did not expect: fail loudly
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            out.append(
                {"id": sub["id"], "status": answer.status, "headers": answer.headers}
                | ({"body": answer.body} if answer.body is not None else {})
            )
        headers = {"request-id": f"batch-{len(self.posted)}"}
        return 200, headers, json.dumps({"responses": self.order(out)})


# The envelope headers of the JSON batching page's example answers: a success and a refusal.
_BATCH_EXAMPLE = load_fixture("batch-response.json")["responses"]
OK_HEADERS: dict[str, str] = _BATCH_EXAMPLE[0]["headers"]
ERROR_HEADERS: dict[str, str] = _BATCH_EXAMPLE[1]["headers"]
