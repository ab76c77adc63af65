"""MSAL applications that talk HTTP our way: the app-only client and the sign-in share them.

Instance discovery (a call to login.microsoftonline.com) only makes sense for Microsoft's own
login hosts; any other host (a local emulator, a proxy) must skip it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from .settings import GraphSettings

MICROSOFT_LOGIN_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "login.microsoftonline.us",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
    }
)


class MsalHttpClient:
    """Lets MSAL use our session, timeout and CA settings."""

    def __init__(self, session: requests.Session, *, timeout: float, verify: bool | str) -> None:
        self._session = session
        self._timeout = timeout
        self._verify = verify

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.get(url, verify=self._verify, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.post(url, verify=self._verify, **kwargs)

    def close(self) -> None:
        self._session.close()


def new_msal_app(settings: GraphSettings, tenant_id: str) -> msal.ConfidentialClientApplication:
    """A new MSAL confidential client for one tenant, with its own session and token cache.

    MSAL reads the tenant's OpenID configuration while it is built, so building fails like a
    request does: ValueError when the login service refuses the tenant, `requests` errors
    when it cannot be reached, MsalServiceError when it answers 5xx.
    """
    host = urlsplit(settings.login_url).hostname or ""
    http = MsalHttpClient(requests.Session(), timeout=settings.timeout, verify=settings.verify)
    return msal.ConfidentialClientApplication(
        settings.client_id,
        client_credential=settings.client_credential(),
        authority=f"{settings.login_url}/{tenant_id}",
        instance_discovery=host in MICROSOFT_LOGIN_HOSTS,
        http_client=http,
    )
