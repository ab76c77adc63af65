"""A person's sign-in with Microsoft (authorization code + PKCE, MSAL): who, in which tenant.

Verify Now uses it to prove the tenant an administrator belongs to: the ID token's `tid`.
Every call builds a fresh MSAL application, so its token cache (access, refresh and ID tokens)
dies with the call; only the `tid` and `preferred_username` claims leave this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msal
import requests

from .client import token_error
from .errors import GraphSignInFailed, GraphSignInRefused, GraphTransient, GraphWrongTenant
from .msal_http import new_msal_app
from .settings import GraphSettings

# MSAL recommends response_mode=form_post; callers ask for query on purpose (a cross-site
# form_post carries no SameSite=Lax session cookie), so its warning on every sign-in is noise.
warnings.filterwarnings(
    "ignore", message="response_mode='form_post' is recommended", category=UserWarning
)


@dataclass(frozen=True)
class SignInStart:
    """Where to send the person, and the flow `SignIn.finish` needs (keep it server-side).

    The flow holds the PKCE verifier and the nonce MSAL checks when the sign-in comes back.
    """

    flow: dict[str, Any] = field(repr=False)
    auth_uri: str


@dataclass(frozen=True)
class SignedIn:
    """Who signed in: the ID token's `tid` (lower case) and `preferred_username`, or ''."""

    tenant_id: str
    username: str


class SignIn:
    """Starts and finishes a sign-in to one tenant as the application in `settings`."""

    def __init__(self, settings: GraphSettings) -> None:
        self.settings = settings

    def start(
        self,
        tenant_id: str,
        *,
        redirect_uri: str,
        state: str,
        scopes: Sequence[str],
        prompt: str | None = None,
        response_mode: str = "query",
    ) -> SignInStart:
        """The flow to keep and the URL of Microsoft's sign-in page for `tenant_id`."""
        app = self._app(tenant_id)
        flow = app.initiate_auth_code_flow(
            scopes=list(scopes),
            redirect_uri=redirect_uri,
            state=state,
            prompt=prompt,
            response_mode=response_mode,
        )
        return SignInStart(flow=flow, auth_uri=str(flow["auth_uri"]))

    def finish(
        self, tenant_id: str, *, flow: Mapping[str, Any], params: Mapping[str, str]
    ) -> SignedIn:
        """Check Microsoft's answer against `flow`, redeem the code, and say who signed in.

        `params` is the query Microsoft redirected back with; `flow` is `SignInStart.flow`.
        """
        app = self._app(tenant_id)
        try:
            result = app.acquire_token_by_auth_code_flow(dict(flow), dict(params))
        except (ValueError, RuntimeError) as exc:
            # MSAL raises for a state or nonce that does not match the flow, or a broken ID token.
            raise GraphSignInFailed(
                f"The sign-in answer could not be checked ({exc}).", detail=str(exc)
            ) from exc
        except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
            raise _login_service_failed(tenant_id, exc) from exc
        if result.get("error") == "invalid_client":
            # The application's own credential was refused, not the person: say which and why.
            raise token_error(result, tenant_id, self.settings.client_id)
        if "error" in result:
            description = _first_line(str(result.get("error_description") or result["error"]))
            raise GraphSignInRefused(
                f"Microsoft refused the sign-in ({description}).",
                code=str(result["error"]),
                detail=description,
            )
        # MSAL got the ID token straight from the token endpoint over TLS with our client
        # credential (secret or certificate), which OpenID Connect accepts in place of checking
        # its signature.
        claims = result.get("id_token_claims") or {}
        return SignedIn(
            tenant_id=str(claims.get("tid") or "").lower(),
            username=str(claims.get("preferred_username") or ""),
        )

    def _app(self, tenant_id: str) -> msal.ConfidentialClientApplication:
        """A fresh MSAL application, so its token cache dies with the call."""
        try:
            return new_msal_app(self.settings, tenant_id)
        except ValueError as exc:
            # MSAL's answer to a refused OpenID configuration, which is how an unknown tenant
            # shows up.
            raise GraphWrongTenant(
                f"Tenant {tenant_id} was not found in Microsoft Entra ID (the login service "
                "refused its OpenID configuration).",
                detail=str(exc),
            ) from exc
        except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
            raise _login_service_failed(tenant_id, exc) from exc


def _login_service_failed(tenant_id: str, exc: Exception) -> GraphTransient:
    """No answer (a `requests` error), or a 5xx one (MSAL raises MsalServiceError for it)."""
    what = "failed" if isinstance(exc, msal.exceptions.MsalServiceError) else "could not be reached"
    return GraphTransient(
        f"The Microsoft sign-in service for tenant {tenant_id} {what} ({exc}).", detail=str(exc)
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip() if text.strip() else ""
