"""The protocol between PID 1 and a capsule runtime (exo_init/runtimes/): defined once, here.

A runtime capsule (`runtime` other than `exec` in the manifest) runs `PYTHON -m PROGRAM` instead of
an argv. PID 1's launch plan (exo_init/pid1/plan.py) gives it one environment variable, `ENV_CONFIG`,
holding a `RuntimeConfig` as JSON: which runtime, the capsule's name, its runtime section (e.g. the
wasm module and budgets), its grants (the capsule's `capabilities`, from which the runtime builds
its capability import table) and its state directory (writable, per capsule: compiled-module
caches and the like).

Back to PID 1, over sd_notify (`$NOTIFY_SOCKET`, which every runtime capsule gets):

* `READY=1` once the program is loaded and linked (readiness kind `notify`);
* `EXO_METRICS=` a JSON object of figures against budgets, `{"fuel": {"value": 1200, "limit":
  1000000, "unit": "count"}, ...}` (`Metric`): the runner keeps the last one and `exoctl status`
  and the dashboard show it. Generic on purpose: WebAssembly's fuel and linear memory, and a
  CRUSH VM's gas, arena and checkpoint age, are all a value, an optional limit and a unit;
* `EXO_FAILURE=` one line naming what ended the run and the budget involved, also sent as
  `STATUS=` and printed to the capsule log (the diagnostic sink).

A deterministic failure (out of fuel, a trap, an import the capsule was not granted, a module that
does not load) would fail the same way again: the runtime exits with `EXIT_DETERMINISTIC`, and the
runner makes the capsule `failed` with that line as its reason and does not restart it, whatever
its restart policy. Any other exit (the wall-clock deadline included: it depends on the machine's
load) is an ordinary failure, restarted by the policy.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

TYPE_CHECKING = False  # (typing itself is not imported at run time: PID 1 imports this module and does not carry it)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

ENV_CONFIG = "EXO_RUNTIME"          # the RuntimeConfig, as JSON
EXIT_DETERMINISTIC = 65             # sysexits' EX_DATAERR: the input (the module) is what fails, and will again
NOTIFY_METRICS = "EXO_METRICS"
NOTIFY_FAILURE = "EXO_FAILURE"

UNITS = ("count", "bytes", "seconds")
METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_METRICS = 16
MAX_LINE = 400                      # a failure line is one line of at most this many characters


class ProtocolError(ValueError):
    """A runtime message or configuration that does not follow this protocol."""


@dataclass(frozen=True)
class Metric:
    value: float
    limit: float | None = None      # the budget it is measured against (None: none)
    unit: str = "count"             # one of UNITS

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "limit": self.limit, "unit": self.unit}


def _number(value: Any, what: str) -> float:
    try:
        ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and value >= 0
    except OverflowError:  # an int too large for a float (JSON allows 4300 digits)
        ok = False
    if not ok:
        raise ProtocolError(f"{what}: expected a finite number >= 0, got {str(value)[:40]}")
    return float(value) if isinstance(value, float) else int(value)


def parse_metrics(text: str) -> dict[str, Metric]:
    """An `EXO_METRICS=` value -> {name: Metric}; ProtocolError if it is not one (PID 1 keeps nothing
    of a bad message: a capsule cannot put arbitrary data into its status)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("not JSON") from None
    if not isinstance(doc, dict) or len(doc) > MAX_METRICS:
        raise ProtocolError(f"expected an object of at most {MAX_METRICS} metrics")
    out: dict[str, Metric] = {}
    for name, raw in doc.items():
        if not METRIC_NAME.fullmatch(name) or not isinstance(raw, dict) or set(raw) - {"value", "limit", "unit"}:
            raise ProtocolError(f"metric {name[:40]!r}: expected a name and {{value, limit, unit}}")
        unit = raw.get("unit", "count")
        if unit not in UNITS:
            raise ProtocolError(f"metric {name}: unit must be one of {', '.join(UNITS)}")
        limit = raw.get("limit")
        out[name] = Metric(_number(raw.get("value"), name), None if limit is None else _number(limit, name), unit)
    return out


def metrics_message(metrics: Mapping[str, Metric]) -> str:
    return json.dumps({name: m.to_json() for name, m in metrics.items()}, separators=(",", ":"))


def one_line(text: str) -> str:
    """`text` as a failure line: one line, printable, at most MAX_LINE characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_LINE else flat[: MAX_LINE - 3] + "..."


def _count(n: float) -> str:
    for unit, size in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _bytes(n: float) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}B"


def _seconds(s: float) -> str:
    return f"{s:.3g}s"


def metric_text(name: str, m: Metric) -> str:
    """`fuel 1.2M/1G`, `memory 64K/16M`, `checkpoint_age 3.2s`: how people see a metric."""
    show = {"count": _count, "bytes": _bytes, "seconds": _seconds}[m.unit]
    return f"{name} {show(m.value)}" + (f"/{show(m.limit)}" if m.limit is not None else "")


def metrics_text(metrics: Mapping[str, Any]) -> str:
    """The metrics of a status document (name -> {value, limit, unit}) in one short line; "" if
    there are none (or they are not well-formed: a display never fails on them)."""
    try:
        parsed = parse_metrics(json.dumps(dict(metrics)))
    except (ProtocolError, TypeError):
        return ""
    return ", ".join(metric_text(name, m) for name, m in parsed.items())


@dataclass(frozen=True)
class RuntimeConfig:
    """What PID 1 tells a runtime program (the `ENV_CONFIG` variable)."""

    runtime: str                                   # "wasm", ...
    capsule: str                                   # the capsule's name
    options: Mapping[str, Any]                     # its runtime section (the manifest's `wasm`, ...)
    grants: Mapping[str, Any] = field(default_factory=dict)  # its capabilities, as the manifest has them
    state_dir: str | None = None                   # writable and private to the capsule (None: none)

    def to_json(self) -> str:
        return json.dumps({"version": 1, "runtime": self.runtime, "capsule": self.capsule,
                           "options": dict(self.options), "grants": dict(self.grants), "state_dir": self.state_dir},
                          sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RuntimeConfig:
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ProtocolError(f"${ENV_CONFIG} is not JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ProtocolError(f"${ENV_CONFIG}: expected a version 1 runtime configuration")
        runtime, capsule, options, grants = (doc.get(k) for k in ("runtime", "capsule", "options", "grants"))
        state_dir = doc.get("state_dir")
        if not (isinstance(runtime, str) and isinstance(capsule, str) and isinstance(options, dict)
                and isinstance(grants, dict) and (state_dir is None or isinstance(state_dir, str))):
            raise ProtocolError(f"${ENV_CONFIG}: runtime, capsule, options, grants or state_dir missing or mistyped")
        return cls(runtime=runtime, capsule=capsule, options=options, grants=grants, state_dir=state_dir)
