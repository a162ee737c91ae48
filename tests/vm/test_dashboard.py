"""The booted image shows the Sentry dashboard through Nexquelium on the framebuffer (-vga std,
headless: QMP screendump), with a state swatch per capsule that follows the capsule's state."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from exo_init.system import dashboard as dash
from exo_init.system.nexquelium.compositor import BAR_H
from tests.machine import Machine, boot_times
from tests.pixels import Picture, close, readme_state_colours, shown_state, wait_for_screen

REPO = Path(__file__).resolve().parents[2]


def rows(machine: Machine) -> list[dict[str, object]]:
    out: list[dict[str, object]] = json.loads(machine.succeed("exoctl --json status"))
    return sorted(out, key=lambda r: str(r["name"]))  # the dashboard's order (status is sorted by name)


README_COLOURS = readme_state_colours((REPO / "README.md").read_text())


def swatch_states(pic: Picture, count: int) -> list[str | None]:
    """The state each row's swatch shows, by README's colour for it (not the dashboard's own table)."""
    return [shown_state(pic.rgb(*dash.swatch_centre(i)), README_COLOURS) for i in range(count)]


def test_dashboard_shows_capsules_and_follows_state(machine: Machine, artifacts: Path) -> None:
    machine.wait_for_capsule("dashboard", "ready", 120)
    shot = artifacts / "dashboard.png"

    def header(pic: Picture) -> bool:
        return close(pic.rgb(700, 4), dash.HEADER) and close(pic.rgb(700, 200), dash.BACKGROUND)

    pic = wait_for_screen(machine, shot, header, 60, "the dashboard header")
    assert pic.width >= 800 and pic.height >= 600, (pic.width, pic.height)  # bochs-drm: 1280x800

    # One row per capsule: each swatch has the colour of the capsule's state.
    status = rows(machine)

    # The rows that fit in the dashboard's window (the screen above Nexquelium's view bar): the
    # test image has more capsules than a 1280x800 screen has rows for.
    shown = dash.rows_fitting(pic.height - BAR_H)

    def swatches_match(p: Picture) -> bool:
        nonlocal status
        status = rows(machine)[:shown]
        return swatch_states(p, len(status)) == [r["state"] for r in status]

    pic = wait_for_screen(machine, shot, swatches_match, 20, "a swatch per capsule in its state's colour")
    ready = sum(1 for r in status if r["state"] == "ready")
    green = sum(1 for s in swatch_states(pic, len(status)) if s == "ready")
    assert green == ready and ready >= 5, (green, ready)
    shutil.copy2(shot, artifacts / "dashboard-boot.png")

    # Start the echo capsule, then stop it: its row turns green, then grey, within a few seconds.
    names = [str(r["name"]) for r in status]
    echo = names.index("echo")
    machine.succeed("exoctl start echo")
    machine.wait_for_capsule("echo", "ready", 30)
    t0 = time.monotonic()
    wait_for_screen(machine, artifacts / "dashboard-echo-ready.png",
                    lambda p: swatch_states(p, echo + 1)[echo] == "ready", 10, "echo's row green")
    machine.succeed("exoctl stop echo")
    t1 = time.monotonic()
    wait_for_screen(machine, artifacts / "dashboard-echo-stopped.png",
                    lambda p: swatch_states(p, echo + 1)[echo] == "stopped", 10, "echo's row grey")
    print(f"\nDASHBOARD: echo ready on screen {t1 - t0:.1f} s after start; stopped on screen "
          f"{time.monotonic() - t1:.1f} s after stop")

    # Boot figures: kernel start to "all capsules ready" and to the first dashboard frame.
    log = machine.succeed("exoctl logs nexquelium -n 200")
    m = re.search(r"first client frame \('Exosphere Sentry'\): ([0-9.]+) s after kernel start", log)
    assert m, log
    times = boot_times(machine.console)
    print(f"BOOT: all capsules ready {times.get('since_kernel', -1):.2f} s after kernel start; "
          f"first dashboard frame {float(m.group(1)):.2f} s after kernel start")
    for name in ("nexquelium", "dashboard"):
        st = machine.capsule_status(name)
        cg = st.get("cgroup") or {}
        uptime = float(st.get("uptime") or 0.0)
        average = 100.0 * cg.get("cpu_usage_usec", 0) / 1e6 / uptime if uptime else 0.0
        print(f"COST {name}: {average:.1f} % of one CPU on average over {uptime:.0f} s (incl. start-up), "
              f"now {st.get('cpu_percent')} %, memory {cg.get('memory_current', 0) / 2**20:.1f} MiB; "
              f"{st.get('status_text')}")
