"""Microsoft Graph client: plain Python, no Django imports."""

from __future__ import annotations

from .client import GraphClient, GraphSettings, forget_cached_tokens, is_guid
from .errors import (
    ErrorClass,
    GraphBadResponse,
    GraphError,
    GraphForbidden,
    GraphNotAssigned,
    GraphNotFound,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    GraphWrongTenant,
)
from .types import (
    AppRoleAssignment,
    GraphGroup,
    GraphUser,
    Organization,
    RequestStats,
    ServicePrincipal,
)

__all__ = [
    "AppRoleAssignment",
    "ErrorClass",
    "GraphBadResponse",
    "GraphClient",
    "GraphError",
    "GraphForbidden",
    "GraphGroup",
    "GraphNotAssigned",
    "GraphNotFound",
    "GraphSettings",
    "GraphThrottled",
    "GraphTransient",
    "GraphUnauthorized",
    "GraphUser",
    "GraphWrongTenant",
    "Organization",
    "RequestStats",
    "ServicePrincipal",
    "forget_cached_tokens",
    "is_guid",
]
