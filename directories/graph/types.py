"""What the Graph client returns: frozen dataclasses with the properties we keep."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GraphUser:
    id: str
    user_principal_name: str
    mail: str | None
    display_name: str
    given_name: str | None
    surname: str | None
    account_enabled: bool
    user_type: str  # "Member" or "Guest"

    @property
    def is_guest(self) -> bool:
        return self.user_type == "Guest"


@dataclass(frozen=True, slots=True)
class GraphGroup:
    id: str
    display_name: str
    description: str | None
    mail: str | None
    mail_enabled: bool
    security_enabled: bool
    group_types: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppRoleAssignment:
    id: str
    principal_id: str
    principal_type: str  # "User", "Group" or "ServicePrincipal"
    principal_display_name: str


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    display_name: str
    verified_domains: tuple[str, ...]
    default_domain: str | None


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str
    app_role_assignment_required: bool


@dataclass(slots=True)
class RequestStats:
    """Counts for one sync run: every HTTP request sent to Graph, and how many were retries."""

    requests: int = 0
    retries: int = 0
    last_request_id: str | None = None
