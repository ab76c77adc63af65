"""Microsoft Graph client and sign-in: plain Python, no Django imports."""

from __future__ import annotations

from .client import GraphClient, forget_cached_tokens, is_guid
from .errors import (
    ErrorClass,
    GraphBadResponse,
    GraphError,
    GraphForbidden,
    GraphNotAssigned,
    GraphNotFound,
    GraphSignInFailed,
    GraphSignInRefused,
    GraphThrottled,
    GraphTransient,
    GraphUnauthorized,
    GraphWrongTenant,
)
from .settings import GraphSettings
from .signin import SignedIn, SignIn, SignInStart
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
    "GraphSignInFailed",
    "GraphSignInRefused",
    "GraphThrottled",
    "GraphTransient",
    "GraphUnauthorized",
    "GraphUser",
    "GraphWrongTenant",
    "Organization",
    "RequestStats",
    "ServicePrincipal",
    "SignIn",
    "SignInStart",
    "SignedIn",
    "forget_cached_tokens",
    "is_guid",
]
