"""Logging for exo_init: short lines on the console, everything (with tracebacks) in a file.

The console never shows a Python traceback: exceptions are summarised in one line there and
written in full to the log file. A small logger of its own, with the calls of the standard
library's (`log.info("%s", x)`, `exc_info=`, `log.exception`): the `logging` package (records,
handlers, locks, and what it imports) was a megabyte of PID 1's memory and time at every line.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 does not carry it)
if TYPE_CHECKING:
    from typing import NoReturn, TextIO

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
LEVEL_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR"}
LOGFILE_BYTES = 1 << 20   # exo_init.log is rotated at this size (/run is RAM) ...
LOGFILE_KEEP = 3          # ... keeping exo_init.log.1 .. .3


class LogFile:
    """A log file rotated at LOGFILE_BYTES: FILE -> FILE.1 -> ... -> FILE.{LOGFILE_KEEP}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "ab", buffering=0)  # noqa: SIM115 (open for PID 1's life)
        self.size = self.f.tell()

    def write(self, record: str) -> None:
        data = record.encode("utf-8", "backslashreplace")
        if self.size and self.size + len(data) > LOGFILE_BYTES:
            self.rotate()
        self.f.write(data)
        self.size += len(data)

    def rotate(self) -> None:
        self.f.close()
        for i in range(LOGFILE_KEEP - 1, 0, -1):
            old = Path(f"{self.path}.{i}")
            if old.exists():
                os.replace(old, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")
        self.f = open(self.path, "ab", buffering=0)  # noqa: SIM115 (open for PID 1's life)
        self.size = 0

    def close(self) -> None:
        self.f.close()


class Log:
    def __init__(self) -> None:
        self.console: TextIO | None = None
        self.console_level = INFO
        self.files: list[LogFile] = []

    def _emit(self, level: int, msg: str, args: tuple[object, ...], exc: BaseException | None) -> None:
        text = msg % args if args else msg
        if self.console is not None and level >= self.console_level:
            line = text if exc is None else f"{text}: {type(exc).__name__}: {exc}"
            prefix = "" if level < WARNING else f"{LEVEL_NAMES[level].lower()}: "
            try:
                self.console.write(f"exo_init: {prefix}{line}\n")
                self.console.flush()
            except (OSError, ValueError):
                pass
        if not self.files:
            return
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"
        record = f"{stamp} {LEVEL_NAMES[level]} {text}\n"
        if exc is not None:
            import traceback  # noqa: PLC0415 (only for an exception)

            record += "".join(traceback.format_exception(exc))
        for f in self.files:
            try:
                f.write(record)
            except (OSError, ValueError):
                pass

    def debug(self, msg: str, *args: object) -> None:
        self._emit(DEBUG, msg, args, None)

    def info(self, msg: str, *args: object) -> None:
        self._emit(INFO, msg, args, None)

    def warning(self, msg: str, *args: object) -> None:
        self._emit(WARNING, msg, args, None)

    def error(self, msg: str, *args: object, exc_info: BaseException | None = None) -> None:
        self._emit(ERROR, msg, args, exc_info)

    def exception(self, msg: str, *args: object) -> None:
        """An error with the exception being handled."""
        self._emit(ERROR, msg, args, sys.exc_info()[1])


log = Log()


def setup_logging(console: TextIO, logfile: Path | None, debug: bool = False) -> None:
    log.console = console
    log.console_level = DEBUG if debug else INFO
    log.files = []
    if logfile is not None:
        add_logfile(logfile)


def add_logfile(logfile: Path) -> None:
    try:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        log.files.append(LogFile(logfile))
    except OSError as e:
        log.warning("cannot open log file %s: %s", logfile, e.strerror)


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
