"""The Sentry dashboard: a Wayland client (pycairo into wl_shm) showing every capsule with its
state colour, restarts, CPU and memory against its quota, a history graph of CPU and memory per
capsule, the runtime capsules' budgets (a WebAssembly capsule's fuel used against `wasm.fuel`
and its linear memory against `wasm.memory_max`: the `metrics` of its status), the recent Sentry
events and the current generation; redrawn every second from PID 1's control socket (read-only
operations: status, info, events).

Data (`Snapshot`, `collect`, `History`) is separate from drawing (`render`, cairo only) and from
the Wayland plumbing (`Window`). The layout is fixed so that a test can find things: capsule row
`i` has its state swatch at (SWATCH_X .. SWATCH_X + SWATCH_W, row_top(i) + 4 ..).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import selectors
import sys
import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exo_init.client.control import call
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

# Colours (R, G, B), 0-255 -----------------------------------------------------------------------------
BACKGROUND = (24, 28, 36)
HEADER = (36, 52, 88)
TEXT = (230, 233, 240)
DIM = (150, 156, 170)
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


def budget_top(rows: int, k: int) -> int:
    """The top of the k-th runtime capsule's line in the budgets list, below `rows` table rows."""
    return row_top(rows) + 24 + k * BUDGET_H


def swatch_centre(i: int) -> tuple[int, int]:
    return SWATCH_X + SWATCH_W // 2, row_top(i) + 4 + SWATCH_H // 2


def series_colour(name: str) -> tuple[int, int, int]:
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


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


def event_line(record: Mapping[str, Any]) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(float(record.get("time", 0))))
    kind = record.get("anomaly") or record.get("kind") or "?"
    what = " ".join(str(record[k]) for k in ("capsule", "action", "generation", "reason") if record.get(k) is not None)
    return f"{when}  {kind}  {what}"[:90]


def collect(control: Path, hostname_fallback: str = "exosphere") -> Snapshot:
    """One snapshot from PID 1's control socket (read-only operations)."""
    try:
        info = call(control, {"op": "info"}, timeout=5)
        rows = tuple(capsule_row(s) for s in call(control, {"op": "status"}, timeout=5))
    except (OSError, ValueError, ApiError) as e:
        return Snapshot(hostname_fallback, None, (), (), time.time(), error=f"control socket: {e}")
    try:
        events = tuple(event_line(r) for r in call(control, {"op": "events", "lines": 8}, timeout=5))
    except (OSError, ValueError, ApiError):
        events = ()
    return Snapshot(str(info.get("hostname") or hostname_fallback), info.get("generation"), rows, events, time.time())


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
    gx, gw = TABLE_W + 16, width - TABLE_W - 32
    gh = max(60, (height - TABLE_TOP - 40) // 3)
    _graph(ctx, gx, TABLE_TOP, gw, gh, "CPU % (history)", history.cpu, 100.0)
    _graph(ctx, gx, TABLE_TOP + gh + 30, gw, gh, "memory (history)", history.memory,
           float(max((max(v) for v in history.memory.values() if v), default=1)))
    # Recent Sentry events.
    ey = TABLE_TOP + 2 * gh + 76
    _text(ctx, gx, ey, "recent Sentry events", DIM, 12)
    for j, line in enumerate(snap.events[-8:] if snap.events else ("(none)",)):
        _text(ctx, gx, ey + 18 + 16 * j, line, TEXT, 11)


def _graph(ctx: Any, x: int, y: int, w: int, h: int, title: str, series: Mapping[str, deque[Any]],  # noqa: PLR0917
           scale: float) -> None:
    _text(ctx, x, y - 4, title, DIM, 11)
    _rgb(ctx, (32, 37, 48))
    ctx.rectangle(x, y, w, h)
    ctx.fill()
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
    """A fullscreen xdg toplevel with one wl_shm buffer that cairo draws into."""

    def __init__(self, display_name: str) -> None:
        from pywayland.client import Display  # noqa: PLC0415  (heavy: only the client needs it)
        from pywayland.protocol.wayland import WlCompositor, WlShm  # noqa: PLC0415
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
        self.pixels: mmap.mmap | None = None

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

    def _allocate(self) -> None:
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
    sel = selectors.DefaultSelector()
    sel.register(window.display.get_fd(), selectors.EVENT_READ)
    next_frame = time.monotonic()
    frames = 0
    while not window.closed:
        now = time.monotonic()
        if now >= next_frame:
            snap = collect(control)
            history.add(snap)
            if window.show(lambda ctx, w, h, s=snap: render(ctx, s, history, w, h, total)):
                frames += 1
                if frames == 1:
                    sd_notify(f"READY=1\nSTATUS={window.size[0]}x{window.size[1]}")
            next_frame = max(next_frame + args.interval, now + args.interval / 4)
        window.display.dispatch(block=False)
        window.display.flush()
        if sel.select(max(0.0, next_frame - time.monotonic())) and window.display.dispatch(block=True) < 0:
            print("dashboard: the compositor went away", file=sys.stderr, flush=True)
            sys.exit(1)


if __name__ == "__main__":
    main()
