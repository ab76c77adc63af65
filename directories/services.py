"""Services for directories: add, look up, build a Graph client, verify (the operator's probe)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from .graph import (
    GraphClient,
    GraphNotAssigned,
    GraphSettings,
    GraphUnauthorized,
    GraphWrongTenant,
    is_guid,
)
from .models import Directory, SyncMode
from .schedules import directory_schedule_sync


class DirectoryInputError(ValueError):
    """Bad input from a person: an unknown name, a malformed tenant id, a duplicate."""


def graph_settings() -> GraphSettings:
    """Graph settings from Django settings; refuses to start without credentials."""
    if not settings.ENTRA_CLIENT_ID or not settings.ENTRA_CLIENT_SECRET:
        raise GraphUnauthorized(
            "ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET are not set.",
            remediation="Set them in the environment (or .env) to the Directory Sync "
            "application's Application (client) ID and a client secret's value, then restart.",
        )
    return GraphSettings(
        client_id=settings.ENTRA_CLIENT_ID,
        client_secret=settings.ENTRA_CLIENT_SECRET,
        login_url=settings.ENTRA_LOGIN_URL,
        graph_url=settings.GRAPH_URL,
        timeout=settings.GRAPH_TIMEOUT_SECONDS,
        max_retries=settings.GRAPH_MAX_RETRIES,
        verify=os.environ.get("REQUESTS_CA_BUNDLE") or True,
    )


def graph_client_for(*, tenant_id: str, low_priority: bool = False) -> GraphClient:
    return GraphClient(tenant_id=tenant_id, settings=graph_settings(), low_priority=low_priority)


def authentication_app_id() -> str:
    if not settings.ENTRA_AUTH_CLIENT_ID:
        raise GraphNotAssigned(
            "ENTRA_AUTH_CLIENT_ID is not set, so the groups assigned to the Authentication "
            "application cannot be read.",
            remediation="Set ENTRA_AUTH_CLIENT_ID to the Authentication application's "
            "Application (client) ID, or switch the directory to 'All groups'.",
        )
    return str(settings.ENTRA_AUTH_CLIENT_ID)


def directory_get(identifier: str) -> Directory:
    """A directory by its unique name or its numeric id."""
    directory = Directory.objects.filter(name=identifier).first()
    if directory is None and identifier.isdigit():
        directory = Directory.objects.filter(pk=int(identifier)).first()
    if directory is None:
        known = ", ".join(Directory.objects.values_list("name", flat=True)[:10]) or "none yet"
        raise DirectoryInputError(f"No directory named {identifier!r} (known: {known}).")
    return directory


def directory_add(*, name: str, mode: str, tenant_id: str = "") -> Directory:
    """Record a directory; like one added in the admin, it syncs only once verified."""
    name = name.strip()
    if not name:
        raise DirectoryInputError("A directory needs a name.")
    if mode not in SyncMode.values:
        raise DirectoryInputError(f"Unknown mode {mode!r}: use 'assigned' or 'all'.")
    if tenant_id and not is_guid(tenant_id):
        raise DirectoryInputError(f"{tenant_id!r} is not a tenant id (a GUID).")
    try:
        return Directory.objects.create(name=name, sync_mode=mode, tenant_id=tenant_id.lower())
    except IntegrityError as exc:
        raise DirectoryInputError(f"A directory named {name!r} already exists.") from exc


@dataclass(frozen=True)
class TenantProbe:
    """What the client-credentials probe found: shown to the admin, saved when confirmed."""

    tenant_id: str
    tenant_name: str
    tenant_domain: str
    assigned_groups: int | None  # None in "all groups" mode


def tenant_probe(
    *, directory: Directory, tenant_id: str, client: GraphClient | None = None
) -> TenantProbe:
    """Check, with the app's own credentials, that this tenant can be synced in this mode.

    The organization must be the tenant asked for, and in assigned mode the Authentication
    app's service principal and its assignments must be readable. Saves nothing.
    """
    tenant_id = tenant_id.lower()
    client = client or graph_client_for(tenant_id=tenant_id)
    organization = client.organization()
    if organization.id.lower() != tenant_id:
        raise GraphWrongTenant(
            f"Tenant {tenant_id} answered as {organization.display_name} "
            f"({organization.id}), a different tenant."
        )
    assigned_groups = None
    if directory.sync_mode == SyncMode.ASSIGNED:
        app_id = authentication_app_id()
        client.service_principal(app_id)
        assignments = client.app_role_assignments(app_id)
        assigned_groups = sum(1 for a in assignments if a.principal_type == "Group")
    return TenantProbe(
        tenant_id=organization.id.lower(),
        tenant_name=organization.display_name,
        tenant_domain=organization.default_domain or "",
        assigned_groups=assigned_groups,
    )


def directory_mark_verified(*, directory: Directory, probe: TenantProbe) -> None:
    """Store the probed tenant and put the directory on its sync schedule."""
    Directory.objects.filter(pk=directory.pk).update(
        tenant_id=probe.tenant_id,
        tenant_name=probe.tenant_name,
        tenant_domain=probe.tenant_domain,
        verified_at=timezone.now(),
    )
    directory.refresh_from_db()
    # .update() sends no post_save: schedule the now-verified directory here.
    directory_schedule_sync(directory=directory)


def directory_verify(
    *, directory: Directory, tenant_id: str = "", client: GraphClient | None = None
) -> TenantProbe:
    """The operator's Verify: probe the tenant and mark the directory verified.

    On any failure the directory is left exactly as it was.
    """
    tenant_id = tenant_id.strip().lower()
    if directory.tenant_id and tenant_id and tenant_id != directory.tenant_id.lower():
        raise GraphWrongTenant(
            f"{directory.name} is connected to tenant {directory.tenant_id}, not {tenant_id}."
        )
    tenant_id = tenant_id or directory.tenant_id
    if not tenant_id:
        raise DirectoryInputError(
            f"{directory.name} has no tenant id yet: pass --tenant-id, or use Verify Now in "
            "the admin."
        )
    if not is_guid(tenant_id):
        raise DirectoryInputError(f"{tenant_id!r} is not a tenant id (a GUID).")
    probe = tenant_probe(directory=directory, tenant_id=tenant_id, client=client)
    directory_mark_verified(directory=directory, probe=probe)
    return probe
