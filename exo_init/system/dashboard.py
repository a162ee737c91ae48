"""The Sentry dashboard: a Wayland client (pycairo into wl_shm) showing every capsule with its
state colour, restarts, CPU and memory against its quota, a history graph of CPU and memory per
capsule, the runtime capsules' budgets (a WebAssembly capsule's fuel used against `wasm.fuel`
and its linear memory against `wasm.memory_max`: the `metrics` of its status), the recent Sentry
events and the current generation; redrawn every second from PID 1's control socket (read-only
operations: status, info, events, logs; `Collector` says how little it asks for) and the capsules'
cgroup files (read-only).

It can be acted on: a capsule is selected with the arrow keys or a click on its row; the panel on
the right shows its details and last log lines, and start / stop / restart / freeze / thaw go to
PID 1 by a click on their buttons or their keys (s, t, r, f, u; key codes of a US layout). PID 1
refuses them unless the dashboard capsule is granted `capabilities.manage`, and records each one
it carries out in the event log (the events list below shows it).

Data (`Snapshot`, `collect`, `History`) is separate from drawing (`render`, cairo only) and from
the Wayland plumbing (`Window`). The layout is fixed so that a test can find things: capsule row
`i` has its state swatch at (SWATCH_X .. SWATCH_X + SWATCH_W, row_top(i) + 4 ..); while the Sentry
marks a capsule degraded (a network partition), the header shows a WARNING banner at BANNER.
"""

from __future__ import annotations

import argparse
import json
import math
import mmap
import os
import selectors
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from exo_init.client.control import call
from exo_init.lib.cgroupfmt import CgroupFiles, flat_keyed
from exo_init.lib.errors import ApiError
from exo_init.lib.runtime import ProtocolError, metric_text, parse_metrics
from exo_init.lib.units import fmt_bytes

CONTROL = Path("/run/exosphere/control.sock")
TITLE = "Exosphere Sentry"

# Layout (pixels) -----------------------------------------------------------------------------------
HEADER_H = 48
TABLE_TOP = 64          # first row's top
ROW_H = 26
SWATCH_X, SWATCH_W, SWATCH_H = 16, 20, 18
TABLE_W = 600           # the table's columns end here; the graphs are to the right
BUDGET_H = 18           # a runtime capsule's line in the budgets list below the table
HISTORY = 120           # samples kept per capsule (two minutes at 1 Hz)
BUTTON_W, BUTTON_H, BUTTON_GAP = 70, 22, 6
LOG_LINES = 6           # of the selected capsule, in its panel
FULL_EVERY = 5.0        # seconds: the rows' statuses and the recent events are read again at least this often
SELECTED = (44, 54, 76)  # the selected row's background
BANNER = (360, 8, 320, 32)  # x, y, w, h: the header's warning (degraded capsules: a network partition)

# Colours (R, G, B), 0-255 -----------------------------------------------------------------------------
BACKGROUND = (24, 28, 36)
HEADER = (36, 52, 88)
TEXT = (230, 233, 240)
DIM = (150, 156, 170)
WARNING = (240, 150, 30)  # the banner's background
STATE_COLOURS: Mapping[str, tuple[int, int, int]] = {
    "ready": (46, 204, 64),
    "starting": (255, 200, 0),
    "stopping": (255, 140, 0),
    "stopped": (128, 128, 128),
    "exited": (80, 140, 220),
    "backoff": (200, 60, 200),
    "failed": (220, 40, 40),
}
UNKNOWN_STATE = (255, 255, 255)
PALETTE = ((102, 194, 255), (255, 159, 64), (153, 230, 110), (240, 98, 146), (255, 214, 90),
           (180, 140, 255), (90, 220, 200), (255, 120, 90))


def row_top(i: int) -> int:
    return TABLE_TOP + i * ROW_H


