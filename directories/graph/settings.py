"""GraphSettings: the configuration the Graph client and the sign-in share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .certificate import ClientCertificate


@dataclass(frozen=True)
class GraphSettings:
    """Where Graph and the login service are, who we are, and how patient to be."""

    client_id: str
    client_secret: str
    login_url: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    timeout: float = 30.0
    max_retries: int = 6
    # A CA bundle path, or True for the system's. Passed on every request: requests would
    # otherwise let REQUESTS_CA_BUNDLE override a Session's own `verify`.
    verify: bool | str = True
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_retry_after: float = 300.0
    # Authenticates the application instead of the secret when set (Microsoft's advice).
    client_certificate: ClientCertificate | None = None

    def client_credential(self) -> str | dict[str, str]:
        """MSAL's `client_credential`: the certificate if there is one, else the secret."""
        if self.client_certificate is not None:
            return self.client_certificate.msal_credential()
        return self.client_secret

    @property
    def credential_digest(self) -> str:
        """Tells credentials apart without revealing them (cached MSAL apps are keyed on it)."""
        if self.client_certificate is not None:
            return f"certificate:{self.client_certificate.sha256_thumbprint}"
        return f"secret:{hashlib.sha256(self.client_secret.encode()).hexdigest()}"

    def __repr__(self) -> str:  # never print the secret
        return f"GraphSettings(client_id={self.client_id!r}, graph_url={self.graph_url!r})"
