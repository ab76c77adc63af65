"""Verify Now: admin consent, then a sign-in whose `tid` proves the tenant, then the probe.

DESIGN.md "Verify Now". DirectoryAdmin's verify pages only parse requests and report; every
decision is made here. Each redirect to Microsoft carries a signed `state` that names the
directory and a random nonce kept in the admin's session: it expires after STATE_MAX_AGE,
works only in the session that started it, and only once (the nonce is popped when used).
The directory is written only when the admin confirms the probed tenant
(`directory_verify_confirm`), so every failure before that leaves it exactly as it was.

The session keeps one entry per unfinished flow, keyed by its nonce, so Verify Now can run in
several tabs at once. An entry (after consent: MSAL's flow with the PKCE verifier and the ID
token nonce) leaves the session when its callback comes back, whatever the outcome, or, for an
abandoned flow, at the first Verify Now start, callback or confirmation after it expired: a
session lives two weeks, a flow ten minutes.

No access or refresh token is ever stored or logged: the sign-in (`directories.graph.SignIn`)
keeps its MSAL application for one call, and only the ID token's `tid` (and the account name,
to show it) comes back.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib.sessions.backends.base import SessionBase
from django.core import signing

from directories.graph import (
    GraphError,
    GraphSignInFailed,
    GraphSignInRefused,
    GraphTransient,
    GraphWrongTenant,
    SignIn,
    forget_cached_tokens,
    is_guid,
)
from directories.models import Directory

from .graph import graph_settings
from .verify import TenantProbe, directory_mark_verified, tenant_probe

STATE_SALT = "entra-sync.verify"
STATE_MAX_AGE = 10 * 60  # seconds: long enough to read a consent page, short enough to be useless
SIGN_IN_SCOPES = ["User.Read"]  # MSAL adds openid, profile and offline_access
FLOWS_KEY = "entra_sync.verify_flows"
RESULT_KEY_PREFIX = "entra_sync.verify_result."
# Before flows were keyed by nonce there was one per directory, under this prefix, and it never
# expired: such entries are dropped like expired ones.
LEGACY_FLOW_KEY_PREFIX = "entra_sync.verify."
MAX_FLOWS = 10  # unfinished flows (tabs) kept per session; the oldest goes first

STEP_CONSENT = "consent"
STEP_SIGN_IN = "sign_in"

# What a failure message names as the step that failed.
AT_START = "the start"
AT_LINK = "the return from Microsoft"
AT_CONSENT = "admin consent"
AT_SIGN_IN = "sign-in"
AT_PROBE = "the tenant check"
AT_SAVE = "saving"

START_AGAIN = "Nothing was changed. Click Verify Now on the directory to start again."


class VerifyFailed(Exception):
    """A Verify Now step failed; the directory is unchanged.

    `directory_id` is None only when the request cannot be trusted to name a directory
    (a forged state), so the view sends the admin to the directory list instead.
    """

    def __init__(
        self, step: str, message: str, remediation: str, *, directory_id: int | None = None
    ) -> None:
        super().__init__(message)
        self.step = step
        self.message = message
        self.remediation = remediation
        self.directory_id = directory_id

    def __str__(self) -> str:
        return f"Verify Now stopped at {self.step}: {self.message} {self.remediation}"


@dataclass(frozen=True)
class VerifyPending:
    """A probed tenant waiting for the admin's Save, as kept in the session."""

    probe: TenantProbe
    sync_mode: str
    signed_in_as: str
    probed_at: float


@dataclass(frozen=True)
class VerifyNext:
    """Where the callback sends the admin: Microsoft's sign-in, or (None) the confirmation."""

    directory_id: int
    sign_in_url: str | None


def _result_key(directory_id: int) -> str:
    return f"{RESULT_KEY_PREFIX}{directory_id}"