def rows_fitting(height: int) -> int:
    """How many table rows a window `height` pixels high shows (the rest are cut off)."""
    return max(0, (height - TABLE_TOP) // ROW_H)


def budget_top(rows: int, k: int) -> int:
    """The top of the k-th runtime capsule's line in the budgets list, below `rows` table rows."""
    return row_top(rows) + 24 + k * BUDGET_H


def swatch_centre(i: int) -> tuple[int, int]:
    return SWATCH_X + SWATCH_W // 2, row_top(i) + 4 + SWATCH_H // 2


def series_colour(name: str) -> tuple[int, int, int]:
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


@dataclass(frozen=True)
class Panels:
    """Where the right column's parts go for a window of `width` x `height`."""
    x: int
    w: int
    graph_h: int
    cpu_top: int
    memory_top: int
    details_top: int
    events_top: int


def panels(width: int, height: int) -> Panels:
    x, w = TABLE_W + 16, max(200, width - TABLE_W - 32)
    gh = max(60, (height - TABLE_TOP - 40) // 4)
    cpu = TABLE_TOP
    memory = cpu + gh + 34
    details = memory + gh + 40
    return Panels(x, w, gh, cpu, memory, details, max(details + 200, height - 8 * 14 - 26))


# action -> its key (the letter, and its evdev code as wl_keyboard.key sends it on a US layout)
ACTION_KEYS = {"start": ("s", 31), "stop": ("t", 20), "restart": ("r", 19), "freeze": ("f", 33), "thaw": ("u", 22)}
ACTIONS = tuple(ACTION_KEYS)
KEY_ACTIONS = {code: op for op, (_letter, code) in ACTION_KEYS.items()}
KEY_UP, KEY_DOWN = 103, 108
BTN_LEFT = 0x110


def action_buttons(width: int, height: int) -> list[tuple[str, int, int]]:
    """(action, x, y) of each button (BUTTON_W x BUTTON_H) in the selected capsule's panel."""
    p = panels(width, height)
    y = p.details_top + 58
    return [(op, p.x + k * (BUTTON_W + BUTTON_GAP), y) for k, op in enumerate(ACTIONS)]


def row_at(y: float) -> int | None:
    """The table row under y (a click), or None."""
    i = int((y - TABLE_TOP) // ROW_H)
    return i if y >= TABLE_TOP and i >= 0 else None


# Data ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CapsuleRow:
    name: str
    state: str
    restarts: int
    cpu_percent: float          # of one CPU
    cpu_quota: float | None     # percent of one CPU, None: no quota
    memory: int                 # bytes
    memory_max: int | None      # bytes, None: no quota
    detail: str = ""
    budgets: str = ""           # a runtime capsule's figures against its budgets ("fuel 1.2M/1G, memory 64K/16M")
    budget: float | None = None  # the budget closest to exhaustion, as a fraction used (None: none)


@dataclass(frozen=True)
class Snapshot:
    hostname: str
    generation: int | None
    capsules: tuple[CapsuleRow, ...]
    events: tuple[str, ...]
    time: float
    error: str = ""
    selected: str | None = None       # the capsule whose panel is shown
    logs: tuple[str, ...] = ()        # its last log lines
    message: str = ""                 # the outcome of the last action
    degraded: tuple[tuple[str, str], ...] = ()  # capsules the Sentry marked degraded, and why (PID 1's info)


@dataclass
class Controls:
    """The dashboard's input: the selected capsule and what the last action said."""
    control: Path
    selected: str | None = None
    message: str = ""
    actions: list[str] = field(default_factory=list)  # carried out (for the figures)

    def select(self, names: list[str], step: int = 0, index: int | None = None) -> None:
        if not names:
            return
        if index is not None:
            if 0 <= index < len(names):
                self.selected = names[index]
            return
        i = names.index(self.selected) if self.selected in names else (-1 if step > 0 else 0)
        self.selected = names[max(0, min(len(names) - 1, i + step))]

    def act(self, op: str) -> None:
        """Ask PID 1 for `op` on the selected capsule; the answer goes to `message`."""
        if self.selected is None:
            self.message = f"{op}: select a capsule first"
            return
        try:
            st = call(self.control, {"op": op, "name": self.selected}, timeout=10)
            self.message = f"{op} {self.selected}: done, now {st.get('state', '?')}"
            self.actions.append(op)
        except ApiError as e:
            self.message = f"{op} {self.selected}: {e.name}: {e.message}"[:120]
        except (OSError, ValueError) as e:
            self.message = f"{op} {self.selected}: control socket: {e}"[:120]

    def key(self, code: int, names: list[str]) -> bool:
        """A key press; True when it changed something (redraw now)."""
        if code in (KEY_UP, KEY_DOWN):
            self.select(names, -1 if code == KEY_UP else 1)
            return True
        if code in KEY_ACTIONS:
            self.act(KEY_ACTIONS[code])
            return True
        return False

    def click(self, x: float, y: float, width: int, height: int, names: list[str]) -> bool:
        for op, bx, by in action_buttons(width, height):
            if bx <= x < bx + BUTTON_W and by <= y < by + BUTTON_H:
                self.act(op)
                return True
        row = row_at(y)
        if x < TABLE_W and row is not None and row < len(names):
            self.select(names, index=row)
            return True
        return False


def parse_cpu_max(value: str) -> float | None:
    """cgroup cpu.max ("20000 100000" / "max 100000") -> percent of one CPU, None for max."""
    parts = value.split()
    if not parts or parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) > 1 else 100000
    return 100.0 * int(parts[0]) / period


def budgets_of(status: Mapping[str, Any]) -> tuple[str, float | None]:
    """A runtime capsule's metrics as one line, and the largest fraction of a limited one used."""
    try:
        metrics = parse_metrics(json.dumps(status.get("metrics") or {}))
    except (ProtocolError, TypeError, ValueError):
        return "", None
    fractions = [m.value / m.limit for m in metrics.values() if m.limit]
    return ", ".join(metric_text(n, m) for n, m in metrics.items()), max(fractions, default=None)


def capsule_row(status: Mapping[str, Any]) -> CapsuleRow:
    cg = status.get("cgroup") or {}
    mem_max = str(cg.get("memory_max", "max"))
    budgets, budget = budgets_of(status)
    return CapsuleRow(
        name=str(status["name"]), state=str(status["state"]), restarts=int(status.get("restarts") or 0),
        cpu_percent=float(status.get("cpu_percent") or 0.0),
        cpu_quota=parse_cpu_max(str(cg.get("cpu_max", "max"))),
        memory=int(cg.get("memory_current") or 0),
        memory_max=None if mem_max == "max" else int(mem_max),
        detail=f"degraded: {status['degraded']}" if status.get("degraded") else
        str(status.get("status_text") or status.get("reason") or ""),
        budgets=budgets, budget=budget)


def banner_lines(snap: Snapshot) -> tuple[str, ...]:
    """The header's warning, two lines: every degraded capsule, whether or not its row is on
    screen, and why (a network partition: the network capsule's reason, which says more than the
    plain "network partition" of the capsules it degraded); () when there is none."""
    if not snap.degraded:
        return ()
    reasons = list(dict.fromkeys(why for _, why in snap.degraded))
    reasons = [r for r in reasons if not any(other != r and other.startswith(r) for other in reasons)]
    return "degraded: " + ", ".join(name for name, _ in snap.degraded), "; ".join(reasons)


def event_line(record: Mapping[str, Any]) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(float(record.get("time", 0))))
    kind = record.get("anomaly") or record.get("kind") or "?"
    what = " ".join(str(record[k]) for k in ("capsule", "action", "generation", "reason") if record.get(k) is not None)
    return f"{when}  {kind}  {what}"[:90]


def recent_events(control: Path) -> tuple[str, ...]:
    """The last Sentry and PID 1 records of the event log, one line each; () if PID 1 did not say."""
    try:
        return tuple(event_line(r) for r in call(control, {"op": "events", "lines": 8}, timeout=5))
    except (OSError, ValueError, ApiError):
        return ()


def log_lines(control: Path, selected: str | None) -> tuple[str, ...]:
    """The last LOG_LINES lines of the `selected` capsule's log (none selected: ())."""
    if selected is None:
        return ()
    try:
        return tuple(str(line) for line in call(control, {"op": "logs", "name": selected, "lines": LOG_LINES},
                                                timeout=5)["lines"])
    except (OSError, ValueError, ApiError, KeyError, TypeError) as e:
        return (f"(logs: {e})",)


def degraded_marks(info: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    degraded = info.get("degraded")
    return tuple(sorted((str(k), str(v)) for k, v in degraded.items())) if isinstance(degraded, dict) else ()


def collect(control: Path, hostname_fallback: str = "exosphere", names: list[str] | None = None,
            selected: str | None = None) -> Snapshot:
    """One snapshot from PID 1's control socket (read-only operations): every capsule, or only
    `names`, with their figures (PID 1 reads a dozen cgroup files for each), the recent events,
    and the last log lines of the `selected` capsule."""
    try:
        info = call(control, {"op": "info"}, timeout=5)
        request: dict[str, Any] = {"op": "status"} if names is None else {"op": "status", "names": names}
        rows = tuple(capsule_row(s) for s in call(control, request, timeout=5))
    except (OSError, ValueError, ApiError) as e:
        return Snapshot(hostname_fallback, None, (), (), time.time(), error=f"control socket: {e}")
    return Snapshot(str(info.get("hostname") or hostname_fallback), info.get("generation"), rows,
                    recent_events(control), time.time(), selected=selected, logs=log_lines(control, selected),
                    degraded=degraded_marks(info))


class Collector:
    """Snapshots for a screen of `rows` rows at a small cost to PID 1: every request is work on
    its loop (in the TCG guest a request costs it 12-16 ms of CPU, `status` with the figures of a
    dozen capsules 70-100 ms, and a dashboard asking for those every second held it at 13.8 % of
    a CPU). A snapshot asks for `info` only, and:
    - the names of the capsules (no figures) when info's `capsule_set` changed;
    - the statuses of the rows on screen (no figures) and the recent events when info's `changes`
      (the events PID 1 published) moved, the rows changed, or FULL_EVERY passed (status texts,
      runtime budgets and the Sentry's records change without an event);
    - the figures (CPU time, memory) of the rows on screen, read from their cgroup files by the
      dashboard itself (a read-only grant of the capsules' cgroup tree: `files`); where it cannot
      read them, from PID 1 with the statuses, every time."""

    def __init__(self, control: Path, rows: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.control = control
        self.rows = rows
        self.clock = clock
        self.names: list[str] = []
        self.capsule_set: object = None
        self.changes: object = None
        self.statuses: dict[str, dict[str, Any]] = {}
        self.events: tuple[str, ...] = ()
        self.read_at = -math.inf
        self.files: CgroupFiles | None = None
        self.usage: dict[str, tuple[float, int]] = {}  # name -> (when, cpu.stat usage_usec): CPU %

    def snapshot(self, selected: str | None = None) -> Snapshot:
        try:
            info = call(self.control, {"op": "info"}, timeout=5)
            if info.get("capsule_set") != self.capsule_set or self.capsule_set is None:
                self.names = [str(s["name"]) for s in call(self.control, {"op": "status", "stats": False}, timeout=5)]
                self.capsule_set = info.get("capsule_set")
            self.files = readable_cgroups(info.get("cgroups"))
            shown = self.names[:self.rows]
            now = self.clock()
            if self.files is None or info.get("changes") != self.changes or list(self.statuses) != shown \
                    or now - self.read_at >= FULL_EVERY:
                request: dict[str, Any] = {"op": "status", "names": shown}
                if self.files is not None:
                    request["stats"] = False
                self.statuses = {str(s["name"]): self._quotas(s) for s in call(self.control, request, timeout=5)}
                self.changes, self.read_at = info.get("changes"), now
                self.events = recent_events(self.control)
        except (OSError, ValueError, ApiError) as e:
            return Snapshot("exosphere", None, (), (), time.time(), error=f"control socket: {e}")
        rows = tuple(capsule_row(self._figures(s, now)) for s in self.statuses.values())
        return Snapshot(str(info.get("hostname") or "exosphere"), info.get("generation"), rows, self.events,
                        time.time(), selected=selected, logs=log_lines(self.control, selected),
                        degraded=degraded_marks(info))

    def _quotas(self, status: dict[str, Any]) -> dict[str, Any]:
        """A status as PID 1 gave it, with the capsule's quotas from its cgroup files when the
        dashboard reads those itself (they change with the capsule's definition: read with it)."""
        if self.files is None:
            return status
        name = str(status["name"])
        return dict(status, cgroup={"memory_max": self.files.value(name, "memory.max"),
                                    "cpu_max": self.files.value(name, "cpu.max")})

    def _figures(self, status: dict[str, Any], now: float) -> dict[str, Any]:
        """The status with the figures read now: memory.current, and the CPU share since the
        previous snapshot from cpu.stat's usage_usec (0 at the first one)."""
        if self.files is None:
            return status
        name = str(status["name"])
        usage = flat_keyed(self.files.read(name, "cpu.stat") or "").get("usage_usec")
        memory = (self.files.read(name, "memory.current") or "").strip()
        before = self.usage.get(name)
        cpu = 0.0
        if usage is None:
            self.usage.pop(name, None)
        else:
            if before is not None and now > before[0] and usage >= before[1]:
                cpu = (usage - before[1]) / 1e6 / (now - before[0]) * 100
            self.usage[name] = (now, usage)
        return dict(status, cpu_percent=cpu, cgroup=dict(status.get("cgroup") or {},
                                                         memory_current=int(memory) if memory.isdigit() else 0))


def readable_cgroups(root: object) -> CgroupFiles | None:
    """The capsules' cgroup directories under PID 1's cgroup root (`info`'s cgroups), if this
    process can read them (the dashboard capsule's grant), else None."""
    if not isinstance(root, str) or not root:
        return None
    capsules = Path(root) / "capsules"
    return CgroupFiles(capsules) if os.access(capsules, os.R_OK | os.X_OK) else None


@dataclass
class History:
    cpu: dict[str, deque[float]] = field(default_factory=dict)
    memory: dict[str, deque[int]] = field(default_factory=dict)

    def add(self, snap: Snapshot) -> None:
        for row in snap.capsules:
            self.cpu.setdefault(row.name, deque(maxlen=HISTORY)).append(row.cpu_percent)
            self.memory.setdefault(row.name, deque(maxlen=HISTORY)).append(row.memory)


# Drawing (cairo) -----------------------------------------------------------------------------------

def _rgb(ctx: Any, colour: tuple[int, int, int]) -> None:
    ctx.set_source_rgb(colour[0] / 255, colour[1] / 255, colour[2] / 255)


def _bar(ctx: Any, x: int, y: int, w: int, h: int, fraction: float, colour: tuple[int, int, int]) -> None:  # noqa: PLR0917
    _rgb(ctx, (52, 58, 70))
    ctx.rectangle(x, y, w, h)
    ctx.fill()
    _rgb(ctx, colour)
    ctx.rectangle(x, y, round(w * max(0.0, min(1.0, fraction))), h)
    ctx.fill()


def _text(ctx: Any, x: float, y: float, text: str, colour: tuple[int, int, int] = TEXT, size: float = 13) -> None:  # noqa: PLR0917
    ctx.set_font_size(size)
    _rgb(ctx, colour)
    ctx.move_to(x, y)
    ctx.show_text(text)


def render(ctx: Any, snap: Snapshot, history: History, width: int, height: int, memory_total: int) -> None:  # noqa: PLR0917
    """Draw one dashboard frame on a cairo context (the whole `width` x `height` area)."""
    import cairo  # noqa: PLC0415  (the data half of this module is used where cairo is not)

    ctx.set_antialias(cairo.ANTIALIAS_DEFAULT)
    ctx.select_font_face("DejaVu Sans", cairo.FONT_SLANT_NORMAL, cairo.FONT_WEIGHT_NORMAL)
    _rgb(ctx, BACKGROUND)
    ctx.paint()
    _rgb(ctx, HEADER)
    ctx.rectangle(0, 0, width, HEADER_H)
    ctx.fill()
    gen = "-" if snap.generation is None else str(snap.generation)
    _text(ctx, 16, 31, f"{TITLE}  ·  {snap.hostname}", size=20)
    _text(ctx, width - 330, 31, f"generation {gen}   {time.strftime('%H:%M:%S', time.localtime(snap.time))}",
          size=16)
    banner = banner_lines(snap)
    if banner:
        _rgb(ctx, WARNING)
        ctx.rectangle(*BANNER)
        ctx.fill()
        for k, line in enumerate(banner):
            _text(ctx, BANNER[0] + 8, BANNER[1] + 13 + 14 * k, line[:52], BACKGROUND, 11)
    if snap.error:
        _text(ctx, 16, TABLE_TOP + 20, snap.error, STATE_COLOURS["failed"], size=15)
    # The table: swatch, name, state, restarts, CPU vs quota, memory vs quota.
    _text(ctx, 44, TABLE_TOP - 4, "capsule", DIM, 11)
    _text(ctx, 190, TABLE_TOP - 4, "state", DIM, 11)
    _text(ctx, 262, TABLE_TOP - 4, "rst", DIM, 11)
    _text(ctx, 300, TABLE_TOP - 4, "cpu / quota", DIM, 11)
    _text(ctx, 450, TABLE_TOP - 4, "memory / quota", DIM, 11)
    for i, row in enumerate(snap.capsules):
        top = row_top(i)
        if top + ROW_H > height:
            break
        if row.name == snap.selected:
            _rgb(ctx, SELECTED)
            ctx.rectangle(SWATCH_X + SWATCH_W + 2, top + 1, TABLE_W - SWATCH_X - SWATCH_W - 4, ROW_H - 2)
            ctx.fill()
        _rgb(ctx, STATE_COLOURS.get(row.state, UNKNOWN_STATE))
        ctx.rectangle(SWATCH_X, top + 4, SWATCH_W, SWATCH_H)
        ctx.fill()
        _text(ctx, 44, top + 18, row.name[:20])
        _text(ctx, 190, top + 18, row.state, DIM, 12)
        _text(ctx, 262, top + 18, str(row.restarts), DIM, 12)
        quota = row.cpu_quota if row.cpu_quota is not None else 100.0
        _bar(ctx, 300, top + 7, 80, 12, row.cpu_percent / quota, series_colour(row.name))
        _text(ctx, 386, top + 18, f"{row.cpu_percent:.0f}%" + ("" if row.cpu_quota is None else
                                                              f"/{row.cpu_quota:.0f}"), DIM, 11)
        limit = row.memory_max or memory_total
        _bar(ctx, 450, top + 7, 70, 12, row.memory / limit if limit else 0.0, series_colour(row.name))
        _text(ctx, 526, top + 18, fmt_bytes(row.memory) + ("" if row.memory_max is None else
                                                           "/" + fmt_bytes(row.memory_max)), DIM, 11)
    # Runtime budgets (fuel, linear memory, ...), below the table: a bar for the one closest to
    # exhaustion and the figures.
    shown = next((i for i in range(len(snap.capsules)) if row_top(i) + ROW_H > height), len(snap.capsules))
    runtime_rows = [row for row in snap.capsules[:shown] if row.budgets]
    if runtime_rows and budget_top(shown, 0) + BUDGET_H <= height:
        _text(ctx, 44, budget_top(shown, 0) - 6, "runtime budgets", DIM, 11)
        for k, row in enumerate(runtime_rows):
            top = budget_top(shown, k)
            if top + BUDGET_H > height:
                break
            _text(ctx, 44, top + 13, row.name[:20], TEXT, 11)
            if row.budget is not None:
                _bar(ctx, 190, top + 3, 100, 11, row.budget, series_colour(row.name))
            _text(ctx, 300, top + 13, row.budgets[:48], DIM, 11)
    # History graphs: CPU (percent of one CPU) and memory (bytes), one line per capsule.
    p = panels(width, height)
    top_memory = float(max((max(v) for v in history.memory.values() if v), default=1))
    _graph(ctx, p.x, p.cpu_top, p.w, p.graph_h, "CPU % of one CPU", history.cpu, 100.0, "100%")
    _graph(ctx, p.x, p.memory_top, p.w, p.graph_h, "memory", history.memory, top_memory, fmt_bytes(int(top_memory)))
    _details(ctx, snap, width, height)
    # Recent Sentry events.
    _text(ctx, p.x, p.events_top, "recent Sentry events", DIM, 12)
    for j, line in enumerate(snap.events[-6:] if snap.events else ("(none)",)):
        _text(ctx, p.x, p.events_top + 16 + 14 * j, line, TEXT, 11)


def _details(ctx: Any, snap: Snapshot, width: int, height: int) -> None:
    """The selected capsule: its state and detail, the action buttons, its last log lines."""
    p = panels(width, height)
    y = p.details_top
    row = next((r for r in snap.capsules if r.name == snap.selected), None)
    if row is None:
        _text(ctx, p.x, y + 14, "select a capsule: arrow keys or a click on its row", DIM, 12)
    else:
        _rgb(ctx, STATE_COLOURS.get(row.state, UNKNOWN_STATE))
        ctx.rectangle(p.x, y + 2, 14, 14)
        ctx.fill()
        _text(ctx, p.x + 22, y + 14, f"{row.name}  ·  {row.state}  ·  restarts {row.restarts}", TEXT, 14)
        _text(ctx, p.x, y + 34, (row.detail or "-")[:64], DIM, 11)
        _text(ctx, p.x, y + 50, f"cpu {row.cpu_percent:.0f}%   memory {fmt_bytes(row.memory)}", DIM, 11)
    for op, bx, by in action_buttons(width, height):
        _rgb(ctx, (60, 70, 92) if row is not None else (40, 44, 54))
        ctx.rectangle(bx, by, BUTTON_W, BUTTON_H)
        ctx.fill()
        _text(ctx, bx + 6, by + 15, f"{op} [{ACTION_KEYS[op][0]}]", TEXT, 11)
    by = action_buttons(width, height)[0][2] + BUTTON_H
    if snap.message:
        _text(ctx, p.x, by + 16, snap.message[:70], TEXT, 11)
    for j, line in enumerate(snap.logs[-LOG_LINES:]):
        _text(ctx, p.x, by + 34 + 13 * j, line[:72], DIM, 10)


def _graph(ctx: Any, x: int, y: int, w: int, h: int, title: str, series: Mapping[str, deque[Any]],  # noqa: PLR0917
           scale: float, top_label: str) -> None:
    """A history graph: the title and the value of its top edge, a time axis below (the last
    HISTORY seconds), and a legend of the busiest series (colour and name)."""
    _text(ctx, x, y - 4, f"{title}  (top: {top_label})", DIM, 11)
    _rgb(ctx, (32, 37, 48))
    ctx.rectangle(x, y, w, h)
    ctx.fill()
    _rgb(ctx, (70, 76, 90))
    for k, label in enumerate((f"-{HISTORY // 60} min", f"-{HISTORY // 120} min", "now")):
        tx = x + w * k / 2
        ctx.rectangle(tx - (1 if k else 0), y + h, 1, 4)
        ctx.fill()
        _text(ctx, min(tx, x + w - 22) - (0 if k == 0 else 14 if k == 1 else 0), y + h + 14, label, DIM, 10)
        _rgb(ctx, (70, 76, 90))
    busiest = sorted(((float(v[-1]), n) for n, v in series.items() if v), reverse=True)[:4]
    lx = x + 6
    for _v, name in busiest:
        _rgb(ctx, series_colour(name))
        ctx.rectangle(lx, y + 6, 10, 3)
        ctx.fill()
        _text(ctx, lx + 13, y + 11, name[:14], TEXT, 10)
        lx += 26 + 6 * min(14, len(name))
    scale = max(scale, 1e-9)
    ctx.set_line_width(1.5)
    for name, values in sorted(series.items()):
        if len(values) < 2:
            continue
        _rgb(ctx, series_colour(name))
        step = w / (HISTORY - 1)
        x0 = x + w - step * (len(values) - 1)
        for k, v in enumerate(values):
            py = y + h - min(1.0, float(v) / scale) * (h - 2) - 1
            if k == 0:
                ctx.move_to(x0, py)
            else:
                ctx.line_to(x0 + step * k, py)
        ctx.stroke()


def memory_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


# Wayland -------------------------------------------------------------------------------------------

class Window:
    """An xdg toplevel of the size the compositor configures (a new buffer when it changes), one
    wl_shm buffer that cairo draws into, and the seat's keyboard and pointer: key presses and
    clicks are queued in `keys` and `clicks` for the main loop."""

    def __init__(self, display_name: str) -> None:
        from pywayland.client import Display  # noqa: PLC0415  (heavy: only the client needs it)
        from pywayland.protocol.wayland import WlCompositor, WlSeat, WlShm  # noqa: PLC0415
        from pywayland.protocol.xdg_shell import XdgWmBase  # noqa: PLC0415

        self.display = Display(display_name)
        self.display.connect()
        registry = self.display.get_registry()
        found: dict[str, tuple[int, int]] = {}

        def on_global(_r: Any, name: int, interface: str, version: int) -> None:
            found[interface] = (name, version)

        registry.dispatcher["global"] = on_global
        self.display.roundtrip()
        missing = {"wl_compositor", "wl_shm", "xdg_wm_base"} - set(found)
        if missing:
            raise RuntimeError(f"the compositor lacks {', '.join(sorted(missing))}")
        self.compositor = registry.bind(found["wl_compositor"][0], WlCompositor, 4)
        self.shm = registry.bind(found["wl_shm"][0], WlShm, 1)
        self.wm_base = registry.bind(found["xdg_wm_base"][0], XdgWmBase, 1)
        self.wm_base.dispatcher["ping"] = lambda wm, serial: wm.pong(serial)
        self.surface = self.compositor.create_surface()
        self.xdg = self.wm_base.get_xdg_surface(self.surface)
        self.toplevel = self.xdg.get_toplevel()
        self.toplevel.set_title(TITLE)
        self.toplevel.set_app_id("org.exosphere.dashboard")
        self.size = (0, 0)
        self.configured = False
        self.closed = False
        self.busy = False
        self.buffer: Any = None
        self.buffer_size = (0, 0)
        self.pixels: mmap.mmap | None = None
        self.keys: list[int] = []                     # evdev codes of keys pressed, not yet handled
        self.clicks: list[tuple[float, float]] = []   # left-button presses, surface coordinates
        self.pointer = (0.0, 0.0)
        self.input_proxies: list[Any] = []            # (pywayland drops the events of a collected proxy)
        if "wl_seat" in found:
            seat = registry.bind(found["wl_seat"][0], WlSeat, min(4, found["wl_seat"][1]))
            seat.dispatcher["capabilities"] = self._on_capabilities
            seat.dispatcher["name"] = lambda *_a: None
            self.input_proxies.append(seat)

        def on_configure(_t: Any, width: int, height: int, _states: bytes) -> None:
            if width > 0 and height > 0:
                self.size = (width, height)

        def on_xdg_configure(xdg: Any, serial: int) -> None:
            xdg.ack_configure(serial)
            self.configured = True

        def on_close(_t: Any) -> None:
            self.closed = True

        self.toplevel.dispatcher["configure"] = on_configure
        self.toplevel.dispatcher["close"] = on_close
        self.xdg.dispatcher["configure"] = on_xdg_configure
        self.surface.commit()
        while not self.configured:
            if self.display.dispatch(block=True) < 0:
                raise RuntimeError("lost the compositor before the first configure")
        if self.size == (0, 0):
            self.size = (1024, 768)
        self._allocate()

    def _on_capabilities(self, seat: Any, caps: int) -> None:
        kinds = {type(p).__name__ for p in self.input_proxies}
        if caps & 2 and "WlKeyboardProxy" not in kinds:
            kb = seat.get_keyboard()
            kb.dispatcher["keymap"] = lambda _k, _fmt, fd, _size: os.close(fd)  # (key codes are enough)
            kb.dispatcher["key"] = lambda _k, _serial, _t, key, state: self.keys.append(key) if state == 1 else None
            for event in ("enter", "leave", "modifiers", "repeat_info"):
                kb.dispatcher[event] = lambda *_a: None
            self.input_proxies.append(kb)
        if caps & 1 and "WlPointerProxy" not in kinds:
            ptr = seat.get_pointer()

            def at(x: float, y: float) -> None:
                self.pointer = (x, y)

            ptr.dispatcher["enter"] = lambda _p, _serial, _surface, x, y: at(x, y)
            ptr.dispatcher["motion"] = lambda _p, _t, x, y: at(x, y)
            ptr.dispatcher["button"] = lambda _p, _serial, _t, button, state: \
                self.clicks.append(self.pointer) if state == 1 and button == BTN_LEFT else None
            for event in ("leave", "axis", "frame", "axis_source", "axis_stop", "axis_discrete"):
                ptr.dispatcher[event] = lambda *_a: None
            self.input_proxies.append(ptr)

    def _allocate(self) -> None:
        if self.buffer is not None:
            self.buffer.destroy()
        if self.pixels is not None:
            self.pixels.close()
        self.buffer_size = self.size
        width, height = self.size
        stride = width * 4
        fd = os.memfd_create("exo-dashboard", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, stride * height)
            self.pixels = mmap.mmap(fd, stride * height)
            pool = self.shm.create_pool(fd, stride * height)
        finally:
            os.close(fd)
        self.buffer = pool.create_buffer(0, width, height, stride, 0)  # ARGB8888
        pool.destroy()

        def on_release(_b: Any) -> None:
            self.busy = False

        self.buffer.dispatcher["release"] = on_release

    def show(self, draw: Any) -> bool:
        """Draw (if the compositor has released the buffer) and commit; False when skipped."""
        import cairo  # noqa: PLC0415

        if self.busy or self.pixels is None:
            return False
        if self.size != self.buffer_size:  # configured to another size: a new buffer
            self._allocate()
        width, height = self.size
        surface = cairo.ImageSurface.create_for_data(self.pixels, cairo.FORMAT_ARGB32, width, height, width * 4)
        ctx = cairo.Context(surface)
        draw(ctx, width, height)
        surface.flush()
        del ctx, surface
        self.surface.attach(self.buffer, 0, 0)
        self.surface.damage(0, 0, width, height)
        self.busy = True
        self.surface.commit()
        self.display.flush()
        return True


class Feeder:
    """Snapshots taken in a thread of their own, so that the Wayland loop never waits for PID 1:
    under load an answer can take seconds, and the compositor disconnects a client that does not
    answer its ping within 30 s (seen while 1,000 capsules started: the dashboard, disconnected,
    then restarted 13 times, not ready within 30 s). The main loop learns of a new snapshot by
    `fd` becoming readable, takes it with `take`, and asks for one now with `want`."""

    def __init__(self, collector: Collector, controls: Controls, interval: float) -> None:
        self.collector = collector
        self.controls = controls
        self.interval = interval
        self.latest: Snapshot | None = None
        self.lock = threading.Lock()
        self.wanted = threading.Event()
        self.fd, self._signal = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        threading.Thread(target=self._run, name="snapshots", daemon=True).start()

    def _run(self) -> None:
        while True:
            snap = self.collector.snapshot(selected=self.controls.selected)
            with self.lock:
                self.latest = snap
            try:
                os.write(self._signal, b".")
            except BlockingIOError:
                pass  # (the main loop has not read the previous signals: it will see this one too)
            self.wanted.wait(self.interval)
            self.wanted.clear()

    def want(self) -> None:
        self.wanted.set()

    def take(self) -> Snapshot | None:
        try:
            os.read(self.fd, 4096)
        except BlockingIOError:
            pass
        with self.lock:
            snap, self.latest = self.latest, None
        return snap


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="dashboard", description="The Sentry dashboard (a Wayland client)")
    p.add_argument("--control", default=str(CONTROL), help="PID 1's control socket")
    p.add_argument("--display", default=os.environ.get("WAYLAND_DISPLAY", "wayland-0"))
    p.add_argument("--interval", type=float, default=1.0, help="seconds between updates")
    args = p.parse_args(argv)
    from exo_init.lib.notify import sd_notify  # noqa: PLC0415

    window = Window(args.display)
    history = History()
    total = memory_total()
    control = Path(args.control)
    controls = Controls(control)
    collector = Collector(control, max(1, rows_fitting(window.size[1])))
    feeder = Feeder(collector, controls, args.interval)
    sel = selectors.DefaultSelector()
    sel.register(window.display.get_fd(), selectors.EVENT_READ)
    sel.register(feeder.fd, selectors.EVENT_READ)
    # (the first frame at once, before PID 1 answered: the dashboard is ready when it is shown)
    snap = Snapshot("exosphere", None, (), (), time.time(), error="waiting for PID 1's first answer")
    dirty = True
    frames = 0
    while not window.closed:
        new = feeder.take()
        if new is not None:
            snap = new
            history.add(snap)
            dirty = True
        if dirty:
            collector.rows = max(1, rows_fitting(window.size[1]))
            shown = replace(snap, selected=controls.selected, message=controls.message)
            if window.show(lambda ctx, w, h, s=shown: render(ctx, s, history, w, h, total)):
                dirty = False
                frames += 1
                if frames == 1:
                    sd_notify(f"READY=1\nSTATUS={window.size[0]}x{window.size[1]}")
        window.display.dispatch(block=False)
        names = [r.name for r in snap.capsules]
        changed = False
        while window.keys:
            changed |= controls.key(window.keys.pop(0), names)
        while window.clicks:
            x, y = window.clicks.pop(0)
            changed |= controls.click(x, y, window.size[0], window.size[1], names)
        if changed:
            dirty = True  # show the selection or the action's outcome now, and its figures soon
            feeder.want()
            continue
        window.display.flush()
        ready = sel.select(args.interval if dirty else None)  # (a skipped frame: tried again)
        if any(key.fd == window.display.get_fd() for key, _ in ready) and window.display.dispatch(block=True) < 0:
            print("dashboard: the compositor went away", file=sys.stderr, flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
