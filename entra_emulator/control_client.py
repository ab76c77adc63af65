"""A small client for the emulator's control API, for tests and demos in other processes.

    control = EmulatorControl("https://localhost:8443", verify=".emulator/ca.pem")
    tenant_id = control.tenants()[0]["tenant_id"]
    control.update_user(tenant_id, user_id, displayName="Renamed")
    control.add_fault(status=503, count=2)

`verify` is passed on every request: `requests` would otherwise let REQUESTS_CA_BUNDLE
override a session's own setting (see DESIGN.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests


class EmulatorControlError(Exception):
    """The control API refused a request (4xx) or failed (5xx)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _q(value: str) -> str:
    return quote(value, safe="@")


class EmulatorControl:
    """One method per control endpoint; each returns the endpoint's JSON."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool | str | Path = True,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.verify = str(verify) if not isinstance(verify, bool) else verify
        self.timeout = timeout
        self.session = session or requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = {}  # writes must be application/json, even when empty
        response = self.session.request(
            method,
            f"{self.base_url}/_emulator/{path}",
            json=body,
            verify=self.verify,
            timeout=self.timeout,
        )
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "error", response.text[:200]
            raise EmulatorControlError(response.status_code, code, message)
        data = response.json()
        if not isinstance(data, dict):
            raise EmulatorControlError(response.status_code, "bad_response", "Not a JSON object.")
        return data

    def _items(self, path: str, key: str) -> list[dict[str, Any]]:
        return list(self._call("GET", path)[key])

    # --- tenants ------------------------------------------------------------------------------

    def tenants(self) -> list[dict[str, Any]]:
        """Summaries: tenant_id, display_name, default_domain, counts."""
        return self._items("tenants", "tenants")

    def tenant(self, tenant_id: str) -> dict[str, Any]:
        """The whole tenant (`EmuTenant.to_dict()`)."""
        return self._call("GET", f"tenants/{_q(tenant_id)}")

    def put_tenant(self, tenant_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a tenant from a whole tenant document."""
        return self._call("PUT", f"tenants/{_q(tenant_id)}", data)

    def create_tenant(self, data: dict[str, Any]) -> dict[str, Any]:
        """A whole tenant document, or `generate_tenant` options (users, groups, seed...)."""
        return self._call("POST", "tenants", data)

    def generate_tenant(self, *, users: int, groups: int, seed: int = 1, **options: Any) -> str:
        """Generate a tenant in the emulator; returns its id."""
        body = {"users": users, "groups": groups, "seed": seed, **options}
        return str(self.create_tenant(body)["tenant_id"])

    def delete_tenant(self, tenant_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"tenants/{_q(tenant_id)}")

    # --- users --------------------------------------------------------------------------------

    def users(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._items(f"tenants/{_q(tenant_id)}/users", "users")

    def user(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        """A user by id or userPrincipalName."""
        return self._call("GET", f"tenants/{_q(tenant_id)}/users/{_q(user_id)}")

    def add_user(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """Graph field names: userPrincipalName (required), displayName, mail, ...; `groups`
        adds the user to those groups."""
        return self._call("POST", f"tenants/{_q(tenant_id)}/users", fields)

    def update_user(self, tenant_id: str, user_id: str, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"tenants/{_q(tenant_id)}/users/{_q(user_id)}", fields)

    def delete_user(self, tenant_id: str, user_id: str, *, soft: bool = False) -> dict[str, Any]:
        """Permanently, or (`soft`) into deleted items, restorable."""
        query = "?soft=true" if soft else ""
        return self._call("DELETE", f"tenants/{_q(tenant_id)}/users/{_q(user_id)}{query}")

    # --- groups and members -------------------------------------------------------------------

    def groups(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._items(f"tenants/{_q(tenant_id)}/groups", "groups")

    def group(self, tenant_id: str, group_id: str) -> dict[str, Any]:
        return self._call("GET", f"tenants/{_q(tenant_id)}/groups/{_q(group_id)}")

    def add_group(self, tenant_id: str, **fields: Any) -> dict[str, Any]:
        """displayName (required), ...; `members` (ids), `assigned` (to the Authentication app)."""
        return self._call("POST", f"tenants/{_q(tenant_id)}/groups", fields)

    def update_group(self, tenant_id: str, group_id: str, **fields: Any) -> dict[str, Any]:
        return self._call("PATCH", f"tenants/{_q(tenant_id)}/groups/{_q(group_id)}", fields)

    def delete_group(self, tenant_id: str, group_id: str, *, soft: bool = False) -> dict[str, Any]:
        """Permanently, or (`soft`, Microsoft 365 groups only) into deleted items."""
        query = "?soft=true" if soft else ""
        return self._call("DELETE", f"tenants/{_q(tenant_id)}/groups/{_q(group_id)}{query}")

    def add_members(self, tenant_id: str, group_id: str, *member_ids: str) -> dict[str, Any]:
        return self._call(
            "POST",
            f"tenants/{_q(tenant_id)}/groups/{_q(group_id)}/members",
            {"ids": list(member_ids)},
        )

    def remove_member(self, tenant_id: str, group_id: str, member_id: str) -> dict[str, Any]:
        return self._call(
            "DELETE", f"tenants/{_q(tenant_id)}/groups/{_q(group_id)}/members/{_q(member_id)}"
        )

    # --- assignments --------------------------------------------------------------------------

    def assignments(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._items(f"tenants/{_q(tenant_id)}/assignments", "assignments")

    def assign(self, tenant_id: str, principal_id: str) -> dict[str, Any]:
        """Assign a group (or user, or service principal) to the Authentication app."""
        return self._call(
            "POST", f"tenants/{_q(tenant_id)}/assignments", {"principalId": principal_id}
        )

    def unassign(self, tenant_id: str, principal_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"tenants/{_q(tenant_id)}/assignments/{_q(principal_id)}")

    # --- deleted items, change log, delta tokens, churn ----------------------------------------

    def deleted_items(self, tenant_id: str) -> dict[str, Any]:
        """{"users": [...], "groups": [...]}: soft-deleted, restorable objects."""
        return self._call("GET", f"tenants/{_q(tenant_id)}/deletedItems")

    def restore(self, tenant_id: str, object_id: str) -> dict[str, Any]:
        return self._call("POST", f"tenants/{_q(tenant_id)}/deletedItems/{_q(object_id)}/restore")

    def purge(self, tenant_id: str, object_id: str) -> dict[str, Any]:
        """Permanently delete an object that is in deleted items."""
        return self._call("DELETE", f"tenants/{_q(tenant_id)}/deletedItems/{_q(object_id)}")

    def changes(self, tenant_id: str, since: int = 0) -> dict[str, Any]:
        """{"seq": N, "changes": [...]}: the change log delta queries answer from."""
        return self._call("GET", f"tenants/{_q(tenant_id)}/changes?since={since}")

    def expire_delta_tokens(self, tenant_id: str, *, status: int = 400) -> dict[str, Any]:
        """Delta tokens issued so far answer `syncStateNotFound` (status 400 or 410)."""
        return self._call("POST", f"tenants/{_q(tenant_id)}/delta/expire", {"status": status})

    def reset_delta_tokens(self, tenant_id: str) -> dict[str, Any]:
        """Delta tokens issued so far answer 410 Gone with a Location header."""
        return self._call("POST", f"tenants/{_q(tenant_id)}/delta/reset")

    def churn(self, tenant_id: str, *, share: float = 0.01, seed: int = 1) -> dict[str, Any]:
        """Apply `scenarios.churn` to the tenant; returns its summary."""
        body = {"share": share, "seed": seed}
        return self._call("POST", f"tenants/{_q(tenant_id)}/churn", body)

    # --- faults, settings, tokens, apps, request log ------------------------------------------

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "faults")

    def add_fault(
        self,
        status: int | None = None,
        *,
        kind: str | None = None,
        count: int = 1,
        path_contains: str | None = None,
        retry_after: int | None = None,
        seconds: float | None = None,
        body: Any = None,
        target: str = "graph",
    ) -> dict[str, Any]:
        """An HTTP error `status`, or `kind`: malformed, no_value, reset, timeout, delay."""
        data: dict[str, Any] = {"count": count, "target": target}
        optional = {
            "status": status,
            "kind": kind,
            "path_contains": path_contains,
            "retry_after": retry_after,
            "seconds": seconds,
            "body": body,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        return self._call("POST", "faults", data)

    def clear_faults(self) -> dict[str, Any]:
        return self._call("DELETE", "faults")

    def settings(self) -> dict[str, Any]:
        return self._call("GET", "settings")

    def update_settings(self, **values: Any) -> dict[str, Any]:
        """latency_ms, throttle_limit, throttle_window, token_lifetime, skiptoken_lifetime,
        advanced_query_strict, ru_throttling, ru_limit, ru_window, delta_user_page_size,
        delta_group_page_size, delta_member_page_size, delta_token_lifetime, batch_seed."""
        return self._call("PUT", "settings", values)

    def stats(self) -> dict[str, Any]:
        """requests, batches, subrequests, throttled, status_429, ru_spent, ru_throttled..."""
        return self._call("GET", "stats")

    def clear_stats(self) -> dict[str, Any]:
        return self._call("DELETE", "stats")

    def expire_tokens(self, *, revoke: bool = False) -> dict[str, Any]:
        return self._call("POST", "tokens/expire", {"revoke": revoke})

    def apps(self) -> list[dict[str, Any]]:
        return self._items("apps", "apps")

    def add_app(
        self,
        client_id: str,
        secret: str,
        *,
        secret_expired: bool = False,
        permissions: list[str] | None = None,
        tenant_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register or replace an app; `permissions=None` grants all, `tenant_ids=None` means
        consented everywhere."""
        return self._call(
            "POST",
            "apps",
            {
                "client_id": client_id,
                "secret": secret,
                "secret_expired": secret_expired,
                "permissions": permissions,
                "tenant_ids": tenant_ids,
            },
        )

    def delete_app(self, client_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"apps/{_q(client_id)}")

    def app_certificates(self, client_id: str) -> list[dict[str, Any]]:
        """thumbprint (SHA-1 hex), thumbprint_sha256, subject, start, end of each."""
        return self._items(f"apps/{_q(client_id)}/certificates", "certificates")

    def add_app_certificate(self, client_id: str, certificate_pem: str) -> dict[str, Any]:
        """Upload a certificate's public part to the app (a private key beside it is ignored)."""
        return self._call(
            "POST", f"apps/{_q(client_id)}/certificates", {"certificate": certificate_pem}
        )

    def delete_app_certificate(self, client_id: str, thumbprint: str) -> dict[str, Any]:
        return self._call("DELETE", f"apps/{_q(client_id)}/certificates/{_q(thumbprint)}")

    def requests_log(self) -> dict[str, Any]:
        """{"graph": [{method, url}], "login": [...], "counters": {...}}."""
        return self._call("GET", "requests")

    def clear_requests(self) -> dict[str, Any]:
        return self._call("DELETE", "requests")

    def close(self) -> None:
        self.session.close()
