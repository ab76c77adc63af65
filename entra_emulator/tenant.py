"""An Entra ID tenant in memory: users, groups, other directory objects and app assignments.

The emulator's Graph side reads these objects; tests and benchmarks build them by hand or with
`generate_tenant`. Change membership through the methods (or call `touch()` after editing
`member_ids` directly) so cached transitive memberships are rebuilt.

Every method that changes a user, a group or a membership also appends a `Change` to
`tenant.changes`, the log that `/users/delta` and `/groups/delta` answer from. Edits made
directly on the objects (plus `touch()`) are not logged: delta queries do not see them, just
as a generated tenant's initial state is not a change.

Deletion follows Microsoft Entra: a user, or a Microsoft 365 group, is first *soft deleted*
into `deleted_users` / `deleted_groups` (restorable; it keeps its memberships, hidden), then
*permanently deleted* (`remove_user` / `remove_group`, which also take it out of every group).
Security groups are always deleted permanently ("Deleted security groups are deleted
permanently", Get deleted item (directory object), Graph v1.0).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import math
import random
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

from .client_assertions import AppCertificate

DEFAULT_AUTH_APP_ID = "22222222-2222-4222-8222-222222222222"
DEFAULT_APP_ROLE_ID = "00000000-0000-0000-0000-000000000000"  # "Default Access"
DEFAULT_ADMIN_PASSWORD = "entra-sync-demo"
GLOBAL_ADMINISTRATOR = "Global Administrator"
# Directory roles that may grant tenant-wide admin consent to Microsoft Graph app permissions
# ("Grant tenant-wide admin consent to an application", Microsoft Entra docs).
CONSENT_ADMIN_ROLES = frozenset((GLOBAL_ADMINISTRATOR, "Privileged Role Administrator"))
# The Directory Sync app's Microsoft Graph application permissions, exactly those README's
# "Registering the two Entra applications" tells an admin to add: read-only, least privileged.
DIRECTORY_SYNC_PERMISSIONS = frozenset(
    ("User.Read.All", "GroupMember.Read.All", "Application.Read.All", "Organization.Read.All")
)

UserType = Literal["Member", "Guest"]
PrincipalType = Literal["Group", "User", "ServicePrincipal"]
MemberKind = Literal["user", "group", "other"]

ODATA_USER = "#microsoft.graph.user"
ODATA_GROUP = "#microsoft.graph.group"
ODATA_DEVICE = "#microsoft.graph.device"
ODATA_SERVICE_PRINCIPAL = "#microsoft.graph.servicePrincipal"
ODATA_ORG_CONTACT = "#microsoft.graph.orgContact"

ChangeKind = Literal["user", "group", "member", "assignment"]
# Graph JSON properties that change with each attribute (derived ones included), so a delta
# query can tell which `$select`ed properties a change touched.
USER_ATTRIBUTE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "id": (),
    "user_principal_name": ("userPrincipalName", "mailNickname"),
    "mail": ("mail", "proxyAddresses"),
    "display_name": ("displayName",),
    "given_name": ("givenName",),
    "surname": ("surname",),
    "account_enabled": ("accountEnabled",),
    "user_type": ("userType", "creationType", "externalUserState"),
    "job_title": ("jobTitle",),
    "created_date_time": ("createdDateTime",),
    "password": (),
    "directory_roles": (),
}
GROUP_ATTRIBUTE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "id": (),
    "display_name": ("displayName",),
    "description": ("description",),
    "mail": ("mail", "proxyAddresses"),
    "mail_enabled": ("mailEnabled",),
    "security_enabled": ("securityEnabled",),
    "group_types": ("groupTypes", "isAssignableToRole"),
    "mail_nickname": ("mailNickname",),
    "visibility": ("visibility",),
    "created_date_time": ("createdDateTime", "renewedDateTime"),
}


class Change(NamedTuple):
    """One entry of a tenant's change log (what delta queries replay).

    kind "user" / "group": `op` is created (restores too), updated (`props`: the Graph
    properties that changed) or removed (`reason`: "changed" = soft deleted and restorable,
    "deleted" = gone for good). kind "member": `object_id` is the group, `op` is added or
    removed, `member_id` / `member_type` ("#microsoft.graph.user"...) the member.
    kind "assignment": `object_id` is the principal, `op` added or removed, `member_id` the
    assignment's id (no delta function the emulator serves reads these).
    """

    kind: ChangeKind
    object_id: str
    op: str
    props: frozenset[str] = frozenset()
    reason: str | None = None
    member_id: str | None = None
    member_type: str | None = None


@dataclass
class EmuUser:
    id: str
    user_principal_name: str
    mail: str | None
    display_name: str
    given_name: str | None
    surname: str | None
    account_enabled: bool = True
    user_type: UserType = "Member"
    job_title: str | None = None
    created_date_time: str | None = None
    # Sign-in (emulated login pages only; Graph never shows these). None: cannot sign in.
    password: str | None = None
    directory_roles: list[str] = field(default_factory=list)

    @property
    def is_admin(self) -> bool:
        """May grant admin consent for the whole tenant."""
        return bool(CONSENT_ADMIN_ROLES.intersection(self.directory_roles))


@dataclass
class EmuGroup:
    id: str
    display_name: str
    description: str | None = None
    mail: str | None = None
    mail_enabled: bool = False
    security_enabled: bool = True
    group_types: list[str] = field(default_factory=list)
    member_ids: list[str] = field(default_factory=list)
    mail_nickname: str | None = None
    visibility: str | None = None
    created_date_time: str | None = None

    @property
    def is_unified(self) -> bool:
        """A Microsoft 365 group: Graph refuses some queries on them (no nested groups)."""
        return "Unified" in self.group_types


@dataclass
class EmuOther:
    """A member that is neither a user nor a group: a device, service principal or contact."""

    id: str
    odata_type: str
    display_name: str


@dataclass
class EmuAssignment:
    """One row of `appRoleAssignedTo` on the Authentication app's service principal."""

    id: str
    principal_id: str
    principal_type: PrincipalType
    principal_display_name: str
    app_role_id: str = DEFAULT_APP_ROLE_ID
    created: str = "2024-01-01T00:00:00Z"