def _forget_expired(request_session: SessionBase) -> dict[str, dict[str, Any]]:
    """Drop expired flows and results from the session; return the live flows by nonce.

    Every entry point calls it first, so an abandoned flow's PKCE verifier and nonce do not
    stay in the session for as long as the session lives.
    """
    now = time.time()
    stored = request_session.get(FLOWS_KEY)
    flows = stored if isinstance(stored, dict) else {}
    live = {
        nonce: entry
        for nonce, entry in flows.items()
        if isinstance(entry, dict) and _number(entry.get("expires")) > now
    }
    if stored is not None and (not isinstance(stored, dict) or len(live) != len(flows)):
        _save_flows(request_session, live)
    for key in list(request_session.keys()):
        if key.startswith(RESULT_KEY_PREFIX):
            result = request_session[key]
            probed_at = _number(result.get("probed_at")) if isinstance(result, dict) else 0.0
            if now - probed_at > STATE_MAX_AGE:
                del request_session[key]
        elif key.startswith(LEGACY_FLOW_KEY_PREFIX):
            del request_session[key]
    return live


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _save_flows(request_session: SessionBase, flows: dict[str, dict[str, Any]]) -> None:
    # Assigned anew each time: the session saves only what is set or popped at its top level.
    if flows:
        request_session[FLOWS_KEY] = flows
    else:
        request_session.pop(FLOWS_KEY, None)


def _remember_flow(request_session: SessionBase, nonce: str, entry: dict[str, Any]) -> None:
    """Keep a flow until its callback or its expiry; past MAX_FLOWS the oldest is dropped."""
    flows = _forget_expired(request_session)
    flows[nonce] = {**entry, "expires": time.time() + STATE_MAX_AGE}
    newest = sorted(flows, key=lambda key: _number(flows[key].get("expires")))[-MAX_FLOWS:]
    _save_flows(request_session, {key: flows[key] for key in newest})


def _take_flow(request_session: SessionBase, nonce: str) -> dict[str, Any] | None:
    """Remove and return the flow a callback names (once: a second callback finds nothing)."""
    flows = _forget_expired(request_session)
    entry = flows.pop(nonce, None)
    _save_flows(request_session, flows)
    return entry


def _new_state(directory_id: int, step: str) -> tuple[str, str]:
    """A signed, timestamped state and the nonce that binds it to this session."""
    nonce = secrets.token_urlsafe(24)
    state = signing.dumps({"d": directory_id, "n": nonce, "s": step}, salt=STATE_SALT)
    return state, nonce


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""


def _directory(directory_id: int) -> Directory:
    directory = Directory.objects.filter(pk=directory_id).first()
    if directory is None:
        raise VerifyFailed(AT_LINK, "The directory no longer exists.", START_AGAIN)
    return directory


def _check_same_tenant(directory: Directory, tenant_id: str, step: str) -> None:
    """A verified directory never moves to another tenant: its synced data belongs to the first."""
    if directory.tenant_id and directory.tenant_id.lower() != tenant_id.lower():
        error = GraphWrongTenant(
            f"{directory.name} is connected to tenant {directory.tenant_id}, not {tenant_id}."
        )
        raise VerifyFailed(step, error.message, error.remediation, directory_id=directory.pk)


def _sign_in() -> SignIn:
    """The sign-in as the Directory Sync application; its MSAL app lives for one call."""
    return SignIn(graph_settings())


def directory_verify_start(
    *, directory: Directory, request_session: SessionBase, callback_url: str
) -> str:
    """Remember a fresh nonce for this directory and return Microsoft's admin consent URL.

    An earlier, unfinished Verify Now (another tab) keeps working until it expires.
    """
    _forget_expired(request_session)
    try:
        graph = graph_settings()  # refuse early, before sending the admin anywhere
    except GraphError as exc:
        raise VerifyFailed(
            AT_START, exc.message, exc.remediation, directory_id=directory.pk
        ) from exc
    state, nonce = _new_state(directory.pk, STEP_CONSENT)
    request_session.pop(_result_key(directory.pk), None)
    _remember_flow(request_session, nonce, {"directory": directory.pk, "step": STEP_CONSENT})
    query = urlencode(
        {
            "client_id": graph.client_id,
            "scope": f"{graph.graph_url}/.default",
            "redirect_uri": callback_url,
            "state": state,
        }
    )
    return f"{graph.login_url}/organizations/v2.0/adminconsent?{query}"


