"""The failures a Graph or login call can end in, each with a sentence for a person.

Every error carries an `error_class` (DESIGN.md's table), a message saying what happened,
a remediation saying what to do, and Graph's `request-id` when there was one. `detail` is the
cause in Microsoft's (or a library's) own words, for a caller that words its own sentence.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    """Stable names for what went wrong; stored on runs and grouped on the troubleshooting page."""

    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_ASSIGNED = "not_assigned"
    WRONG_TENANT = "wrong_tenant"
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    NEEDS_APPROVAL = "needs_approval"
    BAD_RESPONSE = "bad_response"
    INTERNAL = "internal"
    INTERRUPTED = "interrupted"  # the worker died mid-run (killed, out of memory, restarted)


class GraphError(Exception):
    """Base of every failure the Graph client reports."""

    error_class: ErrorClass = ErrorClass.BAD_RESPONSE
    default_remediation = "Nothing was changed. If it happens again, report it with the request id."

    def __init__(
        self,
        message: str,
        *,
        remediation: str | None = None,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = message if detail is None else detail
        self.remediation = remediation or self.default_remediation
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.message} {self.remediation}"


class GraphUnauthorized(GraphError):
    """Credentials were refused: a wrong or expired secret or certificate, no consent, no app."""

    error_class = ErrorClass.UNAUTHORIZED
    default_remediation = (
        "Check ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (the secret's value, not its id, and "
        "not expired) or ENTRA_CLIENT_CERTIFICATE_PATH (a certificate uploaded to the app "
        "registration), then verify the directory again so an admin grants consent."
    )


class GraphForbidden(GraphError):
    """The app may sign in but lacks an application permission."""

    error_class = ErrorClass.FORBIDDEN
    default_remediation = (
        "Grant the Directory Sync application the application permissions User.Read.All, "
        "GroupMember.Read.All and Application.Read.All, then grant admin consent again."
    )


class GraphNotAssigned(GraphError):
    """Assigned-groups mode cannot work: no Authentication app, or no groups assigned to it."""

    error_class = ErrorClass.NOT_ASSIGNED
    default_remediation = (
        "In Entra ID, open Enterprise applications > the Authentication application > Users "
        "and groups, and assign the groups to sync (this needs Entra ID P1 or P2). Without "
        "P1/P2, switch the directory to 'All groups'."
    )


class GraphWrongTenant(GraphError):
    """The tenant answering is not the one the directory is connected to."""

    error_class = ErrorClass.WRONG_TENANT
    default_remediation = (
        "Check the tenant id. To connect a different tenant, remove the directory and add it "
        "again, signing in to the right tenant."
    )


class GraphNotFound(GraphError):
    """A single object asked for by id does not exist (any more)."""

    error_class = ErrorClass.BAD_RESPONSE


class GraphThrottled(GraphError):
    """Graph kept answering 429 after every retry."""

    error_class = ErrorClass.THROTTLED
    default_remediation = (
        "Microsoft Graph is throttling this tenant. Nothing was changed; the next scheduled "
        "sync retries. If it persists, sync less often or at a quieter time."
    )


class GraphTransient(GraphError):
    """Graph or the network kept failing (5xx, timeouts, refused connections) after retries."""

    error_class = ErrorClass.TRANSIENT
    default_remediation = (
        "Nothing was changed; the next scheduled sync retries. If it persists, check this "
        "server's network access to Microsoft and the Microsoft 365 service health page."
    )


class GraphBadResponse(GraphError):
    """Graph answered with something we cannot use (malformed JSON, missing fields, loops)."""

    error_class = ErrorClass.BAD_RESPONSE


class GraphSignInFailed(GraphError):
    """A sign-in proves nothing: its answer failed MSAL's checks (state, nonce, ID token)."""

    error_class = ErrorClass.UNAUTHORIZED
    default_remediation = "Nothing was changed. Start the sign-in again and finish it promptly."


class GraphSignInRefused(GraphSignInFailed):
    """Microsoft refused a person's sign-in: an error answer, or a code it would not redeem."""

    default_remediation = (
        "Nothing was changed. Sign in again with an account of the tenant you are connecting."
    )


class GraphDeltaExpired(GraphError):
    """Graph no longer knows a stored delta link: the changes since then cannot be read.

    Microsoft's delta query pages: 410 Gone ("the application must restart with a full
    synchronization"), or the error codes `syncStateNotFound` ("the delta token is expired and
    data must be synchronized again") and `resyncRequired`, whatever status they come with.
    """

    error_class = ErrorClass.TRANSIENT
    default_remediation = (
        "Nothing was changed. The next sync reads the whole directory again instead of only "
        "the changes; no action is needed unless it keeps happening."
    )
