"""An in-process Microsoft Entra ID + Microsoft Graph v1.0 emulator (plain Python, no Django).

The core maps (method, url, headers, body) to (status, headers, body); `responses_adapter`
plugs it into `requests` for tests, and `server.EmulatorServer` serves the same
`Emulator.handle` over HTTPS on a loopback port (certificates from `tls`), with a control API
under `/_emulator/` (`control`, and `control_client.EmulatorControl` to call it).

Graph v1.0 as served: the directory reads (`graph_api`), delta queries on users and groups
from each tenant's change log (`delta`), JSON batching (`batch`) and resource-unit throttling
(`throttling`), each following the Microsoft Learn page its docstring names. `scenarios.churn`
applies a seeded "1 % of the directory" day of changes for benchmarks.
"""

from __future__ import annotations

from .client_assertions import CLIENT_ASSERTION_TYPE, AppCertificate
from .control import ControlApi, ControlError
from .control_client import EmulatorControl, EmulatorControlError
from .core import Emulator
from .graph_api import GraphApi
from .login_api import LoginApi, LoginError
from .messages import EmuRequest, EmuResponse
from .odata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, EmulatedGraphError
from .scenarios import ChurnSummary, churn
from .server import EmulatorServer
from .signing import SigningKey
from .tenant import (
    CONSENT_ADMIN_ROLES,
    DEFAULT_ADMIN_PASSWORD,
    DEFAULT_APP_ROLE_ID,
    DEFAULT_AUTH_APP_ID,
    GLOBAL_ADMINISTRATOR,
    ODATA_DEVICE,
    ODATA_GROUP,
    ODATA_ORG_CONTACT,
    ODATA_SERVICE_PRINCIPAL,
    ODATA_USER,
    Change,
    EmuApp,
    EmuAssignment,
    EmuGroup,
    EmuOther,
    EmuTenant,
    EmuUser,
    generate_tenant,
)
from .tls import CertPaths, ensure_certificates
from .tokens import TokenInfo, TokenStore

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "CONSENT_ADMIN_ROLES",
    "DEFAULT_ADMIN_PASSWORD",
    "DEFAULT_APP_ROLE_ID",
    "DEFAULT_AUTH_APP_ID",
    "DEFAULT_PAGE_SIZE",
    "GLOBAL_ADMINISTRATOR",
    "MAX_PAGE_SIZE",
    "ODATA_DEVICE",
    "ODATA_GROUP",
    "ODATA_ORG_CONTACT",
    "ODATA_SERVICE_PRINCIPAL",
    "ODATA_USER",
    "AppCertificate",
    "CertPaths",
    "Change",
    "ChurnSummary",
    "ControlApi",
    "ControlError",
    "EmuApp",
    "EmuAssignment",
    "EmuGroup",
    "EmuOther",
    "EmuRequest",
    "EmuResponse",
    "EmuTenant",
    "EmuUser",
    "EmulatedGraphError",
    "Emulator",
    "EmulatorControl",
    "EmulatorControlError",
    "EmulatorServer",
    "GraphApi",
    "LoginApi",
    "LoginError",
    "SigningKey",
    "TokenInfo",
    "TokenStore",
    "churn",
    "ensure_certificates",
    "generate_tenant",
]
