"""Sync history as a server-rendered SVG chart, so the directory page needs no chart library."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from directories.models import SyncRun


def seconds_rounded(value: timedelta | None) -> float | None:
    return round(value.total_seconds(), 1) if value is not None else None


def run_changes(run: SyncRun) -> int:
    """Objects created, updated or removed by a run, all kinds together."""
    return sum(
        value
        for actions in run.counts().values()
        for action, value in actions.items()
        if action != "seen"
    )


def history_chart_svg(runs: Sequence[SyncRun], width: int = 640, height: int = 140) -> SafeString:
    """Duration (bars) and changes (dots) per run, oldest on the left, as inline SVG.

    Rendered on the server so the page needs no chart library; each series has its own
    scale, and each mark has a tooltip with the exact numbers.
    """
    runs = [run for run in reversed(runs) if run.finished_at is not None]
    if not runs:
        return mark_safe("")
    top, bottom = 18, 22
    plot = height - top - bottom
    slot = width / len(runs)
    # Runs that took no measurable time (or whose clock went backwards) still get a chart.
    durations = [run.duration.total_seconds() for run in runs if run.duration]
    max_seconds = max([*durations, 0.0]) or 1.0
    max_changes = max(run_changes(run) for run in runs) or 1
    bars, dots = [], []
    for index, run in enumerate(runs):
        seconds = run.duration.total_seconds() if run.duration else 0.0
        bar_h = max(1.0, plot * seconds / max_seconds)
        x = index * slot
        bars.append(
            (
                f"{x + slot * 0.15:.1f}",
                f"{top + plot - bar_h:.1f}",
                f"{slot * 0.7:.1f}",
                f"{bar_h:.1f}",
                f"status-{run.status}",
                f"{run.started_at:%Y-%m-%d %H:%M}: {seconds:.1f} s, {run.get_status_display()}",
            )
        )
        changes = run_changes(run)
        dots.append(
            (
                f"{x + slot / 2:.1f}",
                f"{top + plot - plot * changes / max_changes:.1f}",
                f"{run.started_at:%Y-%m-%d %H:%M}: {changes} changes",
            )
        )
    return format_html(
        '<svg class="history-chart" viewBox="0 0 {w} {h}" width="100%" height="{h}" '
        'role="img" aria-label="Duration and changes of the last {n} runs">'
        '<text x="0" y="12" class="legend">▮ duration (max {max_s} s)</text>'
        '<text x="{w}" y="12" text-anchor="end" class="legend">● changes (max {max_c})</text>'
        '<line x1="0" y1="{base}" x2="{w}" y2="{base}" class="axis"/>'
        "{bars}{dots}"
        '<text x="0" y="{h}" class="legend">older</text>'
        '<text x="{w}" y="{h}" text-anchor="end" class="legend">newer</text>'
        "</svg>",
        w=width,
        h=height,
        n=len(runs),
        max_s=f"{max_seconds:.1f}",
        max_c=max_changes,
        base=top + plot,
        bars=format_html_join(
            "",
            '<rect x="{}" y="{}" width="{}" height="{}" class="bar {}"><title>{}</title></rect>',
            bars,
        ),
        dots=format_html_join(
            "", '<circle cx="{}" cy="{}" r="3.5" class="dot"><title>{}</title></circle>', dots
        ),
    )