@dataclass
class EmuApp:
    """An app registration: client credentials, sign-in (authorization code) and consent."""

    client_id: str
    secret: str
    secret_expired: bool = False
    display_name: str = "entra-sync Directory Sync"
    # Tenants where the app has a service principal (admin consent); None: every tenant.
    # Admin consent adds the tenant; client credentials fail (AADSTS700016) elsewhere.
    tenant_ids: set[str] | None = None
    # Application permissions granted; None: all of them.
    permissions: frozenset[str] | None = None
    # Web redirect URIs; empty: any loopback http(s) URL (http://localhost:PORT/...) is accepted.
    redirect_uris: list[str] = field(default_factory=list)
    # Tenants where a user consented to the delegated sign-in scopes (not app permissions).
    delegated_tenant_ids: set[str] = field(default_factory=set)
    # Certificates uploaded to the registration (public parts): client assertions signed with
    # their keys authenticate the app instead of the secret.
    certificates: list[AppCertificate] = field(default_factory=list)

    def consented_in(self, tenant_id: str) -> bool:
        """Admin consent (a service principal with the app permissions) in this tenant."""
        return self.tenant_ids is None or tenant_id.lower() in self.tenant_ids

    def add_certificate(self, certificate: str | bytes) -> AppCertificate:
        """Upload a certificate (PEM or DER; a private key beside it is ignored), once."""
        uploaded = AppCertificate.parse(certificate)
        if uploaded not in self.certificates:
            self.certificates.append(uploaded)
        return uploaded

    def remove_certificate(self, thumbprint: str) -> bool:
        """Remove the certificate with this SHA-1 or SHA-256 thumbprint (hex, any case)."""
        wanted = thumbprint.upper()
        kept = [
            c for c in self.certificates if wanted not in (c.sha1_thumbprint, c.sha256_thumbprint)
        ]
        removed = len(kept) != len(self.certificates)
        self.certificates[:] = kept
        return removed


_UNSET: Any = object()


