"""Logging for exo_init: short lines on the console, everything (with tracebacks) in a file.

The console never shows a Python traceback: exceptions are summarised in one line there and
written in full to the log file.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path
from typing import NoReturn, TextIO

log = logging.getLogger("exo_init")
LOGFILE_BYTES = 1 << 20   # exo_init.log is rotated at this size (/run is RAM) ...
LOGFILE_KEEP = 3          # ... keeping exo_init.log.1 .. .3


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            msg = f"{msg}: {type(exc).__name__}: {exc}"
        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"exo_init: {prefix}{msg}"


def setup_logging(console: TextIO, logfile: Path | None, debug: bool = False) -> None:
    log.handlers.clear()
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler = logging.StreamHandler(console)
    handler.setFormatter(ConsoleFormatter())
    handler.setLevel(logging.DEBUG if debug else logging.INFO)
    log.addHandler(handler)
    if logfile is not None:
        add_logfile(logfile)


def add_logfile(logfile: Path) -> None:
    try:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.handlers.RotatingFileHandler(logfile, maxBytes=LOGFILE_BYTES, backupCount=LOGFILE_KEEP,
                                                  encoding="utf-8")
    except OSError as e:
        log.warning("cannot open log file %s: %s", logfile, e.strerror)
        return
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    fh.setLevel(logging.DEBUG)
    log.addHandler(fh)


class Throttle:
    """At most one log line per `interval` seconds for one kind of event (a hostile client can
    cause an event per request; the console must not get a line per request)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = float("-inf")
        self.suppressed = 0

    def ready(self, now: float) -> int | None:
        """None: stay quiet (counted). Otherwise a line may be written now; the number is how many
        were suppressed since the last one."""
        if now - self.last < self.interval:
            self.suppressed += 1
            return None
        self.last, suppressed, self.suppressed = now, self.suppressed, 0
        return suppressed


def status_line(console: TextIO, ok: bool | None, word: str, name: str, detail: str = "") -> None:
    """Boot-console status, e.g. `[  OK  ] ready    sentry`."""
    tag = {True: "[  OK  ]", False: "[FAILED]", None: "[ INFO ]"}[ok]
    text = f"{tag} {word:<8} {name}" + (f": {detail}" if detail else "")
    try:
        console.write(text + "\n")
        console.flush()
    except (OSError, ValueError):
        pass


def die(message: str, hint: str = "") -> NoReturn:
    """For command-line tools (not PID 1): one clear error, an optional hint, exit 1."""
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    sys.exit(1)


def timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