def _consume_state(request_session: SessionBase, state: str) -> tuple[int, dict[str, Any]]:
    """Check the state's signature, age, session and single use; return directory id and entry."""
    _forget_expired(request_session)
    try:
        payload = signing.loads(state, salt=STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.SignatureExpired:
        # The signature is ours, only too old: the directory and nonce it names can be trusted.
        expired = signing.loads(state, salt=STATE_SALT)
        directory_id = _state_directory(expired)
        if isinstance(expired, dict) and isinstance(expired.get("n"), str):
            _take_flow(request_session, expired["n"])
        raise VerifyFailed(
            AT_LINK,
            f"The Verify Now link expired (it lasts {STATE_MAX_AGE // 60} minutes).",
            "Nothing was changed. Click Verify Now again and finish within "
            f"{STATE_MAX_AGE // 60} minutes.",
            directory_id=directory_id,
        ) from None
    except signing.BadSignature:
        payload = None
    directory_id = _state_directory(payload)
    if directory_id is None or not isinstance(payload, dict):
        raise VerifyFailed(
            AT_LINK,
            "The Verify Now link is not valid: it was altered, or not issued by this site.",
            START_AGAIN,
        )
    nonce = payload.get("n")
    entry = _take_flow(request_session, nonce) if isinstance(nonce, str) and nonce else None
    if (
        entry is None
        or entry.get("directory") != directory_id
        or entry.get("step") != payload.get("s")
    ):
        raise VerifyFailed(
            AT_LINK,
            "The Verify Now link was already used, or it was started in another browser session.",
            START_AGAIN,
            directory_id=directory_id,
        )
    return directory_id, entry


def _state_directory(payload: object) -> int | None:
    if isinstance(payload, dict) and isinstance(payload.get("d"), int):
        return int(payload["d"])
    return None


def directory_verify_callback(
    *, request_session: SessionBase, params: Mapping[str, str], callback_url: str
) -> VerifyNext:
    """Handle Microsoft's answer to either redirect: admin consent, then the sign-in."""
    directory_id, entry = _consume_state(request_session, params.get("state", ""))
    directory = _directory(directory_id)
    if entry["step"] == STEP_CONSENT:
        return _after_consent(directory, request_session, params, callback_url)
    return _after_sign_in(directory, request_session, params, entry)


def _after_consent(
    directory: Directory,
    request_session: SessionBase,
    params: Mapping[str, str],
    callback_url: str,
) -> VerifyNext:
    """Consent says which tenant, but anyone can type that URL: make the admin sign in to it."""
    if params.get("error"):
        description = _first_line(params.get("error_description", "")) or params["error"]
        if params["error"] == "access_denied" or "AADSTS65004" in description:
            raise VerifyFailed(
                AT_CONSENT,
                f"consent was declined ({description}).",
                "Nothing was changed. Ask a Global Administrator or Privileged Role "
                "Administrator of the tenant to click Verify Now and accept the permissions.",
                directory_id=directory.pk,
            )
        raise VerifyFailed(
            AT_CONSENT,
            f"Microsoft answered with an error ({description}).",
            "Nothing was changed. Fix what Microsoft names, then click Verify Now again.",
            directory_id=directory.pk,
        )
    tenant_id = params.get("tenant", "").strip().lower()
    if params.get("admin_consent", "").lower() != "true" or not is_guid(tenant_id):
        raise VerifyFailed(
            AT_CONSENT,
            "Microsoft's answer did not say which tenant consented.",
            START_AGAIN,
            directory_id=directory.pk,
        )
    _check_same_tenant(directory, tenant_id, AT_CONSENT)
    state, nonce = _new_state(directory.pk, STEP_SIGN_IN)
    try:
        started = _sign_in().start(
            tenant_id,
            redirect_uri=callback_url,
            state=state,
            scopes=SIGN_IN_SCOPES,
            prompt="select_account",
            # Not form_post: a cross-site POST carries no SameSite=Lax session cookie, and the
            # state is bound to the session.
            response_mode="query",
        )
    except (GraphTransient, GraphWrongTenant) as exc:
        # The login service would not start a sign-in for this tenant.
        raise VerifyFailed(
            AT_SIGN_IN,
            f"the Microsoft sign-in service for tenant {tenant_id} could not be reached "
            f"({exc.detail}).",
            "Nothing was changed. Check this server's network access to Microsoft, then click "
            "Verify Now again.",
            directory_id=directory.pk,
        ) from exc
    except GraphError as exc:
        raise VerifyFailed(
            AT_SIGN_IN, exc.message, exc.remediation, directory_id=directory.pk
        ) from exc
    # The flow holds the PKCE verifier and nonce MSAL checks when the sign-in comes back.
    _remember_flow(
        request_session,
        nonce,
        {
            "directory": directory.pk,
            "step": STEP_SIGN_IN,
            "tenant": tenant_id,
            "flow": started.flow,
        },
    )
    return VerifyNext(directory_id=directory.pk, sign_in_url=started.auth_uri)


def _after_sign_in(
    directory: Directory,
    request_session: SessionBase,
    params: Mapping[str, str],
    entry: dict[str, Any],
) -> VerifyNext:
    """Redeem the code; the ID token's `tid` must be the consented tenant; then probe it."""
    tenant_id = str(entry["tenant"])
    sign_in_again = (
        "Nothing was changed. Click Verify Now again and sign in with an administrator account "
        "of the tenant you are connecting."
    )
    if params.get("error"):
        description = _first_line(params.get("error_description", "")) or params["error"]
        raise VerifyFailed(
            AT_SIGN_IN,
            f"Microsoft answered with an error ({description}).",
            sign_in_again,
            directory_id=directory.pk,
        )
    try:
        signed_in = _sign_in().finish(tenant_id, flow=entry["flow"], params=params)
    except GraphSignInRefused as exc:
        raise VerifyFailed(
            AT_SIGN_IN,
            f"Microsoft refused the sign-in ({exc.detail}).",
            sign_in_again,
            directory_id=directory.pk,
        ) from exc
    except (GraphSignInFailed, GraphTransient, GraphWrongTenant) as exc:
        # A state or nonce that does not match the flow, a broken ID token, or no answer.
        raise VerifyFailed(
            AT_SIGN_IN,
            f"the sign-in answer could not be checked ({exc.detail}).",
            sign_in_again,
            directory_id=directory.pk,
        ) from exc
    except GraphError as exc:
        raise VerifyFailed(
            AT_SIGN_IN, exc.message, exc.remediation, directory_id=directory.pk
        ) from exc
    if signed_in.tenant_id != tenant_id:
        raise VerifyFailed(
            AT_SIGN_IN,
            f"You signed in to tenant {signed_in.tenant_id or '(unknown)'} but consented for "
            f"{tenant_id}.",
            "Nothing was changed. Sign in with an account of the tenant you are connecting: "
            "click Verify Now again.",
            directory_id=directory.pk,
        )
    _check_same_tenant(directory, tenant_id, AT_SIGN_IN)
    # Consent was just given: MSAL may still remember the tenant's earlier refusal.
    forget_cached_tokens(tenant_id=tenant_id)
    try:
        probe = tenant_probe(directory=directory, tenant_id=tenant_id)
    except GraphError as exc:
        raise VerifyFailed(
            AT_PROBE, exc.message, exc.remediation, directory_id=directory.pk
        ) from exc
    request_session[_result_key(directory.pk)] = {
        "probe": asdict(probe),
        "sync_mode": directory.sync_mode,
        "signed_in_as": signed_in.username,
        "probed_at": time.time(),
    }
    return VerifyNext(directory_id=directory.pk, sign_in_url=None)


def directory_verify_pending(
    *, directory: Directory, request_session: SessionBase
) -> VerifyPending | None:
    """The probed tenant waiting for Save, unless there is none or it is too old to trust."""
    _forget_expired(request_session)
    raw = request_session.get(_result_key(directory.pk))
    if not isinstance(raw, dict):
        return None
    try:
        pending = VerifyPending(
            probe=TenantProbe(**raw["probe"]),
            sync_mode=str(raw["sync_mode"]),
            signed_in_as=str(raw["signed_in_as"]),
            probed_at=float(raw["probed_at"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if time.time() - pending.probed_at > STATE_MAX_AGE:
        return None
    return pending


def directory_verify_confirm(*, directory: Directory, request_session: SessionBase) -> Directory:
    """Save the probed tenant on the directory and put it on its sync schedule."""
    pending = directory_verify_pending(directory=directory, request_session=request_session)
    request_session.pop(_result_key(directory.pk), None)
    if pending is None:
        raise VerifyFailed(
            AT_SAVE,
            "there is no checked tenant to save (it expired after "
            f"{STATE_MAX_AGE // 60} minutes, or was already saved).",
            START_AGAIN,
            directory_id=directory.pk,
        )
    directory.refresh_from_db()
    _check_same_tenant(directory, pending.probe.tenant_id, AT_SAVE)
    if directory.sync_mode != pending.sync_mode:
        raise VerifyFailed(
            AT_SAVE,
            "the directory's mode changed after the tenant was checked.",
            START_AGAIN,
            directory_id=directory.pk,
        )
    directory_mark_verified(directory=directory, probe=pending.probe)
    return directory