@dataclass
class EmuTenant:
    tenant_id: str
    display_name: str
    default_domain: str
    users: dict[str, EmuUser] = field(default_factory=dict)
    groups: dict[str, EmuGroup] = field(default_factory=dict)
    others: dict[str, EmuOther] = field(default_factory=dict)
    auth_app_id: str | None = None
    auth_sp_id: str | None = None
    assignments: list[EmuAssignment] = field(default_factory=list)
    auth_app_display_name: str = "entra-sync Authentication"
    auth_app_role_assignment_required: bool = True
    extra_domains: list[str] = field(default_factory=list)
    created_date_time: str = "2019-01-01T00:00:00Z"
    # Soft-deleted ("deleted items"): restorable, invisible to Graph's normal reads.
    deleted_users: dict[str, EmuUser] = field(default_factory=dict)
    deleted_groups: dict[str, EmuGroup] = field(default_factory=dict)
    # Bumped by every mutation method; caches are keyed on it.
    version: int = field(default=0, compare=False)
    # The change log (see the module docstring); `log_id` names this log, so a delta token
    # from another tenant object with the same id (a replaced tenant) is recognised.
    changes: list[Change] = field(default_factory=list, repr=False, compare=False)
    log_id: str = field(
        default_factory=lambda: uuid.uuid4().hex, init=False, repr=False, compare=False
    )
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    # --- reads --------------------------------------------------------------------------------

    def touch(self) -> None:
        """Invalidate cached memberships after editing `member_ids` or the dicts directly."""
        self.version += 1

    def verified_domains(self) -> list[str]:
        return [self.default_domain, *self.extra_domains]

    def kind_of(self, object_id: str) -> MemberKind | None:
        if object_id in self.users:
            return "user"
        if object_id in self.groups:
            return "group"
        if object_id in self.others:
            return "other"
        return None

    def user_by_key(self, key: str) -> EmuUser | None:
        """A user by object id or userPrincipalName (case-insensitive), as `/users/{key}`."""
        folded = key.lower()
        user = self.users.get(key) or self.users.get(folded)
        if user is not None:
            return user
        index = self._cache.get("upn")
        if index is None or index[0] != self.version:
            index = (
                self.version,
                {u.user_principal_name.lower(): u.id for u in self.users.values()},
            )
            self._cache["upn"] = index
        found = self.users.get(index[1].get(folded, ""))
        if found is not None and found.user_principal_name.lower() == folded:
            return found
        # Someone renamed a user without the methods: rebuild once.
        for candidate in self.users.values():
            if candidate.user_principal_name.lower() == folded:
                self.touch()
                return candidate
        return None

    def transitive_member_ids(self, group_id: str) -> list[str]:
        """Every member, nested groups expanded (and listed themselves), each once, as Graph."""
        return list(self._closure(group_id))

    def members_of(
        self, group_id: str, *, transitive: bool, kind: MemberKind | None = None
    ) -> tuple[str, ...]:
        """Member ids of a group, direct or transitive, optionally of one kind; cached."""
        if transitive:
            base = self._closure(group_id)
            if kind is None:
                return base
            key = ("kind", group_id, kind)
            entry = self._cache.get(key)
            if entry is not None and entry[0] is base:
                cached: tuple[str, ...] = entry[1]
                return cached
            filtered = tuple(m for m in base if self.kind_of(m) == kind)
            self._cache[key] = (base, filtered)
            return filtered
        group = self.groups[group_id]
        if kind is None:
            direct_key = ("direct", group_id)
            found = self._cache.get(direct_key)
            if (
                found is not None
                and found[0] == self.version
                and found[1] is group
                and found[2] == len(group.member_ids)
            ):
                direct: tuple[str, ...] = found[3]
                return direct
            users, groups, others = self.users, self.groups, self.others
            direct = tuple(m for m in group.member_ids if m in users or m in groups or m in others)
            self._cache[direct_key] = (self.version, group, len(group.member_ids), direct)
            return direct
        return tuple(m for m in group.member_ids if self.kind_of(m) == kind)

    def groups_containing(self, member_id: str, *, transitive: bool) -> tuple[str, ...]:
        """The groups a user or group is a member of (`memberOf` / `transitiveMemberOf`).

        Answered from a reverse index (member -> groups) built once per tenant version, in
        `groups` order, so a `/users/{id}/memberOf` does not scan every group of the tenant.
        """
        parents, position = self._parents_index()
        found: set[str] = set()
        frontier = list(parents.get(member_id, ()))
        while frontier:
            group_id = frontier.pop()
            if group_id in found or group_id == member_id:
                continue
            found.add(group_id)
            if transitive:
                frontier.extend(parents.get(group_id, ()))
        return tuple(sorted(found, key=position.__getitem__))

    def _parents_index(self) -> tuple[dict[str, list[str]], dict[str, int]]:
        # Keyed on the version and on the member counts, as `_closure` is: tests and
        # scenarios may edit `member_ids` in place.
        fingerprint = (
            self.version,
            len(self.groups),
            sum(len(g.member_ids) for g in self.groups.values()),
        )
        entry = self._cache.get("parents")
        if entry is None or entry[0] != fingerprint:
            parents: dict[str, list[str]] = {}
            for group_id, group in self.groups.items():
                for member_id in dict.fromkeys(group.member_ids):
                    parents.setdefault(member_id, []).append(group_id)
            position = {group_id: i for i, group_id in enumerate(self.groups)}
            entry = (fingerprint, parents, position)
            self._cache["parents"] = entry
        return entry[1], entry[2]

    def odata_type_of(self, object_id: str) -> str | None:
        """`#microsoft.graph.user`, `...group`, a device's type...: present objects only."""
        if object_id in self.users:
            return ODATA_USER
        if object_id in self.groups:
            return ODATA_GROUP
        other = self.others.get(object_id)
        return other.odata_type if other is not None else None

    def is_deleted(self, object_id: str) -> bool:
        """Soft deleted: in deleted items, restorable."""
        return object_id in self.deleted_users or object_id in self.deleted_groups

    def ids_with_deleted(self, kind: Literal["user", "group"]) -> tuple[str, ...]:
        """Present then soft-deleted ids, in a stable order (a delta round's initial listing)."""
        key = ("ids-with-deleted", kind)
        entry = self._cache.get(key)
        if entry is None or entry[0] != self.version:
            if kind == "user":
                ids = (*self.users, *self.deleted_users)
            else:
                ids = (*self.groups, *self.deleted_groups)
            entry = (self.version, ids)
            self._cache[key] = entry
        cached: tuple[str, ...] = entry[1]
        return cached

    @property
    def change_seq(self) -> int:
        """How many changes were logged: a delta token remembers this number."""
        return len(self.changes)

    def _closure(self, group_id: str) -> tuple[str, ...]:
        key = ("closure", group_id)
        entry = self._cache.get(key)
        if entry is not None:
            version, visited = entry[0], entry[1]
            cached: tuple[str, ...] = entry[2]
            if version == self.version and all(
                len(g.member_ids) == n and self.groups.get(g.id) is g for g, n in visited
            ):
                return cached
        root = self.groups[group_id]
        seen = {group_id}  # a group is not its own member, even through a cycle
        out: list[str] = []
        visited_groups = [(root, len(root.member_ids))]
        stack = [iter(list(root.member_ids))]
        users, groups, others = self.users, self.groups, self.others
        while stack:
            for member_id in stack[-1]:
                if member_id in seen:
                    continue
                seen.add(member_id)
                nested = groups.get(member_id)
                if nested is not None:
                    out.append(member_id)
                    visited_groups.append((nested, len(nested.member_ids)))
                    stack.append(iter(list(nested.member_ids)))
                    break
                if member_id in users or member_id in others:
                    out.append(member_id)
            else:
                stack.pop()
        ids = tuple(out)
        self._cache[key] = (self.version, visited_groups, ids)
        return ids

    # --- changes ------------------------------------------------------------------------------

    def add_user(self, user: EmuUser) -> EmuUser:
        self.users[user.id] = user
        self._log(Change("user", user.id, "created"))
        self.touch()
        return user

    def update_user(self, user_id: str, **values: Any) -> EmuUser:
        """Set attributes (`display_name=...`, `account_enabled=False`...) and log the Graph
        properties that really changed; assignments keep the principal's display name."""
        user = self.users[user_id]
        self._update("user", user, values, USER_ATTRIBUTE_PROPERTIES)
        return user

    def remove_user(self, user_id: str) -> None:
        """Delete a user permanently (present or soft deleted): from the directory, every
        group and the app's assignments."""
        if self.users.pop(user_id, None) is None:
            self.deleted_users.pop(user_id)
        self._log(Change("user", user_id, "removed", reason="deleted"))
        self._forget_member(user_id, ODATA_USER)

    def soft_delete_user(self, user_id: str) -> EmuUser:
        """Delete a user into deleted items: restorable, memberships kept but hidden."""
        user = self.users.pop(user_id)
        self.deleted_users[user_id] = user
        self._log(Change("user", user_id, "removed", reason="changed"))
        self.touch()
        return user

    def restore_user(self, user_id: str) -> EmuUser:
        """Bring a soft-deleted user back, with its memberships and assignments."""
        user = self.deleted_users.pop(user_id)
        self.users[user_id] = user
        self._log(Change("user", user_id, "created"))  # "show up as newly created"
        self.touch()
        return user

    def rename_user(
        self,
        user_id: str,
        *,
        display_name: str | None = None,
        user_principal_name: str | None = None,
        mail: str | None = _UNSET,
        given_name: str | None = _UNSET,
        surname: str | None = _UNSET,
    ) -> EmuUser:
        values: dict[str, Any] = {}
        if display_name is not None:
            values["display_name"] = display_name
        if user_principal_name is not None:
            values["user_principal_name"] = user_principal_name
        for name, value in (("mail", mail), ("given_name", given_name), ("surname", surname)):
            if value is not _UNSET:
                values[name] = value
        return self.update_user(user_id, **values)

    def add_group(self, group: EmuGroup) -> EmuGroup:
        self.groups[group.id] = group
        self._log(Change("group", group.id, "created"))
        self.touch()
        return group

    def update_group(self, group_id: str, **values: Any) -> EmuGroup:
        """Set group attributes (not members: use add_member / remove_member) and log them."""
        group = self.groups[group_id]
        self._update("group", group, values, GROUP_ATTRIBUTE_PROPERTIES)
        return group

    def _update(
        self,
        kind: Literal["user", "group"],
        obj: EmuUser | EmuGroup,
        values: dict[str, Any],
        properties: Mapping[str, Iterable[str]],
    ) -> None:
        """Set attributes and log the Graph properties that really changed; assignments keep
        the principal's display name."""
        props: set[str] = set()
        for attribute, value in values.items():
            if attribute not in properties or attribute == "id":
                raise ValueError(f"Cannot update the {kind} attribute {attribute!r}.")
            if getattr(obj, attribute) != value:
                setattr(obj, attribute, value)
                props.update(properties[attribute])
        if "display_name" in values:
            for assignment in self.assignments:
                if assignment.principal_id == obj.id:
                    assignment.principal_display_name = obj.display_name
        if props:
            self._log(Change(kind, obj.id, "updated", frozenset(props)))
        self.touch()

    def remove_group(self, group_id: str) -> None:
        """Delete a group permanently (present or soft deleted)."""
        if self.groups.pop(group_id, None) is None:
            self.deleted_groups.pop(group_id)
        self._log(Change("group", group_id, "removed", reason="deleted"))
        self._forget_member(group_id, ODATA_GROUP)

    def delete_group(self, group_id: str) -> bool:
        """Delete a group as Entra does: a Microsoft 365 group goes to deleted items (True),
        any other group is deleted permanently (False)."""
        group = self.groups[group_id]
        if not group.is_unified:
            self.remove_group(group_id)
            return False
        self.soft_delete_group(group_id)
        return True

    def soft_delete_group(self, group_id: str) -> EmuGroup:
        """A Microsoft 365 group into deleted items; ValueError for other groups."""
        group = self.groups[group_id]
        if not group.is_unified:
            raise ValueError("Deleted security groups are deleted permanently.")
        del self.groups[group_id]
        self.deleted_groups[group_id] = group
        self._log(Change("group", group_id, "removed", reason="changed"))
        self.touch()
        return group

    def restore_group(self, group_id: str) -> EmuGroup:
        group = self.deleted_groups.pop(group_id)
        self.groups[group_id] = group
        self._log(Change("group", group_id, "created"))
        self.touch()
        return group

    def add_other(self, other: EmuOther) -> EmuOther:
        self.others[other.id] = other
        self.touch()
        return other

    def add_member(self, group_id: str, member_id: str) -> None:
        group = self.groups[group_id]
        if member_id not in group.member_ids:
            group.member_ids.append(member_id)
            self._log(
                Change(
                    "member",
                    group_id,
                    "added",
                    member_id=member_id,
                    member_type=self.odata_type_of(member_id),
                )
            )
        self.touch()

    def remove_member(self, group_id: str, member_id: str) -> None:
        group = self.groups[group_id]
        if member_id in group.member_ids:
            group.member_ids.remove(member_id)
            self._log(
                Change(
                    "member",
                    group_id,
                    "removed",
                    member_id=member_id,
                    member_type=self.odata_type_of(member_id),
                )
            )
        self.touch()

    def assign_group(
        self, group_id: str, *, app_role_id: str = DEFAULT_APP_ROLE_ID
    ) -> EmuAssignment:
        """Assign a group to the Authentication app (Enterprise applications > Users and groups)."""
        group = self.groups[group_id]
        return self._assign(group_id, "Group", group.display_name, app_role_id)

    def assign_user(self, user_id: str, *, app_role_id: str = DEFAULT_APP_ROLE_ID) -> EmuAssignment:
        user = self.users[user_id]
        return self._assign(user_id, "User", user.display_name, app_role_id)

    def assign_service_principal(self, object_id: str) -> EmuAssignment:
        other = self.others[object_id]
        return self._assign(object_id, "ServicePrincipal", other.display_name, DEFAULT_APP_ROLE_ID)

    def unassign(self, principal_id: str) -> int:
        """Remove every assignment of a principal; returns how many there were."""
        removed = self._drop_assignments(principal_id)
        self.touch()
        return removed

    def _assign(
        self, principal_id: str, principal_type: PrincipalType, name: str, app_role_id: str
    ) -> EmuAssignment:
        # Graph's assignment ids are the principal id's bytes plus 16 more, base64url-encoded.
        raw = uuid.UUID(principal_id).bytes_le + uuid.uuid4().bytes
        assignment = EmuAssignment(
            id=base64.urlsafe_b64encode(raw).decode().rstrip("="),
            principal_id=principal_id,
            principal_type=principal_type,
            principal_display_name=name,
            app_role_id=app_role_id,
            created=_utc_now(),
        )
        self.assignments.append(assignment)
        self._log(Change("assignment", principal_id, "added", member_id=assignment.id))
        self.touch()
        return assignment

    def _drop_assignments(self, principal_id: str) -> int:
        kept = []
        for assignment in self.assignments:
            if assignment.principal_id == principal_id:
                self._log(Change("assignment", principal_id, "removed", member_id=assignment.id))
            else:
                kept.append(assignment)
        removed = len(self.assignments) - len(kept)
        self.assignments = kept
        return removed

    def _forget_member(self, object_id: str, odata_type: str) -> None:
        for group in (*self.groups.values(), *self.deleted_groups.values()):
            if object_id in group.member_ids:
                group.member_ids = [m for m in group.member_ids if m != object_id]
                # "Only users that have been permanently deleted are removed from groups"
                # (Get incremental changes for groups): the removal shows in members@delta.
                self._log(
                    Change(
                        "member",
                        group.id,
                        "removed",
                        member_id=object_id,
                        member_type=odata_type,
                    )
                )
        self._drop_assignments(object_id)
        self.touch()

    def _log(self, change: Change) -> None:
        self.changes.append(change)

    # --- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "display_name": self.display_name,
            "default_domain": self.default_domain,
            "extra_domains": list(self.extra_domains),
            "created_date_time": self.created_date_time,
            "auth_app_id": self.auth_app_id,
            "auth_sp_id": self.auth_sp_id,
            "auth_app_display_name": self.auth_app_display_name,
            "auth_app_role_assignment_required": self.auth_app_role_assignment_required,
            "users": [asdict(u) for u in self.users.values()],
            "groups": [asdict(g) for g in self.groups.values()],
            "others": [asdict(o) for o in self.others.values()],
            "assignments": [asdict(a) for a in self.assignments],
            "deleted_users": [asdict(u) for u in self.deleted_users.values()],
            "deleted_groups": [asdict(g) for g in self.deleted_groups.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmuTenant:
        return cls(
            tenant_id=data["tenant_id"],
            display_name=data["display_name"],
            default_domain=data["default_domain"],
            extra_domains=list(data.get("extra_domains", [])),
            created_date_time=data.get("created_date_time", "2019-01-01T00:00:00Z"),
            auth_app_id=data.get("auth_app_id"),
            auth_sp_id=data.get("auth_sp_id"),
            auth_app_display_name=data.get("auth_app_display_name", "entra-sync Authentication"),
            auth_app_role_assignment_required=data.get("auth_app_role_assignment_required", True),
            users={u["id"]: EmuUser(**u) for u in data.get("users", [])},
            groups={g["id"]: EmuGroup(**g) for g in data.get("groups", [])},
            others={o["id"]: EmuOther(**o) for o in data.get("others", [])},
            assignments=[EmuAssignment(**a) for a in data.get("assignments", [])],
            deleted_users={u["id"]: EmuUser(**u) for u in data.get("deleted_users", [])},
            deleted_groups={g["id"]: EmuGroup(**g) for g in data.get("deleted_groups", [])},
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes | dict[str, Any]) -> EmuTenant:
        return cls.from_dict(text if isinstance(text, dict) else json.loads(text))


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- generation -------------------------------------------------------------------------------

FIRST_NAMES = (
    "Adele",
    "Alex",
    "Allan",
    "Amara",
    "Ben",
    "Bianca",
    "Brian",
    "Cameron",
    "Chloe",
    "Christie",
    "Daniel",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Fatima",
    "Grace",
    "Grady",
    "Hannah",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Jamal",
    "Johanna",
    "Joni",
    "Kenji",
    "Lee",
    "Lidia",
    "Lucas",
    "Lynne",
    "Maria",
    "Megan",
    "Miriam",
    "Mohammed",
    "Nestor",
    "Olivia",
    "Omar",
    "Patti",
    "Pradeep",
    "Priya",
    "Raul",
    "Rosa",
    "Sam",
    "Sofia",
    "Tanya",
    "Tom",
    "Victor",
    "Wanda",
    "Yuki",
    "Zara",
)
LAST_NAMES = (
    "Adams",
    "Archie",
    "Berger",
    "Bowen",
    "Brown",
    "Cline",
    "Costa",
    "Deyoung",
    "Diaz",
    "Evans",
    "Garcia",
    "Gibbs",
    "Gonzales",
    "Hall",
    "Holloway",
    "Ito",
    "Johnson",
    "Kemp",
    "Khan",
    "Kim",
    "Larsen",
    "Lee",
    "Martin",
    "Mittelstaedt",
    "Nguyen",
    "Novak",
    "Okafor",
    "Patel",
    "Pires",
    "Reyes",
    "Rossi",
    "Schmidt",
    "Sherman",
    "Siciliani",
    "Silva",
    "Smith",
    "Tanaka",
    "Taylor",
    "Vance",
    "White",
    "Wilber",
    "Wilkins",
    "Wong",
    "Young",
)
# (given name, surname, display name, ascii given, ascii surname): names that test Unicode.
UNICODE_PEOPLE = (
    ("Zoë", "Ångström", "Zoë Ångström", "zoe", "angstrom"),
    ("Åsa", "Öberg", "Åsa Öberg", "asa", "oberg"),
    ("雷", "李", "李雷", "lei", "li"),
    ("美咲", "佐藤", "佐藤 美咲", "misaki", "sato"),
    ("José", "Muñoz", "José Muñoz", "jose", "munoz"),
    ("Søren", "Kierkegård", "Søren Kierkegård", "soren", "kierkegard"),
    ("Łukasz", "Wójcik", "Łukasz Wójcik", "lukasz", "wojcik"),
    ("François", "Dubois-Lefèvre", "François Dubois-Lefèvre", "francois", "dubois-lefevre"),
    ("Ελένη", "Παπαδοπούλου", "Ελένη Παπαδοπούλου", "eleni", "papadopoulou"),
    ("Иван", "Петров", "Иван Петров", "ivan", "petrov"),
    ("Thị Hoa", "Nguyễn", "Nguyễn Thị Hoa", "hoa", "nguyen"),
    ("Jürgen", "Weiß", "Jürgen Weiß", "juergen", "weiss"),
    ("Siobhán", "Ó Briain", "Siobhán Ó Briain", "siobhan", "obriain"),
    ("Ayşe", "Yılmaz", "Ayşe Yılmaz", "ayse", "yilmaz"),  # noqa: RUF001
)
GUEST_DOMAINS = ("example.com", "fabrikam.com", "outlook.com", "gmail.com", "partner.example.org")
JOB_TITLES = (
    "Accountant",
    "Analyst",
    "Designer",
    "Developer",
    "Director",
    "Engineer",
    "Marketing Manager",
    "Product Manager",
    "Sales Representative",
    "Support Specialist",
    None,
)
DEPARTMENTS = (
    "Finance",
    "Sales",
    "Marketing",
    "Engineering",
    "Legal",
    "HR",
    "Support",
    "Operations",
    "Research",
    "IT",
    "Procurement",
    "Security",
    "Design",
    "Product",
    "Data",
    "Facilities",
    "Training",
    "Quality",
    "Logistics",
    "Communications",
)
GROUP_KINDS = (
    "Team",
    "Managers",
    "Leads",
    "Project",
    "Committee",
    "Guild",
    "Working Group",
    "Readers",
    "Admins",
)
SITES = (
    "Seattle",
    "London",
    "Paris",
    "Berlin",
    "Tokyo",
    "Sydney",
    "São Paulo",
    "Zürich",
    "Kraków",
    "北京",
    "Montréal",
    "Reykjavík",
)
EPOCH = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
SPAN_SECONDS = 5 * 365 * 24 * 3600


def _ascii(text: str) -> str:
    """A UPN-safe, lower-case ASCII form of a name part."""
    folded = unicodedata.normalize("NFKD", text.replace("ø", "o").replace("ł", "l"))
    cleaned = "".join(c for c in folded.lower() if c.isascii() and (c.isalnum() or c in ".-"))
    return cleaned or "user"


def generate_tenant(
    *,
    users: int,
    groups: int,
    seed: int = 1,
    tenant_id: str | None = None,
    display_name: str = "Contoso",
    domain: str = "contoso.onmicrosoft.com",
    nesting_depth: int = 2,
    guest_ratio: float = 0.05,
    disabled_ratio: float = 0.03,
    no_mail_ratio: float = 0.1,
    unicode_ratio: float = 0.05,
    other_members_per_group: float = 0.2,
    assigned_groups: int | None = None,
    assigned_users: int = 2,
    assigned_service_principals: int = 1,
    auth_app_id: str = DEFAULT_AUTH_APP_ID,
    members_per_group: int | None = None,
    admin_password: str | None = DEFAULT_ADMIN_PASSWORD,
) -> EmuTenant:
    """A realistic, deterministic tenant: same arguments, identical tenant (ids included).

    Shape: an "All staff" group holding every generated user; with 10+ groups, three large site
    groups splitting the users; the other groups have log-normally distributed sizes around
    `members_per_group` (default 80 for large tenants, so typical groups hold 20-200), and
    every generated user is in at least one of them. Some security groups are nested in chains
    `nesting_depth` deep. Microsoft 365 ("Unified") groups never contain groups.

    Every tenant also has one sign-in account, `admin@{domain}` ("{display_name} Admin", Global
    Administrator, password `admin_password`; None: it cannot sign in). It is in no group and
    not assigned to the app, so syncs never see it; it is added last, after every other random
    draw, so the rest of the tenant is the same as without it.
    """
    rng = random.Random(seed)

    def guid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def timestamp() -> str:
        moment = EPOCH + dt.timedelta(seconds=rng.randrange(SPAN_SECONDS))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    tenant = EmuTenant(
        tenant_id=tenant_id or guid(),
        display_name=display_name,
        default_domain=domain,
        auth_app_id=auth_app_id,
        auth_sp_id=guid(),
        created_date_time=timestamp(),
    )

    # Users.
    used_locals: dict[str, int] = {}
    user_ids: list[str] = []
    for _ in range(users):
        uid = guid()
        if rng.random() < unicode_ratio:
            given, surname, display, ascii_given, ascii_surname = rng.choice(UNICODE_PEOPLE)
        else:
            given, surname = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            display, ascii_given, ascii_surname = f"{given} {surname}", given, surname
        base = f"{_ascii(ascii_given)}.{_ascii(ascii_surname)}"
        count = used_locals.get(base, 0)
        used_locals[base] = count + 1
        local = base if count == 0 else f"{base}{count + 1}"
        if rng.random() < guest_ratio:
            ext = rng.choice(GUEST_DOMAINS)
            upn = f"{local}_{ext}#EXT#@{domain}"
            mail: str | None = f"{local}@{ext}"
            user_type: UserType = "Guest"
        else:
            upn = f"{local}@{domain}"
            mail = None if rng.random() < no_mail_ratio else upn
            user_type = "Member"
        tenant.users[uid] = EmuUser(
            id=uid,
            user_principal_name=upn,
            mail=mail,
            display_name=display,
            given_name=given,
            surname=surname,
            account_enabled=rng.random() >= disabled_ratio,
            user_type=user_type,
            job_title=rng.choice(JOB_TITLES),
            created_date_time=timestamp(),
        )
        user_ids.append(uid)

    # Other directory objects that can be group members.
    pool: list[EmuOther] = []
    if groups:
        for i in range(max(2, groups // 10)):
            pool.append(EmuOther(guid(), ODATA_DEVICE, f"LAPTOP-{i + 1:04d}"))
        for i in range(max(1, groups // 50)):
            pool.append(EmuOther(guid(), ODATA_SERVICE_PRINCIPAL, f"Automation App {i + 1}"))
        for i in range(max(1, groups // 50)):
            contact = rng.choice(FIRST_NAMES) + " " + rng.choice(LAST_NAMES)
            pool.append(EmuOther(guid(), ODATA_ORG_CONTACT, f"{contact} (contact {i + 1})"))
    for other in pool:
        tenant.others[other.id] = other

    # Groups.
    used_names: set[str] = set()

    def new_group(name: str, kind: str) -> EmuGroup:
        if name in used_names:
            name = f"{name} {len(used_names) + 1}"
        used_names.add(name)
        nickname = _ascii(name.replace(" ", "-"))[:64] or "group"
        group = EmuGroup(
            id=guid(),
            display_name=name,
            description=None if rng.random() < 0.3 else f"{name} ({kind.lower()} group)",
            mail_nickname=nickname,
            created_date_time=timestamp(),
        )
        if kind == "Unified":
            group.group_types = ["Unified"]
            group.mail_enabled, group.security_enabled = True, False
            group.mail = f"{nickname}@{domain}"
            group.visibility = rng.choice(("Private", "Public"))
        elif kind == "Mail-enabled security":
            group.mail_enabled, group.security_enabled = True, True
            group.mail = f"{nickname}@{domain}"
        elif kind == "Distribution":
            group.mail_enabled, group.security_enabled = True, False
            group.mail = f"{nickname}@{domain}"
        tenant.groups[group.id] = group
        return group

    special: list[EmuGroup] = []
    if groups >= 1:
        everyone = new_group("All staff", "Security")
        everyone.description = "Every employee and guest"
        everyone.member_ids = list(user_ids)
        special.append(everyone)
    if groups >= 10 and users:
        shuffled = list(user_ids)
        rng.shuffle(shuffled)
        for i, site in enumerate(SITES[:3]):
            site_group = new_group(f"Site {site}", "Security")
            site_group.member_ids = shuffled[i::3]
            special.append(site_group)

    regular: list[EmuGroup] = []
    average = members_per_group or max(2, min(80, users // 4))
    for _ in range(groups - len(special)):
        roll = rng.random()
        kind = (
            "Unified"
            if roll < 0.2
            else "Mail-enabled security"
            if roll < 0.27
            else "Distribution"
            if roll < 0.3
            else "Security"
        )
        site = rng.choice(SITES) if rng.random() < unicode_ratio * 4 else ""
        name = f"{rng.choice(DEPARTMENTS)} {rng.choice(GROUP_KINDS)} {site}".strip()
        group = new_group(name, kind)
        if users:
            size = int(rng.lognormvariate(math.log(average), 0.6))
            group.member_ids = rng.sample(user_ids, max(1, min(users, size)))
        regular.append(group)

    if regular and users:
        covered = set().union(*(g.member_ids for g in regular))
        for uid in user_ids:
            if uid not in covered:
                rng.choice(regular).member_ids.append(uid)

    # Nesting: chains parent -> child -> grandchild ... among non-Unified regular groups.
    nestable = [g for g in regular if not g.is_unified]
    rng.shuffle(nestable)
    if nesting_depth > 0:
        chain_length = nesting_depth + 1
        chains = max(1, len(nestable) // 15) if len(nestable) >= chain_length else 0
        for c in range(chains):
            chain = nestable[c * chain_length : (c + 1) * chain_length]
            for parent, child in itertools.pairwise(chain):
                parent.member_ids.append(child.id)

    if pool:
        whole, fraction = int(other_members_per_group), other_members_per_group % 1
        for group in regular:
            count = whole + (1 if rng.random() < fraction else 0)
            for other in rng.sample(pool, min(count, len(pool))):
                group.member_ids.append(other.id)

    # Assignments to the Authentication app.
    assignable = [g.id for g in special[1:] + regular] or [g.id for g in special]
    wanted = len(assignable) // 3 if assigned_groups is None else assigned_groups
    created = timestamp()
    for gid in rng.sample(assignable, min(wanted, len(assignable))):
        tenant.assignments.append(_assignment(rng, gid, "Group", tenant.groups[gid].display_name))
    for uid in rng.sample(user_ids, min(assigned_users, len(user_ids))):
        tenant.assignments.append(_assignment(rng, uid, "User", tenant.users[uid].display_name))
    principals = [o for o in pool if o.odata_type == ODATA_SERVICE_PRINCIPAL]
    for other in principals[:assigned_service_principals]:
        tenant.assignments.append(
            _assignment(rng, other.id, "ServicePrincipal", other.display_name)
        )
    for assignment in tenant.assignments:
        assignment.created = created

    admin_id = guid()
    tenant.users[admin_id] = EmuUser(
        id=admin_id,
        user_principal_name=f"admin@{domain}",
        mail=f"admin@{domain}",
        display_name=f"{display_name} Admin",
        given_name=display_name,
        surname="Admin",
        job_title="IT Administrator",
        created_date_time=tenant.created_date_time,
        password=admin_password,
        directory_roles=[GLOBAL_ADMINISTRATOR],
    )
    return tenant


def _assignment(
    rng: random.Random, principal_id: str, principal_type: PrincipalType, name: str
) -> EmuAssignment:
    raw = uuid.UUID(principal_id).bytes_le + rng.getrandbits(128).to_bytes(16, "little")
    return EmuAssignment(
        id=base64.urlsafe_b64encode(raw).decode().rstrip("="),
        principal_id=principal_id,
        principal_type=principal_type,
        principal_display_name=name,
    )
