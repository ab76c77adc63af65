"""Microsoft Graph client and sign-in: plain Python, no Django imports."""

from __future__ import annotations

from .certificate import ClientCertificate, load_client_certificate
from .client import GraphClient, forget_cached_tokens, is_guid
from .errors import (
    ErrorClass,
    GraphBadResponse,
    GraphDeltaExpired,
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
    DeltaRound,
    GraphGroup,
    GraphUser,
    GroupChange,
    MemberKind,
    MemberRef,
    Organization,
    RequestStats,
    ServicePrincipal,
    UserChange,
)

__all__ = [
    "AppRoleAssignment",
    "ClientCertificate",
    "DeltaRound",
    "ErrorClass",
    "GraphBadResponse",
    "GraphClient",
    "GraphDeltaExpired",
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
    "GroupChange",
    "MemberKind",
    "MemberRef",
    "Organization",
    "RequestStats",
    "ServicePrincipal",
    "SignIn",
    "SignInStart",
    "SignedIn",
    "UserChange",
    "forget_cached_tokens",
    "is_guid",
    "load_client_certificate",
]
