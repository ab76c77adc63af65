"""The emulator's control API: JSON under `/_emulator/` to change tenants, faults and settings
between (or during) syncs, for tests, demos and the browser tests that cannot reach into the
emulator's process.

It only calls the existing `EmuTenant`, `GraphApi`, `LoginApi` and `Emulator` methods, so
what a control request does is exactly what a test doing the same in Python would do.

Objects (users, groups, assignments) use Graph's camelCase names (`displayName`,
`accountEnabled`); snake_case is accepted too. Whole tenants are `EmuTenant.to_dict()`.
Every change goes through the tenant's change-logged methods, so delta queries see it.
`DELETE .../users/{id}` and `.../groups/{id}` delete permanently unless `?soft=true` (a user,
or a Microsoft 365 group, then waits in `.../deletedItems` to be restored or purged).
Writes must say `Content-Type: application/json`: a web page cannot send that across origins
without a CORS preflight (which this API never grants), so a page open in the browser that
also shows the sign-in pages cannot quietly rewrite the tenant.
"""

from __future__ import annotations

import inspect
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .messages import EmuRequest, EmuResponse, dump_json
from .tenant import (
    DEFAULT_APP_ROLE_ID,
    ODATA_SERVICE_PRINCIPAL,
    EmuApp,
    EmuAssignment,
    EmuGroup,
    EmuTenant,
    EmuUser,
    generate_tenant,
)

if TYPE_CHECKING:
    from .core import Emulator

PREFIX = "_emulator"
MAX_GENERATED_USERS = 200_000
MAX_GENERATED_GROUPS = 20_000
FAULT_KINDS = ("status", "malformed", "no_value", "reset", "timeout", "delay")

# Graph's JSON name -> (attribute, check). Every attribute name is accepted as an alias.
_Check = Callable[[Any], bool]


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _text_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


USER_FIELDS: dict[str, tuple[str, _Check]] = {
    "id": ("id", _text),
    "userPrincipalName": ("user_principal_name", _text),
    "mail": ("mail", _optional_text),
    "displayName": ("display_name", _text),
    "givenName": ("given_name", _optional_text),
    "surname": ("surname", _optional_text),
    "accountEnabled": ("account_enabled", _boolean),
    "userType": ("user_type", lambda v: v in ("Member", "Guest")),
    "jobTitle": ("job_title", _optional_text),
    "createdDateTime": ("created_date_time", _optional_text),
    # Sign-in on the emulated login pages (Graph never shows these); password is write-only.
    "password": ("password", _optional_text),
    "directoryRoles": ("directory_roles", _text_list),
}
WRITE_ONLY = frozenset({"password"})
GROUP_FIELDS: dict[str, tuple[str, _Check]] = {
    "id": ("id", _text),
    "displayName": ("display_name", _text),
    "description": ("description", _optional_text),
    "mail": ("mail", _optional_text),
    "mailEnabled": ("mail_enabled", _boolean),
    "securityEnabled": ("security_enabled", _boolean),
    "groupTypes": ("group_types", _text_list),
    "mailNickname": ("mail_nickname", _optional_text),
    "visibility": ("visibility", _optional_text),
    "createdDateTime": ("created_date_time", _optional_text),
}
GENERATE_OPTIONS = frozenset(inspect.signature(generate_tenant).parameters)


