"""The operator's Verify: the client-credentials probe, and marking a directory verified.

Verify Now in the browser (`consent`) ends in the same probe and the same
`directory_mark_verified`, so both paths check a tenant alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from directories.graph import GraphClient, GraphWrongTenant, is_guid
from directories.models import Directory, SyncMode
from directories.sync.scope import read_scope

from .directories import DirectoryInputError
from .graph import authentication_app_id, graph_client_for
from .schedules import directory_schedule_sync


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
        client.service_principal(app_id)  # a missing Authentication app is named as such
        scope = read_scope(client, directory=directory, auth_app_id=app_id)
        assigned_groups = len(scope.group_ids or ())
    return TenantProbe(
        tenant_id=organization.id.lower(),
        tenant_name=organization.display_name,
        tenant_domain=organization.default_domain or "",
        assigned_groups=assigned_groups,
    )


def directory_mark_verified(*, directory: Directory, probe: TenantProbe) -> None:
    """Store the probed tenant and put the directory on its sync schedule.

    A directory that needed attention no longer does: the probe just read the tenant with the
    app's credentials, so its scheduled syncs resume.
    """
    Directory.objects.filter(pk=directory.pk).update(
        tenant_id=probe.tenant_id,
        tenant_name=probe.tenant_name,
        tenant_domain=probe.tenant_domain,
        verified_at=timezone.now(),
        attention_since=None,
        attention_reason="",
    )
    directory.refresh_from_db()
    directory_schedule_sync(directory=directory)


def directory_verify(
    *, directory: Directory, tenant_id: str = "", client: GraphClient | None = None
) -> TenantProbe:
    """The operator's Verify: probe the tenant and mark the directory verified.

    On any failure the directory is left exactly as it was.
    """
    tenant_id = tenant_id.strip().lower()
    if tenant_id and not is_guid(tenant_id):
        raise DirectoryInputError(f"{tenant_id!r} is not a tenant id (a GUID).")
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
