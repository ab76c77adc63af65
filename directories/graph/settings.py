"""GraphSettings: the configuration the Graph client and the sign-in share."""

from __future__ import annotations

from dataclasses import dataclass


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

    def __repr__(self) -> str:  # never print the secret
        return f"GraphSettings(client_id={self.client_id!r}, graph_url={self.graph_url!r})"