class ControlError(Exception):
    """A refused control request: HTTP status, a short code and one sentence."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class _Call:
    request: EmuRequest
    args: list[str]
    body: dict[str, Any] = field(default_factory=dict)


_Handler = Callable[[_Call], tuple[int, Any]]


class ControlApi:
    """`/_emulator/...` for one `Emulator`. Requests are served one at a time."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        # Keyword arguments for `generate_tenant` when POST /_emulator/tenants leaves them out
        # (the graph_emulator command puts the Authentication app's id here).
        self.tenant_defaults: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._routes: list[tuple[tuple[str, ...], dict[str, _Handler]]] = [
            ((), {"GET": self._index}),
            (("tenants",), {"GET": self._tenants, "POST": self._tenant_create}),
            (
                ("tenants", "*"),
                {"GET": self._tenant_get, "PUT": self._tenant_put, "DELETE": self._tenant_delete},
            ),
            (("tenants", "*", "users"), {"GET": self._users, "POST": self._user_add}),
            (
                ("tenants", "*", "users", "*"),
                {"GET": self._user_get, "PATCH": self._user_update, "DELETE": self._user_delete},
            ),
            (("tenants", "*", "groups"), {"GET": self._groups, "POST": self._group_add}),
            (
                ("tenants", "*", "groups", "*"),
                {
                    "GET": self._group_get,
                    "PATCH": self._group_update,
                    "DELETE": self._group_delete,
                },
            ),
            (("tenants", "*", "groups", "*", "members"), {"POST": self._member_add}),
            (("tenants", "*", "groups", "*", "members", "*"), {"DELETE": self._member_remove}),
            (
                ("tenants", "*", "assignments"),
                {"GET": self._assignments, "POST": self._assignment_add},
            ),
            (("tenants", "*", "assignments", "*"), {"DELETE": self._assignment_remove}),
            (("tenants", "*", "deletedItems"), {"GET": self._deleted_items}),
            (("tenants", "*", "deletedItems", "*"), {"DELETE": self._deleted_purge}),
            (("tenants", "*", "deletedItems", "*", "restore"), {"POST": self._deleted_restore}),
            (("tenants", "*", "changes"), {"GET": self._changes}),
            (("tenants", "*", "delta", "expire"), {"POST": self._delta_expire}),
            (("tenants", "*", "delta", "reset"), {"POST": self._delta_reset}),
            (("tenants", "*", "churn"), {"POST": self._churn}),
            (
                ("faults",),
                {"GET": self._faults, "POST": self._fault_add, "DELETE": self._faults_clear},
            ),
            (("settings",), {"GET": self._settings, "PUT": self._settings_update}),
            (("stats",), {"GET": self._stats, "DELETE": self._stats_clear}),
            (("tokens", "expire"), {"POST": self._tokens_expire}),
            (("apps",), {"GET": self._apps, "POST": self._app_add}),
            (("apps", "*"), {"DELETE": self._app_delete}),
            (
                ("apps", "*", "certificates"),
                {"GET": self._app_certificates, "POST": self._app_certificate_add},
            ),
            (("apps", "*", "certificates", "*"), {"DELETE": self._app_certificate_delete}),
            (("requests",), {"GET": self._requests, "DELETE": self._requests_clear}),
        ]

    # --- entry point --------------------------------------------------------------------------

    def handle(self, request: EmuRequest) -> EmuResponse:
        headers = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}
        try:
            handler, call = self._resolve(request)
            with self._lock:
                status, payload = handler(call)
        except ControlError as error:
            status = error.status
            payload = {"error": {"code": error.code, "message": error.message}}
            headers.update(error.headers)
        return EmuResponse(status, headers, dump_json(payload))

    def _resolve(self, request: EmuRequest) -> tuple[_Handler, _Call]:
        path = request.segments[1:]  # after "_emulator"
        method = request.method.upper()
        for pattern, methods in self._routes:
            if len(pattern) != len(path) or any(
                p != "*" and p != s for p, s in zip(pattern, path, strict=True)
            ):
                continue
            handler = methods.get(method)
            if handler is None:
                allow = ", ".join(methods)
                raise ControlError(
                    405, "method_not_allowed", f"{method} not allowed.", {"Allow": allow}
                )
            args = [s for p, s in zip(pattern, path, strict=True) if p == "*"]
            return handler, _Call(request, args, self._body(request))
        raise ControlError(404, "not_found", f"No control endpoint /{PREFIX}/{'/'.join(path)}.")

    @staticmethod
    def _body(request: EmuRequest) -> dict[str, Any]:
        if request.method.upper() not in ("POST", "PUT", "PATCH"):
            return {}
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ControlError(
                415, "unsupported_media_type", "Send the body as Content-Type: application/json."
            )
        if not request.body.strip():
            return {}
        try:
            body = json.loads(request.body)
        except ValueError:
            raise ControlError(400, "invalid_json", "The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise ControlError(400, "invalid_json", "The body must be a JSON object.")
        return body

    def _index(self, call: _Call) -> tuple[int, Any]:
        endpoints = [
            f"{' '.join(methods)} /{'/'.join((PREFIX, *pattern))}".replace("*", "{id}")
            for pattern, methods in self._routes
        ]
        return 200, {"endpoints": endpoints}

    # --- tenants ------------------------------------------------------------------------------

    def _tenant(self, tenant_id: str) -> EmuTenant:
        tenant = self.emulator.tenants.get(tenant_id.lower())
        if tenant is None:
            raise ControlError(404, "tenant_not_found", f"No tenant {tenant_id}.")
        return tenant

    @staticmethod
    def _summary(tenant: EmuTenant) -> dict[str, Any]:
        return {
            "tenant_id": tenant.tenant_id,
            "display_name": tenant.display_name,
            "default_domain": tenant.default_domain,
            "auth_app_id": tenant.auth_app_id,
            "users": len(tenant.users),
            "groups": len(tenant.groups),
            "others": len(tenant.others),
            "assignments": len(tenant.assignments),
            "assigned_groups": sum(a.principal_type == "Group" for a in tenant.assignments),
        }

    def _tenants(self, call: _Call) -> tuple[int, Any]:
        return 200, {"tenants": [self._summary(t) for t in self.emulator.tenants.values()]}

    def _tenant_get(self, call: _Call) -> tuple[int, Any]:
        return 200, self._tenant(call.args[0]).to_dict()

    def _tenant_create(self, call: _Call) -> tuple[int, Any]:
        """A full tenant document (it has `users` as a list), or `generate_tenant` options."""
        data = call.body
        if isinstance(data.get("users"), list):
            tenant = _tenant_from_dict(data)
        else:
            options = {**self.tenant_defaults, **data}
            unknown = set(options) - GENERATE_OPTIONS
            if unknown:
                raise ControlError(
                    400,
                    "invalid_field",
                    f"Unknown generate option(s): {', '.join(sorted(unknown))}.",
                )
            options.setdefault("users", 50)
            options.setdefault("groups", 8)
            for name, limit in (("users", MAX_GENERATED_USERS), ("groups", MAX_GENERATED_GROUPS)):
                value = options[name]
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
                    raise ControlError(
                        400, "invalid_field", f"'{name}' must be a whole number 0..{limit}."
                    )
            try:
                tenant = generate_tenant(**options)
            except (TypeError, ValueError) as exc:
                raise ControlError(400, "invalid_field", f"Cannot generate: {exc}") from None
        if tenant.tenant_id.lower() in self.emulator.tenants:
            raise ControlError(
                409,
                "tenant_exists",
                f"Tenant {tenant.tenant_id} exists: PUT it to replace it, or pick another "
                "seed or tenant_id.",
            )
        self.emulator.add_tenant(tenant)
        return 201, self._summary(tenant)

    def _tenant_put(self, call: _Call) -> tuple[int, Any]:
        tenant_id = call.args[0]
        data = {"tenant_id": tenant_id, **call.body}
        if str(data["tenant_id"]).lower() != tenant_id.lower():
            raise ControlError(400, "invalid_field", "tenant_id in the body differs from the URL.")
        tenant = _tenant_from_dict(data)
        existed = tenant.tenant_id.lower() in self.emulator.tenants
        self.emulator.add_tenant(tenant)
        return (200 if existed else 201), self._summary(tenant)

    def _tenant_delete(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        self.emulator.remove_tenant(tenant.tenant_id)
        return 200, {"deleted": tenant.tenant_id}

    # --- users --------------------------------------------------------------------------------

    @staticmethod
    def _user(tenant: EmuTenant, key: str) -> EmuUser:
        user = tenant.user_by_key(key)
        if user is None:
            raise ControlError(404, "user_not_found", f"No user {key} in {tenant.display_name}.")
        return user

    def _users(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        return 200, {"users": [_out(u, USER_FIELDS) for u in tenant.users.values()]}

    def _user_get(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        return 200, _out(self._user(tenant, call.args[1]), USER_FIELDS)

    def _user_add(self, call: _Call) -> tuple[int, Any]:
        """A new user; `groups` (ids) adds it to those groups too."""
        tenant = self._tenant(call.args[0])
        body = dict(call.body)
        group_ids = body.pop("groups", [])
        if not _text_list(group_ids):
            raise ControlError(400, "invalid_field", "'groups' must be a list of group ids.")
        groups = [self._group(tenant, g) for g in group_ids]
        values = _fields(body, USER_FIELDS)
        if "user_principal_name" not in values:
            raise ControlError(400, "invalid_field", "'userPrincipalName' is required.")
        upn = values["user_principal_name"]
        values.setdefault("id", str(uuid.uuid4()))
        values.setdefault("display_name", upn.split("@")[0])
        values.setdefault("mail", None)
        values.setdefault("given_name", None)
        values.setdefault("surname", None)
        if tenant.kind_of(values["id"]) is not None or tenant.is_deleted(values["id"]):
            raise ControlError(409, "object_exists", f"Object {values['id']} exists.")
        self._check_upn_free(tenant, upn)
        user = tenant.add_user(EmuUser(**values))
        for group in groups:
            tenant.add_member(group.id, user.id)
        return 201, _out(user, USER_FIELDS)

    def _user_update(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        user = self._user(tenant, call.args[1])
        values = _fields(call.body, USER_FIELDS)
        if values.get("id", user.id) != user.id:
            raise ControlError(400, "invalid_field", "An object id never changes.")
        values.pop("id", None)
        upn = values.get("user_principal_name")
        if upn is not None and upn.lower() != user.user_principal_name.lower():
            self._check_upn_free(tenant, upn)
        tenant.update_user(user.id, **values)
        return 200, _out(user, USER_FIELDS)

    def _user_delete(self, call: _Call) -> tuple[int, Any]:
        """Permanently, or with `?soft=true` into deleted items (restorable)."""
        tenant = self._tenant(call.args[0])
        user = self._user(tenant, call.args[1])
        if _soft(call):
            tenant.soft_delete_user(user.id)
            return 200, {"deleted": user.id, "restorable": True}
        tenant.remove_user(user.id)
        return 200, {"deleted": user.id}

    @staticmethod
    def _check_upn_free(tenant: EmuTenant, upn: str) -> None:
        if tenant.user_by_key(upn) is not None:
            raise ControlError(409, "upn_exists", f"Another user has the userPrincipalName {upn}.")

    # --- groups and members -------------------------------------------------------------------

    @staticmethod
    def _group(tenant: EmuTenant, group_id: str) -> EmuGroup:
        group = tenant.groups.get(group_id) or tenant.groups.get(group_id.lower())
        if group is None:
            raise ControlError(
                404, "group_not_found", f"No group {group_id} in {tenant.display_name}."
            )
        return group

    @staticmethod
    def _group_out(group: EmuGroup) -> dict[str, Any]:
        return {**_out(group, GROUP_FIELDS), "members": list(group.member_ids)}

    def _groups(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        return 200, {"groups": [self._group_out(g) for g in tenant.groups.values()]}

    def _group_get(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        return 200, self._group_out(self._group(tenant, call.args[1]))

    def _group_add(self, call: _Call) -> tuple[int, Any]:
        """A new group; `members` (ids) fills it and `assigned: true` assigns it to the
        Authentication app."""
        tenant = self._tenant(call.args[0])
        body = dict(call.body)
        members = body.pop("members", [])
        assigned = body.pop("assigned", False)
        if not _text_list(members) or not isinstance(assigned, bool):
            raise ControlError(
                400, "invalid_field", "'members' must be a list of ids, 'assigned' a boolean."
            )
        values = _fields(body, GROUP_FIELDS)
        if "display_name" not in values:
            raise ControlError(400, "invalid_field", "'displayName' is required.")
        values.setdefault("id", str(uuid.uuid4()))
        if tenant.kind_of(values["id"]) is not None or tenant.is_deleted(values["id"]):
            raise ControlError(409, "object_exists", f"Object {values['id']} exists.")
        group = EmuGroup(**values)
        for member_id in members:
            self._check_member(tenant, group, member_id)
        tenant.add_group(group)
        for member_id in members:
            tenant.add_member(group.id, member_id)
        if assigned:
            tenant.assign_group(group.id)
        return 201, self._group_out(group)

    def _group_update(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        group = self._group(tenant, call.args[1])
        values = _fields(call.body, GROUP_FIELDS)
        if values.pop("id", group.id) != group.id:
            raise ControlError(400, "invalid_field", "An object id never changes.")
        tenant.update_group(group.id, **values)
        return 200, self._group_out(group)

    def _group_delete(self, call: _Call) -> tuple[int, Any]:
        """Permanently, or with `?soft=true` a Microsoft 365 group into deleted items
        (security groups cannot be: "Deleted security groups are deleted permanently")."""
        tenant = self._tenant(call.args[0])
        group = self._group(tenant, call.args[1])
        if _soft(call):
            if not group.is_unified:
                raise ControlError(
                    400,
                    "not_restorable",
                    "Deleted security groups are deleted permanently: only Microsoft 365 "
                    "groups can be soft deleted.",
                )
            tenant.soft_delete_group(group.id)
            return 200, {"deleted": group.id, "restorable": True}
        tenant.remove_group(group.id)
        return 200, {"deleted": group.id}

    def _member_add(self, call: _Call) -> tuple[int, Any]:
        """`{"id": member}` or `{"ids": [...]}`: users, groups, devices... already in the tenant."""
        tenant = self._tenant(call.args[0])
        group = self._group(tenant, call.args[1])
        ids = call.body.get("ids", [call.body["id"]] if "id" in call.body else None)
        if not ids or not _text_list(ids):
            raise ControlError(400, "invalid_field", "Send 'id' (a member id) or 'ids' (a list).")
        for member_id in ids:
            self._check_member(tenant, group, member_id)
        for member_id in ids:
            tenant.add_member(group.id, member_id)
        return 200, self._group_out(group)

    def _member_remove(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        group = self._group(tenant, call.args[1])
        member_id = call.args[2]
        if member_id not in group.member_ids:
            raise ControlError(
                404, "member_not_found", f"{member_id} is not a member of {group.display_name}."
            )
        tenant.remove_member(group.id, member_id)
        return 200, self._group_out(group)

    @staticmethod
    def _check_member(tenant: EmuTenant, group: EmuGroup, member_id: str) -> None:
        kind = tenant.kind_of(member_id)
        if kind is None:
            raise ControlError(
                404, "object_not_found", f"No user, group or other object {member_id}."
            )
        if member_id == group.id:
            raise ControlError(400, "invalid_member", "A group cannot be its own member.")
        if kind == "group" and group.is_unified:
            raise ControlError(400, "invalid_member", "Microsoft 365 groups cannot contain groups.")

    # --- assignments to the Authentication app ------------------------------------------------

    def _assignments(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        return 200, {"assignments": [_assignment_out(a) for a in tenant.assignments]}

    def _assignment_add(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        principal_id = call.body.get("principalId", call.body.get("principal_id"))
        role = call.body.get("appRoleId", call.body.get("app_role_id", DEFAULT_APP_ROLE_ID))
        if not _text(principal_id) or not _text(role):
            raise ControlError(400, "invalid_field", "'principalId' is required.")
        if any(
            a.principal_id == principal_id and a.app_role_id == role for a in tenant.assignments
        ):
            raise ControlError(
                409, "assignment_exists", "Permission being assigned already exists on the object."
            )
        principal_id, role = str(principal_id), str(role)
        kind = tenant.kind_of(principal_id)
        if kind == "group":
            assignment = tenant.assign_group(principal_id, app_role_id=role)
        elif kind == "user":
            assignment = tenant.assign_user(principal_id, app_role_id=role)
        elif kind == "other" and tenant.others[principal_id].odata_type == ODATA_SERVICE_PRINCIPAL:
            assignment = tenant.assign_service_principal(principal_id)
        else:
            raise ControlError(
                404,
                "object_not_found",
                f"No user, group or service principal {principal_id} to assign.",
            )
        return 201, _assignment_out(assignment)

    def _assignment_remove(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        removed = tenant.unassign(call.args[1])
        if not removed:
            raise ControlError(
                404, "assignment_not_found", f"{call.args[1]} is not assigned to the app."
            )
        return 200, {"deleted": call.args[1], "assignments_removed": removed}

    # --- deleted items, the change log, delta tokens, churn ------------------------------------

    def _deleted_items(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        return 200, {
            "users": [_out(u, USER_FIELDS) for u in tenant.deleted_users.values()],
            "groups": [self._group_out(g) for g in tenant.deleted_groups.values()],
        }

    def _deleted_restore(self, call: _Call) -> tuple[int, Any]:
        tenant = self._tenant(call.args[0])
        object_id = call.args[1]
        if object_id in tenant.deleted_users:
            return 200, _out(tenant.restore_user(object_id), USER_FIELDS)
        if object_id in tenant.deleted_groups:
            return 200, self._group_out(tenant.restore_group(object_id))
        raise ControlError(404, "object_not_found", f"{object_id} is not in deleted items.")

    def _deleted_purge(self, call: _Call) -> tuple[int, Any]:
        """Permanently delete an object from deleted items."""
        tenant = self._tenant(call.args[0])
        object_id = call.args[1]
        if object_id in tenant.deleted_users:
            tenant.remove_user(object_id)
        elif object_id in tenant.deleted_groups:
            tenant.remove_group(object_id)
        else:
            raise ControlError(404, "object_not_found", f"{object_id} is not in deleted items.")
        return 200, {"deleted": object_id}

    def _changes(self, call: _Call) -> tuple[int, Any]:
        """The tenant's change log from `?since=N` (default 0): what delta queries replay."""
        tenant = self._tenant(call.args[0])
        raw = dict(call.request.query).get("since", "0")
        if not raw.isdigit():
            raise ControlError(400, "invalid_field", "'since' must be a whole number.")
        since = int(raw)
        changes = [
            {"seq": since + i + 1, **{k: v for k, v in c._asdict().items() if v}}
            | {"props": sorted(c.props)}
            for i, c in enumerate(tenant.changes[since:])
        ]
        for change in changes:
            if not change["props"]:
                del change["props"]
        return 200, {"seq": tenant.change_seq, "changes": changes}

    def _delta_expire(self, call: _Call) -> tuple[int, Any]:
        """Every delta token issued so far for the tenant expires: `syncStateNotFound`, with
        `status` 400 (default) or 410."""
        tenant = self._tenant(call.args[0])
        status = call.body.get("status", 400)
        if status not in (400, 410):
            raise ControlError(400, "invalid_field", "'status' must be 400 or 410.")
        self.emulator.graph.delta.expire(tenant.tenant_id, status=status)
        return 200, {"tenant_id": tenant.tenant_id, "expired": True, "status": status}

    def _delta_reset(self, call: _Call) -> tuple[int, Any]:
        """Every delta token issued so far for the tenant gets 410 Gone with a Location header
        (Graph's "synchronization reset")."""
        tenant = self._tenant(call.args[0])
        self.emulator.graph.delta.reset(tenant.tenant_id)
        return 200, {"tenant_id": tenant.tenant_id, "reset": True}

    def _churn(self, call: _Call) -> tuple[int, Any]:
        """`{"share": 0.01, "seed": 1}`: `scenarios.churn`, the benchmark's "1 % changes"."""
        from .scenarios import churn  # scenarios imports core, which imports this module

        tenant = self._tenant(call.args[0])
        share, seed = call.body.get("share", 0.01), call.body.get("seed", 1)
        unknown = set(call.body) - {"share", "seed"}
        if unknown:
            raise ControlError(
                400, "invalid_field", f"Unknown field(s): {', '.join(sorted(unknown))}."
            )
        if not _number(share, 1e-9, 1) or not _whole(seed, -(2**63), 2**63):
            raise ControlError(400, "invalid_field", "'share' must be in (0, 1], 'seed' whole.")
        summary = churn(tenant, share=float(share), seed=seed)
        return 200, {"summary": summary.as_dict(), "total": summary.total, "text": str(summary)}

    # --- faults, settings, tokens, apps, request log ------------------------------------------

    def _faults(self, call: _Call) -> tuple[int, Any]:
        graph = [
            {
                "kind": f.disconnect if f.kind == "disconnect" else f.kind,
                "remaining": f.remaining,
                "path_contains": f.path_contains,
                "status": f.status or None,
                "retry_after": f.retry_after,
                "seconds": f.seconds or None,
            }
            for f in list(self.emulator.graph.faults)
        ]
        login = [
            {
                "status": f.status,
                "remaining": f.remaining,
                "path_contains": f.path_contains,
                "retry_after": f.retry_after,
            }
            for f in list(self.emulator.login.faults)
        ]
        return 200, {"graph": graph, "login": login}

    def _fault_add(self, call: _Call) -> tuple[int, Any]:
        """Graph: `{status, count, path_contains, retry_after, body}` or `{kind, count, ...}`;
        login (token and discovery endpoints): `{target: "login", status, ...}`."""
        data = call.body
        unknown = set(data) - {
            "target",
            "kind",
            "status",
            "count",
            "path_contains",
            "retry_after",
            "body",
            "seconds",
        }
        if unknown:
            raise ControlError(
                400, "invalid_field", f"Unknown fault field(s): {', '.join(sorted(unknown))}."
            )
        target = data.get("target", "graph")
        kind = data.get("kind", "status")
        count = data.get("count", 1)
        path_contains = data.get("path_contains")
        retry_after = data.get("retry_after")
        status: Any = data.get("status")
        if target not in ("graph", "login"):
            raise ControlError(400, "invalid_field", "'target' is 'graph' or 'login'.")
        if kind not in FAULT_KINDS or (target == "login" and kind != "status"):
            raise ControlError(
                400,
                "invalid_field",
                f"'kind' is one of {', '.join(FAULT_KINDS)} (login faults: status only).",
            )
        if not _whole(count, 1, 100_000):
            raise ControlError(400, "invalid_field", "'count' must be a whole number >= 1.")
        if not _optional_text(path_contains):
            raise ControlError(400, "invalid_field", "'path_contains' must be text.")
        if retry_after is not None and not _whole(retry_after, 0, 3600):
            raise ControlError(400, "invalid_field", "'retry_after' must be whole seconds.")
        graph, login = self.emulator.graph, self.emulator.login
        if kind == "status":
            if not _whole(status, 400, 599):
                raise ControlError(400, "invalid_field", "'status' must be an HTTP error 400..599.")
            if target == "login":
                login.fail_next(status, count, path_contains, data.get("body"), retry_after)
            else:
                graph.fail_next(status, count, path_contains, retry_after, data.get("body"))
        elif kind == "malformed":
            graph.malformed_next(count, path_contains)
        elif kind == "no_value":
            graph.page_without_value_next(count, path_contains)
        elif kind == "delay":
            seconds = data.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise ControlError(400, "invalid_field", "A delay needs 'seconds'.")
            if not 0 <= seconds <= 300:
                raise ControlError(400, "invalid_field", "'seconds' must be 0..300.")
            graph.delay_next(float(seconds), count, path_contains)
        else:
            graph.disconnect_next(count, path_contains, kind=kind)
        return 201, self._faults(call)[1]

    def _faults_clear(self, call: _Call) -> tuple[int, Any]:
        self.emulator.graph.clear_faults()
        self.emulator.login.faults.clear()
        return 200, self._faults(call)[1]

    def _settings(self, call: _Call) -> tuple[int, Any]:
        graph = self.emulator.graph
        delta = graph.delta.settings
        return 200, {
            "latency_ms": round(graph.latency * 1000, 3),
            "throttle_limit": graph.throttle_limit,
            "throttle_window": graph.throttle_window,
            "token_lifetime": self.emulator.login.token_lifetime,
            "skiptoken_lifetime": graph.skiptoken_lifetime,
            "advanced_query_strict": graph.advanced_query_strict,
            "ru_throttling": graph.ru.enabled,
            "ru_limit": graph.ru.pair_limit,
            "ru_window": graph.ru.pair_window,
            "delta_user_page_size": delta.user_page_size,
            "delta_group_page_size": delta.group_page_size,
            "delta_member_page_size": delta.member_page_size,
            "delta_token_lifetime": delta.token_lifetime,
            "batch_seed": graph.batch_seed,
        }

    def _settings_update(self, call: _Call) -> tuple[int, Any]:
        """Any of the fields `GET /settings` shows. `ru_limit` null: the documented limit for
        the tenant's size (S 3,500 / M 5,000 / L 8,000 per `ru_window` seconds)."""
        data = call.body
        unknown = set(data) - {
            "latency_ms",
            "throttle_limit",
            "throttle_window",
            "token_lifetime",
            "skiptoken_lifetime",
            "advanced_query_strict",
            "ru_throttling",
            "ru_limit",
            "ru_window",
            "delta_user_page_size",
            "delta_group_page_size",
            "delta_member_page_size",
            "delta_token_lifetime",
            "batch_seed",
        }
        if unknown:
            raise ControlError(
                400, "invalid_field", f"Unknown setting(s): {', '.join(sorted(unknown))}."
            )
        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "latency_ms": (lambda v: _number(v, 0, 60_000), "milliseconds 0..60000"),
            "throttle_limit": (lambda v: v is None or _whole(v, 1, 10**9), "null or >= 1"),
            "throttle_window": (lambda v: _number(v, 0.001, 86_400), "seconds > 0"),
            "token_lifetime": (lambda v: _whole(v, 1, 86_400), "whole seconds 1..86400"),
            "skiptoken_lifetime": (lambda v: v is None or _number(v, 0, 10**9), "null or seconds"),
            "advanced_query_strict": (lambda v: isinstance(v, bool), "true or false"),
            "ru_throttling": (lambda v: isinstance(v, bool), "true or false"),
            "ru_limit": (lambda v: v is None or _whole(v, 1, 10**9), "null or >= 1"),
            "ru_window": (lambda v: _number(v, 0.001, 86_400), "seconds > 0"),
            "delta_user_page_size": (lambda v: _whole(v, 1, 100_000), "1..100000"),
            "delta_group_page_size": (lambda v: _whole(v, 1, 100_000), "1..100000"),
            "delta_member_page_size": (lambda v: _whole(v, 1, 1_000_000), "1..1000000"),
            "delta_token_lifetime": (lambda v: _number(v, 0, 10**9), "seconds"),
            "batch_seed": (lambda v: _whole(v, -(2**63), 2**63), "a whole number"),
        }
        for name, value in data.items():
            check, expected = checks[name]
            if not check(value):
                raise ControlError(400, "invalid_field", f"'{name}' must be {expected}.")
        graph = self.emulator.graph
        if "latency_ms" in data:
            graph.latency = float(data["latency_ms"]) / 1000
        if "throttle_limit" in data:
            graph.throttle_limit = data["throttle_limit"]
        if "throttle_window" in data:
            graph.throttle_window = float(data["throttle_window"])
        if "token_lifetime" in data:
            self.emulator.login.token_lifetime = data["token_lifetime"]
        if "skiptoken_lifetime" in data:
            value = data["skiptoken_lifetime"]
            graph.skiptoken_lifetime = None if value is None else float(value)
        if "advanced_query_strict" in data:
            graph.advanced_query_strict = data["advanced_query_strict"]
        if "ru_throttling" in data:
            graph.ru.enabled = data["ru_throttling"]
        if "ru_limit" in data:
            graph.ru.pair_limit = data["ru_limit"]
        if "ru_window" in data:
            graph.ru.pair_window = float(data["ru_window"])
        delta = graph.delta.settings
        if "delta_user_page_size" in data:
            delta.user_page_size = data["delta_user_page_size"]
        if "delta_group_page_size" in data:
            delta.group_page_size = data["delta_group_page_size"]
        if "delta_member_page_size" in data:
            delta.member_page_size = data["delta_member_page_size"]
        if "delta_token_lifetime" in data:
            delta.token_lifetime = float(data["delta_token_lifetime"])
        if "batch_seed" in data:
            graph.batch_seed = data["batch_seed"]
        return self._settings(call)

    def _stats(self, call: _Call) -> tuple[int, Any]:
        """Totals for reports: Graph requests, batch parts, 429s, resource units spent."""
        graph = self.emulator.graph
        counters = dict(graph.counters)
        return 200, {
            "requests": counters.get("requests", 0),
            "batches": counters.get("batch.requests", 0),
            "subrequests": counters.get("subrequests", 0),
            "throttled": counters.get("throttled", 0),
            "status_429": counters.get("status.429", 0) + counters.get("batch.status.429", 0),
            "ru_spent": counters.get("ru.spent", 0),
            "ru_throttled": counters.get("ru.throttled", 0),
            "ru_by_app_tenant": dict(graph.ru.spent),
            "counters": counters,
        }

    def _stats_clear(self, call: _Call) -> tuple[int, Any]:
        """Zero the counters (the throttling budgets themselves keep their state)."""
        graph = self.emulator.graph
        graph.counters.clear()
        graph.ru.spent.clear()
        graph.ru.throttled_cost.clear()
        return self._stats(call)

    def _tokens_expire(self, call: _Call) -> tuple[int, Any]:
        """Every token issued so far expires (Graph: 401); `revoke: true` forgets them instead."""
        if call.body.get("revoke"):
            self.emulator.tokens.revoke_all()
        else:
            self.emulator.expire_tokens()
        return 200, {"tokens": len(self.emulator.tokens)}

    def _apps(self, call: _Call) -> tuple[int, Any]:
        return 200, {"apps": [_app_out(a) for a in self.emulator.apps.values()]}

    def _app_add(self, call: _Call) -> tuple[int, Any]:
        """Register (or replace) an app that gets tokens with a client secret."""
        data = call.body
        client_id, secret = data.get("client_id"), data.get("secret")
        permissions, tenant_ids = data.get("permissions"), data.get("tenant_ids")
        secret_expired = data.get("secret_expired", False)
        if not _text(client_id) or not _text(secret):
            raise ControlError(400, "invalid_field", "'client_id' and 'secret' are required.")
        if permissions is not None and not _text_list(permissions):
            raise ControlError(400, "invalid_field", "'permissions' must be a list or null.")
        if tenant_ids is not None and not _text_list(tenant_ids):
            raise ControlError(400, "invalid_field", "'tenant_ids' must be a list or null.")
        if not isinstance(secret_expired, bool):
            raise ControlError(400, "invalid_field", "'secret_expired' must be a boolean.")
        existed = client_id in self.emulator.apps
        app = self.emulator.add_app(
            str(client_id),
            str(secret),
            secret_expired=secret_expired,
            tenant_ids=set(tenant_ids) if tenant_ids is not None else None,
            permissions=set(permissions) if permissions is not None else None,
        )
        if _text(data.get("display_name")):
            app.display_name = data["display_name"]
        return (200 if existed else 201), _app_out(app)

    def _app_delete(self, call: _Call) -> tuple[int, Any]:
        if self.emulator.apps.pop(call.args[0], None) is None:
            raise ControlError(404, "app_not_found", f"No app {call.args[0]}.")
        return 200, {"deleted": call.args[0]}

    def _app(self, client_id: str) -> EmuApp:
        app = self.emulator.apps.get(client_id)
        if app is None:
            raise ControlError(404, "app_not_found", f"No app {client_id}.")
        return app

    def _app_certificates(self, call: _Call) -> tuple[int, Any]:
        app = self._app(call.args[0])
        return 200, {"certificates": [c.describe() for c in app.certificates]}

    def _app_certificate_add(self, call: _Call) -> tuple[int, Any]:
        """Upload a certificate's public part (`certificate`: PEM) to the app registration."""
        app = self._app(call.args[0])
        pem = call.body.get("certificate")
        if not _text(pem):
            raise ControlError(400, "invalid_field", "'certificate' (PEM text) is required.")
        existed = len(app.certificates)
        try:
            certificate = app.add_certificate(str(pem))
        except ValueError:
            raise ControlError(
                400, "invalid_certificate", "'certificate' is not a PEM X.509 certificate."
            ) from None
        return (201 if len(app.certificates) > existed else 200), certificate.describe()

    def _app_certificate_delete(self, call: _Call) -> tuple[int, Any]:
        client_id, thumbprint = call.args
        if not self._app(client_id).remove_certificate(thumbprint):
            raise ControlError(
                404, "certificate_not_found", f"App {client_id} has no certificate {thumbprint}."
            )
        return 200, {"deleted": thumbprint}

    def _requests(self, call: _Call) -> tuple[int, Any]:
        """What clients asked Graph and the login service, in order (URLs, never headers)."""
        graph, login = self.emulator.graph, self.emulator.login
        return 200, {
            "graph": [{"method": m, "url": u} for m, u in list(graph.requests_seen)],
            "login": [{"method": m, "url": u} for m, u in list(login.requests_seen)],
            "counters": {"graph": dict(graph.counters), "login": dict(login.counters)},
        }

    def _requests_clear(self, call: _Call) -> tuple[int, Any]:
        for api in (self.emulator.graph, self.emulator.login):
            api.requests_seen.clear()
            api.counters.clear()
        return self._requests(call)


# --- helpers ----------------------------------------------------------------------------------


def _soft(call: _Call) -> bool:
    value = dict(call.request.query).get("soft", "false").lower()
    if value not in ("true", "false"):
        raise ControlError(400, "invalid_field", "'soft' is true or false.")
    return value == "true"


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def _fields(data: Mapping[str, Any], table: dict[str, tuple[str, _Check]]) -> dict[str, Any]:
    """Validated attribute values from Graph-named (or attribute-named) JSON fields."""
    by_name = {**{attr: (attr, check) for attr, check in table.values()}, **table}
    values: dict[str, Any] = {}
    for name, value in data.items():
        entry = by_name.get(name)
        if entry is None:
            raise ControlError(400, "invalid_field", f"Unknown field '{name}'.")
        attribute, check = entry
        if not check(value):
            raise ControlError(400, "invalid_field", f"Invalid value for '{name}': {value!r}.")
        values[attribute] = value
    return values


def _out(obj: Any, table: dict[str, tuple[str, _Check]]) -> dict[str, Any]:
    return {
        name: getattr(obj, attribute)
        for name, (attribute, _) in table.items()
        if name not in WRITE_ONLY
    }


def _assignment_out(assignment: EmuAssignment) -> dict[str, Any]:
    return {
        "id": assignment.id,
        "principalId": assignment.principal_id,
        "principalType": assignment.principal_type,
        "principalDisplayName": assignment.principal_display_name,
        "appRoleId": assignment.app_role_id,
        "createdDateTime": assignment.created,
    }


def _app_out(app: EmuApp) -> dict[str, Any]:
    """An app registration without its secret."""
    return {
        "client_id": app.client_id,
        "display_name": app.display_name,
        "secret_expired": app.secret_expired,
        "permissions": sorted(app.permissions) if app.permissions is not None else None,
        "tenant_ids": sorted(app.tenant_ids) if app.tenant_ids is not None else None,
        "certificates": [c.describe() for c in app.certificates],
    }


def _tenant_from_dict(data: dict[str, Any]) -> EmuTenant:
    try:
        tenant = EmuTenant.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ControlError(400, "invalid_tenant", f"Not a tenant document: {exc!r}.") from None
    if not _text(tenant.tenant_id):
        raise ControlError(400, "invalid_tenant", "A tenant needs a tenant_id.")
    return tenant
