"""What the Graph client returns: frozen dataclasses with the properties we keep."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

T = TypeVar("T")


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
    subrequests: int = 0  # requests sent inside `$batch` POSTs (each POST is one of `requests`)
    # Objects skipped or cleaned because they could not be stored as Graph sent them, in words
    # an admin can act on (recorded on the run, shown with it).
    warnings: list[str] = field(default_factory=list)


MemberKind = Literal["user", "group", "other"]


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A direct member of a group: its id and, from its `@odata.type`, what it is."""

    id: str
    kind: MemberKind  # "other": a device, contact, service principal, ...


@dataclass(frozen=True, slots=True)
class UserChange:
    """One user in a delta round, its pages merged.

    `fields` holds only the properties Graph sent, under GraphUser's field names and normalised
    as a full read would; a property Graph left out is unknown here, not empty (Graph omits a
    property that was never set). Empty when `removed`.
    """

    id: str
    removed: bool  # the item carried `@removed` ("changed": deleted, restorable; "deleted")
    fields: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class GroupChange:
    """One group in a delta round, its pages merged (a large group spans several pages).

    `fields` as UserChange's, under GraphGroup's field names. Members come from
    `members@delta`: added without `@removed`, removed with it; a member mentioned twice ends
    in the list of its last mention.
    """

    id: str
    removed: bool
    fields: Mapping[str, object]
    members_added: tuple[MemberRef, ...]
    members_removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DeltaRound(Generic[T]):
    """A whole delta round: every change, one per object id, and the link for the next round."""

    changes: tuple[T, ...]
    delta_link: str  # the round's final @odata.deltaLink, sent verbatim next time
