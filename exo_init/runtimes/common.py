"""The runtime side of the PID 1 <-> runtime protocol (exo_init/lib/runtime.py), for every runtime.

`Reporter` sends readiness, status, figures against budgets (rate-limited) and the failure line;
`Failure` is how a runtime's code says a run ended badly (deterministic or not); `finish` turns one
into the exit code PID 1 understands, after saying why on the log, in STATUS= and in EXO_FAILURE=.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping

from exo_init.lib.notify import sd_notify
from exo_init.lib.runtime import (
    ENV_CONFIG,
    EXIT_DETERMINISTIC,
    NOTIFY_FAILURE,
    NOTIFY_METRICS,
    Metric,
    ProtocolError,
    RuntimeConfig,
    metrics_message,
    one_line,
)

METRICS_INTERVAL = 1.0   # seconds between two EXO_METRICS messages while running
EXIT_FAILED = 1          # a failure that is not deterministic (restarted by the capsule's policy)


class Failure(Exception):
    """A run that ends badly: `line` says what and which budget (one line); `deterministic` says
    whether running again would end the same way (then the capsule is not restarted)."""

    def __init__(self, line: str, deterministic: bool = True) -> None:
        super().__init__(line)
        self.line = one_line(line)
        self.deterministic = deterministic


def read_config(runtime: str) -> RuntimeConfig:
    """This program's configuration from PID 1; a deterministic Failure if it is missing or wrong."""
    text = os.environ.get(ENV_CONFIG)
    if not text:
        raise Failure(f"{runtime} runtime: ${ENV_CONFIG} is not set (exo_init starts runtime capsules with it)")
    try:
        config = RuntimeConfig.from_json(text)
    except ProtocolError as e:
        raise Failure(f"{runtime} runtime: {e}") from None
    if config.runtime != runtime:
        raise Failure(f"{runtime} runtime: started for a {config.runtime!r} capsule")
    return config


class Reporter:
    """sd_notify to PID 1 (nothing when there is no $NOTIFY_SOCKET: a runtime also runs by hand)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_metrics = -METRICS_INTERVAL

    def send(self, message: str) -> None:
        try:
            sd_notify(message)
        except OSError as e:  # PID 1 gone or the socket full: the run goes on, the log still says it
            print(f"runtime: sd_notify failed: {e.strerror or e}", file=sys.stderr, flush=True)

    def status(self, text: str) -> None:
        self.send(f"STATUS={one_line(text)}")

    def ready(self, text: str, metrics: Mapping[str, Metric]) -> None:
        self.last_metrics = self.clock()
        self.send(f"READY=1\nSTATUS={one_line(text)}\n{NOTIFY_METRICS}={metrics_message(metrics)}")

    def metrics(self, metrics: Callable[[], Mapping[str, Metric]], force: bool = False) -> None:
        """The current figures, at most every METRICS_INTERVAL unless `force` (`metrics` is only
        called when they are sent)."""
        now = self.clock()
        if force or now - self.last_metrics >= METRICS_INTERVAL:
            self.last_metrics = now
            self.send(f"{NOTIFY_METRICS}={metrics_message(metrics())}")


def finish(reporter: Reporter, failure: Failure | None, metrics: Mapping[str, Metric], done: str = "") -> int:
    """Say how the run ended (log, STATUS=, EXO_FAILURE=, the last figures); the exit code."""
    if failure is None:
        reporter.send(f"STATUS={one_line(done)}\n{NOTIFY_METRICS}={metrics_message(metrics)}")
        return 0
    print(failure.line, file=sys.stderr, flush=True)  # the diagnostic sink: the capsule log's last line
    reporter.send(f"STATUS={failure.line}\n{NOTIFY_FAILURE}={failure.line}\n{NOTIFY_METRICS}={metrics_message(metrics)}")
    return EXIT_DETERMINISTIC if failure.deterministic else EXIT_FAILED
