"""The contract every entra-sync command keeps with the shell (or cron job) that runs it.

- Standard output carries the command's output only (JSON or CSV a script parses): anything
  else that writes to `sys.stdout` meanwhile (Django's console e-mail backend sending an
  alert, a stray print) goes to the command's standard error instead.
- Standard error carries the command's own lines, never a traceback: bad input is one line and
  exit status 1, a malformed command line one line and 2, and an unexpected error one line
  naming its class, while its traceback goes to the log.
- Log records are not echoed on standard error unless `-v 2`: the command says what happened
  in its own words, once. Log handlers that write elsewhere (a file, syslog) get every record.
- A reader that stops reading (`| head -1`) ends the command quietly, with no line at all and
  exit status 141, as a Unix tool killed by SIGPIPE: that is not an error of the command.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, redirect_stdout
from typing import Any, NoReturn

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    SystemCheckError,
)

logger = logging.getLogger("directories.commands")

EXIT_FAILED = 1
EXIT_USAGE = 2  # argparse's code for a malformed command line
EXIT_READER_GONE = 128 + signal.SIGPIPE  # what a shell shows for a tool killed by SIGPIPE


def one_line(text: str) -> str:
    """Text as a single line: Microsoft's and the database's messages can hold line breaks."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def internal_error_line(subject: str, exc: BaseException) -> str:
    """What a person is told about a bug: its class and message, and where the rest is."""
    message = one_line(str(exc))[:300]
    name = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return (
        f"{subject}: internal error ({name}); the traceback is in the server log "
        "(-v 2 shows it here)."
    )


class OneLineErrorParser(CommandParser):
    """A malformed command line in one line (`prog: error: …`), not argparse's usage block."""

    def error(self, message: str) -> Any:
        if self.called_from_command_line:
            self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see --help)\n")
        return super().error(message)  # called from code: raises CommandError


def _writes_to_stderr(handler: logging.Handler) -> bool:
    return (
        isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
        and handler.stream in (sys.stderr, sys.__stderr__)
    )


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def logs_kept_off_stderr() -> Iterator[None]:
    """Silence the log handlers that write to this process's standard error, for a while.

    Every handler is checked (the root's, named loggers', the last-resort one), so a record
    from any library stays off the command's standard error, from any thread.
    """
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {
        handler
        for each in loggers
        if isinstance(each, logging.Logger)
        for handler in each.handlers
        if _writes_to_stderr(handler)
    }
    if logging.lastResort is not None and _writes_to_stderr(logging.lastResort):
        handlers.add(logging.lastResort)
    drop = _DropAll()
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)


class EntraSyncCommand(BaseCommand):
    """A command that keeps the contract in this module's docstring."""

    # A long-running command whose log lines are part of what it shows (graph_emulator, demo)
    # turns this off.
    quiet_logs = True

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OneLineErrorParser  # the same parser; only `error` differs
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        stray_output = options.get("stderr") or sys.stderr
        quiet: AbstractContextManager[None] = (
            logs_kept_off_stderr()
            if self.quiet_logs and options.get("verbosity", 1) < 2
            else nullcontext()
        )
        with redirect_stdout(stray_output), quiet:
            try:
                output: str | None = super().execute(*args, **options)
                self.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
            except BrokenPipeError:
                self._reader_gone()
            except SystemCheckError:
                raise  # Django lays these out over several lines on purpose
            except CommandError as exc:
                if one_line(str(exc)) != str(exc):
                    raise CommandError(one_line(str(exc)), returncode=exc.returncode) from exc
                raise
            except Exception as exc:
                if options.get("traceback"):
                    raise
                logger.exception("manage.py %s failed", self.command_name)
                raise CommandError(
                    internal_error_line(self.command_name, exc), returncode=EXIT_FAILED
                ) from exc
        return output

    def _reader_gone(self) -> NoReturn:
        """Whoever read standard output stopped (`| head -1`): stop quietly, as Unix tools do.

        Standard output is pointed at /dev/null first, so that Python's own flush of what is
        still buffered, at exit, does not print "Exception ignored … BrokenPipeError".
        Any BrokenPipeError counts: one of a socket would have to arrive unwrapped, and
        requests and the database drivers wrap theirs in their own errors.
        """
        try:
            fd = self.stdout.fileno()  # OutputWrapper hands it to the stream it wraps
        except (AttributeError, OSError, ValueError):
            fd = None  # not a file (call_command's StringIO): nothing is left to flush
        if fd is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        raise SystemExit(EXIT_READER_GONE)

    @property
    def command_name(self) -> str:
        return self.__class__.__module__.rsplit(".", 1)[-1]
