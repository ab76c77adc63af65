"""An in-process Microsoft Entra ID + Microsoft Graph v1.0 emulator (plain Python, no Django).

The core maps (method, url, headers, body) to (status, headers, body); `responses_adapter`
plugs it into `requests` for tests, and an HTTPS server can wrap the same `Emulator.handle`.
"""

from __future__ import annotations

from .core import Emulator
from .graph_api import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, GraphApi, GraphError
from .login_api import LoginApi, LoginError
from .messages import EmuRequest, EmuResponse
from .tenant import (
    DEFAULT_APP_ROLE_ID,
    DEFAULT_AUTH_APP_ID,
    ODATA_DEVICE,
    ODATA_GROUP,
    ODATA_ORG_CONTACT,
    ODATA_SERVICE_PRINCIPAL,
    ODATA_USER,
    EmuApp,
    EmuAssignment,
    EmuGroup,
    EmuOther,
    EmuTenant,
    EmuUser,
    generate_tenant,
)
from .tokens import TokenInfo, TokenStore

__all__ = [
    "DEFAULT_APP_ROLE_ID",
    "DEFAULT_AUTH_APP_ID",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "ODATA_DEVICE",
    "ODATA_GROUP",
    "ODATA_ORG_CONTACT",
    "ODATA_SERVICE_PRINCIPAL",
    "ODATA_USER",
    "EmuApp",
    "EmuAssignment",
    "EmuGroup",
    "EmuOther",
    "EmuRequest",
    "EmuResponse",
    "EmuTenant",
    "EmuUser",
    "Emulator",
    "GraphApi",
    "GraphError",
    "LoginApi",
    "LoginError",
    "TokenInfo",
    "TokenStore",
    "generate_tenant",
]
