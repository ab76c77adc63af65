"""E-mail backends of our own."""

from __future__ import annotations

import sys
from typing import Any

from django.core.mail.backends import console


class ConsoleEmailBackend(console.EmailBackend):
    """Django's console backend, writing to standard error instead of standard output.

    An alert e-mail is sent from inside a sync, and a sync runs inside `sync_directory --json`,
    whose standard output a script parses: a mail printed there would corrupt it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream", sys.stderr)
        super().__init__(*args, **kwargs)
