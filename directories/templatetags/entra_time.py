"""One way to show a moment in the admin: '2026-11-29 21:40 UTC', in the active time zone.

The zone's abbreviation is part of every time shown, so that a list, a status box and a run's
page cannot be read in different zones. `{% load entra_time %}{{ run.started_at|moment }}`
in templates; `moment_html()` (the same text in a `<time>` element) in `list_display` columns.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()

MOMENT_FORMAT = "%Y-%m-%d %H:%M %Z"


def moment_text(moment: datetime) -> str:
    """'2026-11-29 21:40 UTC' (or 'CET', 'EST'…: the active time zone's abbreviation)."""
    return timezone.localtime(moment).strftime(MOMENT_FORMAT)


def moment_html(moment: datetime | None, empty: str = "—") -> SafeString:
    """The moment in a `<time>` element whose `datetime` is exact, for machines and tests."""
    if moment is None:
        return format_html("{}", empty)
    return format_html('<time datetime="{}">{}</time>', moment.isoformat(), moment_text(moment))


@register.filter
def moment(value: datetime | None) -> str:
    """'2026-11-29 21:40 UTC' in a template (the text `moment_html` wraps), '—' for None."""
    return "—" if value is None else moment_text(value)
