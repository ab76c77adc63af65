"""manage.py serve: the admin and the task queue together, until Ctrl-C or SIGTERM.

What `make run` (runserver and one qcluster) and `make stack` (gunicorn and two qclusters)
run. Stopping stops every process they started, within --stop-timeout seconds
(config/processes.py says how).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.processes import WEB_SERVERS, entra_sync_processes, run_until_stopped


class Command(BaseCommand):
    help = (
        "Serve the admin and run qcluster workers until Ctrl-C or SIGTERM, then stop them all "
        "within --stop-timeout seconds."
    )
    # The children run Django's checks themselves; this process only supervises them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--web",
            choices=WEB_SERVERS,
            default="gunicorn",
            help="runserver (development, DEBUG on unless set) or gunicorn (gunicorn.conf.py)",
        )
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT to serve on")
        parser.add_argument(
            "--qclusters",
            type=int,
            default=1,
            help="qcluster processes, each with Q_WORKERS workers (several need REDIS_URL to "
            "share the queue across machines; on one machine the database broker is enough)",
        )
        parser.add_argument(
            "--stop-timeout",
            type=float,
            default=5.0,
            help="Seconds to let the processes stop cleanly before killing them",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["qclusters"] < 0:
            raise CommandError("--qclusters must be 0 or more.")
        specs = entra_sync_processes(
            web=options["web"],
            bind=options["bind"],
            qclusters=options["qclusters"],
            environ=os.environ,
        )
        names = ", ".join(spec.name for spec in specs)
        self.stderr.write(f"Starting {names}; Ctrl-C stops them all.")
        signalled = run_until_stopped(
            specs,
            cwd=settings.BASE_DIR,
            stop_timeout=options["stop_timeout"],
            report=self.stderr.write,
        )
        if not signalled:
            raise CommandError("A process stopped by itself (see its output above); stopped all.")
        self.stderr.write("Stopped.")
