"""Nexquelium as a desktop in the booted image: keyboard and pointer driven through QMP
(`send-key`, `input-send-event` on a virtio tablet), seen on QMP screendumps and through the
control API. A second display client (the `viewer` test capsule: a magenta view that logs the
input it gets) shows that views appear, get the keyboard when active, and go; the dashboard
restarts and stops a capsule it was clicked at (its `manage` grant, recorded as an event);
keyboards plugged in and out while running are picked up and dropped. Another boot checks that
virtio-gpu (-vga virtio) shows the desktop too."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from exo_init.system import dashboard as dash
from exo_init.system.nexquelium.compositor import BAR, BAR_H, TAB, TAB_ACTIVE, TAB_W
from tests.machine import Machine
from tests.pixels import Picture, classify, close, screen, wait_for_screen
from tests.vm.conftest import MachineFactory

MAGENTA = (0xE0, 0x40, 0xE0)  # tests/guest/viewer.py's default colour
ABS_MAX = 0x7FFF              # QEMU's absolute pointer range
DEVICES = ("-device", "pcie-root-port,id=rp1,chassis=1,slot=1",   # a slot for the hotplug test
           "-device", "virtio-tablet-pci", "-device", "virtio-keyboard-pci")


@pytest.fixture(scope="module")
def desk(make_module_machine: MachineFactory) -> Machine:
    m = make_module_machine("desktop", extra=DEVICES)
    m.wait_for_capsule("dashboard", "ready", 120)
    return m


def keys(m: Machine, *qcodes: str) -> None:
    """One chord (all pressed, then released), as a person at the QEMU window would."""
    m.qmp.execute("send-key", keys=[{"type": "qcode", "data": k} for k in qcodes])


def point(m: Machine, x: int, y: int, size: tuple[int, int]) -> None:
    m.qmp.execute("input-send-event", events=[
        {"type": "abs", "data": {"axis": "x", "value": round(x * ABS_MAX / (size[0] - 1))}},
        {"type": "abs", "data": {"axis": "y", "value": round(y * ABS_MAX / (size[1] - 1))}}])


def click(m: Machine, x: int, y: int, size: tuple[int, int]) -> None:
    point(m, x, y, size)
    for down in (True, False):
        m.qmp.execute("input-send-event", events=[{"type": "btn", "data": {"down": down, "button": "left"}}])


def log_of(m: Machine, name: str, lines: int = 400) -> str:
    return m.succeed(f"exoctl logs {name} -n {lines}")


def dashboard_shown(pic: Picture) -> bool:
    # (the background between the table and the graphs: (700, 300), in the memory graph, was
    # crossed by a capsule's line in one run)
    return close(pic.rgb(700, 4), dash.HEADER) and close(pic.rgb(dash.TABLE_W + 8, 300), dash.BACKGROUND)


def viewer_shown(pic: Picture) -> bool:
    return close(pic.rgb(700, 4), MAGENTA) and close(pic.rgb(300, 300), MAGENTA)


def tab(pic: Picture, i: int) -> str | None:
    """The colour class of the i-th view's name in the bar."""
    return classify(pic.rgb(i * TAB_W + 3, pic.height - 4), {"active": TAB_ACTIVE, "tab": TAB, "bar": BAR})


def test_input_devices_are_the_compositors_only(desk: Machine) -> None:
    log = log_of(desk, "nexquelium")
    found = re.findall(r"input: (/dev/input/event\d+) \((.*?)\): (.*)", log)
    kinds = {kind for _path, _name, kind in found}
    assert "keyboard" in kinds and "pointer" in kinds, log
    assert any(name == "QEMU Virtio Tablet" and kind == "pointer" for _p, name, kind in found), found
    assert any(name == "QEMU Virtio Keyboard" and kind == "keyboard" for _p, name, kind in found), found
    # The compositor's world has the input devices; the dashboard's (a display client) has not.
    comp, client = desk.capsule_status("nexquelium")["pid"], desk.capsule_status("dashboard")["pid"]
    assert desk.execute(f"ls /proc/{comp}/root/dev/input").out.count("event") >= 2
    assert desk.execute(f"test -e /proc/{client}/root/dev/input").rc == 1
    print(f"\nINPUT: {len(found)} devices: " + ", ".join(f"{n} ({k})" for _p, n, k in found))


