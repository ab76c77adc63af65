"""The Graph client for a tenant, configured from Django settings (the only code reading them)."""

from __future__ import annotations

from django.conf import settings

from directories.graph import (
    GraphClient,
    GraphNotAssigned,
    GraphSettings,
    GraphUnauthorized,
    load_client_certificate,
)


def graph_settings() -> GraphSettings:
    """Graph settings from Django settings; refuses to start without credentials.

    A client certificate (ENTRA_CLIENT_CERTIFICATE_PATH) is used instead of the secret when
    set. Its file is read on every call, so a renewed certificate needs no restart; a file
    that cannot be used raises GraphUnauthorized saying what to fix.
    """
    certificate_path = settings.ENTRA_CLIENT_CERTIFICATE_PATH
    if not settings.ENTRA_CLIENT_ID or not (settings.ENTRA_CLIENT_SECRET or certificate_path):
        raise GraphUnauthorized(
            "ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET are not set.",
            remediation="Set them in the environment (or .env) to the Directory Sync "
            "application's Application (client) ID and a client secret's value (or, instead "
            "of the secret, ENTRA_CLIENT_CERTIFICATE_PATH to its certificate file), then "
            "restart.",
        )
    certificate = (
        load_client_certificate(certificate_path, settings.ENTRA_CLIENT_CERTIFICATE_PASSWORD)
        if certificate_path
        else None
    )
    return GraphSettings(
        client_id=settings.ENTRA_CLIENT_ID,
        client_secret="" if certificate else settings.ENTRA_CLIENT_SECRET,
        client_certificate=certificate,
        login_url=settings.ENTRA_LOGIN_URL,
        graph_url=settings.GRAPH_URL,
        timeout=settings.GRAPH_TIMEOUT_SECONDS,
        max_retries=settings.GRAPH_MAX_RETRIES,
        verify=settings.GRAPH_CA_BUNDLE or True,
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
