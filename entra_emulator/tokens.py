"""Access tokens shared by the emulator's login side (issues them) and Graph side (checks them).

Tokens look like JWTs (header.payload.signature, with `tid`, `appid`, `roles`, `exp` claims) so
clients that peek at them see familiar claims, but Graph trusts only this store: a token is
valid when the store issued it and its expiry has not passed on the injected clock.

App-only tokens (client credentials) carry `roles`; delegated tokens (authorization code,
refresh token) carry the signed-in user's `oid` and the `scp` scopes, and no roles.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's appId


@dataclass(frozen=True)
class TokenInfo:
    token: str
    tenant_id: str
    client_id: str
    issued_at: float
    expires_at: float
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()  # delegated permissions (`scp`)
    user_id: str | None = None  # the signed-in user's object id; None for app-only tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenStore:
    """Opaque-to-Graph bearer tokens: token -> (tenant, client, expiry)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tokens: dict[str, TokenInfo] = {}
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()

    def issue(
        self,
        *,
        tenant_id: str,
        client_id: str,
        lifetime: float,
        roles: tuple[str, ...] = (),
        audience: str = "https://graph.microsoft.com",
        scopes: tuple[str, ...] = (),
        user_id: str | None = None,
    ) -> TokenInfo:
        now = self.clock()
        claims: dict[str, object] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + lifetime),
            "appid": client_id,
            "app_displayname": "entra-sync",
            "idtyp": "app" if user_id is None else "user",
            "tid": tenant_id,
            "uti": _b64(uuid.uuid4().bytes),
            "ver": "1.0",
        }
        if user_id is None:
            claims["roles"] = list(roles)
        else:
            claims["oid"] = user_id
            claims["scp"] = " ".join(scopes)
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "emulator"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(
            hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        )
        info = TokenInfo(
            token=f"{header}.{payload}.{signature}",
            tenant_id=tenant_id,
            client_id=client_id,
            issued_at=now,
            expires_at=now + lifetime,
            roles=roles,
            scopes=scopes,
            user_id=user_id,
        )
        with self._lock:
            self._tokens[info.token] = info
        return info

    def lookup(self, token: str) -> TokenInfo | None:
        """The token's record, expired or not; None when this store never issued it."""
        with self._lock:
            return self._tokens.get(token)

    def is_expired(self, info: TokenInfo) -> bool:
        return self.clock() >= info.expires_at

    def expire_all(self) -> None:
        """Make every issued token expired now (Graph then answers 401 'expired')."""
        now = self.clock()
        with self._lock:
            for token, info in self._tokens.items():
                self._tokens[token] = replace(info, expires_at=min(info.expires_at, now))

    def revoke_all(self) -> None:
        """Forget every token (Graph then answers 401 as for a token it never issued)."""
        with self._lock:
            self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)