def test_views_keyboard_focus_and_the_switcher(desk: Machine, artifacts: Path) -> None:
    shot = artifacts / "desktop.png"
    pic = wait_for_screen(desk, shot, dashboard_shown, 60, "the dashboard")
    size = (pic.width, pic.height)
    assert tab(pic, 0) == "active" and tab(pic, 1) == "bar", (tab(pic, 0), tab(pic, 1))
    # A second client: its view appears in front, named in the bar, and gets the keyboard.
    desk.succeed("exoctl start viewer")
    desk.wait_until_succeeds("exoctl logs viewer -n 50 | grep -q 'viewer: enter'", 60)
    pic = wait_for_screen(desk, artifacts / "desktop-viewer.png", viewer_shown, 30, "the viewer's view")
    assert (tab(pic, 0), tab(pic, 1)) == ("tab", "active")
    keys(desk, "a")
    desk.wait_until_succeeds("exoctl logs viewer -n 50 | grep -q 'viewer: key 30 1'", 30)
    # Each view is named by its capsule (exo_init's uid -> capsule map), not by what it calls itself.
    desk.wait_until_succeeds("exoctl logs nexquelium -n 400 | grep -q \"view named: viewer ('viewer')\"", 30)
    assert "view named: dashboard ('Exosphere Sentry')" in log_of(desk, "nexquelium")
    # Alt+Tab: the compositor's chord. The dashboard comes back and has the keyboard: keys typed
    # now do not reach the viewer.
    keys(desk, "alt", "tab")
    pic = wait_for_screen(desk, artifacts / "desktop-alt-tab.png", dashboard_shown, 30, "the dashboard after Alt+Tab")
    assert (tab(pic, 0), tab(pic, 1)) == ("active", "tab")
    desk.wait_until_succeeds("exoctl logs viewer -n 50 | grep -q 'viewer: leave'", 30)
    before = log_of(desk, "viewer").count("viewer: key")
    keys(desk, "b")
    keys(desk, "alt", "tab")  # back to the viewer: its enter says it has the keyboard again
    wait_for_screen(desk, artifacts / "desktop-viewer-again.png", viewer_shown, 30, "the viewer again")
    keys(desk, "c")
    desk.wait_until_succeeds("exoctl logs viewer -n 80 | grep -q 'viewer: key 46 1'", 30)
    viewer_keys = re.findall(r"viewer: key (\d+) 1", log_of(desk, "viewer"))
    assert "48" not in viewer_keys, viewer_keys  # b (48) went to the dashboard
    assert log_of(desk, "viewer").count("viewer: key") > before
    # A click on the dashboard's name in the bar brings it to the front.
    click(desk, 40, size[1] - BAR_H // 2, size)
    wait_for_screen(desk, artifacts / "desktop-click-bar.png", dashboard_shown, 30, "the dashboard after a click")
    # The viewer goes: its view goes, the bar names one view.
    desk.succeed("exoctl stop viewer")
    pic = wait_for_screen(desk, artifacts / "desktop-viewer-gone.png",
                          lambda p: dashboard_shown(p) and tab(p, 1) == "bar", 30, "one view left")
    assert tab(pic, 0) == "active"


def test_the_dashboard_restarts_and_stops_a_capsule_it_was_told_to(desk: Machine, artifacts: Path) -> None:
    desk.succeed("exoctl start echo")
    first = desk.wait_for_capsule("echo", "ready", 60)["pid"]
    pic = wait_for_screen(desk, artifacts / "desktop-dash.png", dashboard_shown, 60, "the dashboard")
    size = (pic.width, pic.height)
    names = [r["name"] for r in json.loads(desk.succeed("exoctl --json status"))]
    row = sorted(names).index("echo")

    def selected(p: Picture) -> bool:
        return close(p.rgb(dash.SWATCH_X + dash.SWATCH_W + 20, dash.row_top(row) + 3), dash.SELECTED, 4)

    click(desk, 200, dash.row_top(row) + 12, size)
    wait_for_screen(desk, artifacts / "desktop-dash-selected.png", selected, 30, "echo's row selected")
    t0 = time.monotonic()
    keys(desk, "r")
    desk.wait_until("echo restarted", lambda: (desk.capsule_status("echo")["pid"] not in (first, None),
                                               str(desk.capsule_status("echo"))), 60)
    took = time.monotonic() - t0
    desk.wait_for_capsule("echo", "ready", 60)
    events = json.loads(desk.succeed("exoctl --json events"))
    assert any(e.get("kind") == "action" and e.get("action") == "restart" and e.get("capsule") == "echo"
               and e.get("by") == "dashboard" for e in events), events
    # The stop button, clicked.
    op, bx, by = next(b for b in dash.action_buttons(size[0], size[1] - BAR_H) if b[0] == "stop")
    click(desk, bx + 10, by + 10, size)
    desk.wait_for_capsule("echo", "stopped", 60)
    wait_for_screen(desk, artifacts / "desktop-dash-stopped.png",
                    lambda p: classify(p.rgb(*dash.swatch_centre(row)), dash.STATE_COLOURS) == "stopped",
                    30, "echo's row grey")
    events = json.loads(desk.succeed("exoctl --json events"))
    assert any(e.get("action") == op and e.get("capsule") == "echo" and e.get("by") == "dashboard" for e in events)
    print(f"\nDASHBOARD ACTION: 'r' sent by QMP -> echo restarted (new pid seen through exoctl) in {took:.1f} s")


def test_a_keyboard_plugged_in_and_out_while_running(desk: Machine) -> None:
    def keyboards() -> int:
        log = log_of(desk, "nexquelium", 1000)
        return len(re.findall(r"\(QEMU Virtio Keyboard\): keyboard", log)) - \
            len(re.findall(r"\(QEMU Virtio Keyboard\) removed", log))

    before = keyboards()
    desk.qmp.execute("device_add", driver="virtio-keyboard-pci", id="kbd2", bus="rp1")
    desk.wait_until("a second virtio keyboard", lambda: (keyboards() == before + 1, str(keyboards())), 60)
    desk.qmp.execute("device_del", id="kbd2")
    desk.wait_until("the keyboard gone", lambda: (keyboards() == before, str(keyboards())), 60)
    assert desk.capsule_status("nexquelium")["state"] == "ready"


def test_input_to_frame_is_measured(desk: Machine) -> None:
    """Arrow keys to the dashboard, which redraws at once on each: the compositor times each
    answered press (press read -> the frame with the client's answer presented) and names the view
    in its status. Its figures are tests/bench/input_frame.py's, not this test's."""
    assert dashboard_shown(screen(desk, desk.workdir / "latency.png"))
    for _ in range(4):
        keys(desk, "down")
        desk.execute("sleep 0.4")
    pattern = r"input to frame \(median/max\): .*\bdashboard (\d+)/(\d+) ms x(\d+)"

    def reported() -> tuple[bool, str]:
        text = str(desk.capsule_status("nexquelium")["status_text"])
        return re.search(pattern, text) is not None, text

    desk.wait_until("the dashboard's answered presses in the compositor's status", reported, 60)


def test_virtio_gpu_shows_the_desktop(make_machine: MachineFactory, artifacts: Path) -> None:
    m = make_machine("virtio-gpu", vga="virtio")
    m.wait_for_capsule("dashboard", "ready", 120)
    assert "virtio_gpu" in m.succeed("cat /proc/modules")
    assert "virtio" in m.succeed("cat /proc/fb")
    pic = wait_for_screen(m, artifacts / "desktop-virtio-gpu.png", dashboard_shown, 60, "the dashboard on virtio-gpu")
    print(f"\nVIRTIO-GPU: {pic.width}x{pic.height}, {m.succeed('cat /proc/fb').strip()}")
