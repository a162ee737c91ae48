"""wl_seat: the keyboard and pointer of the input devices, routed to one client at a time.

The keyboard goes to the active view's client only (wl_keyboard.enter/leave when the compositor
changes the active view); the pointer to the client whose view is under it (enter/leave as it
crosses into or out of the view area; the view bar is the compositor's own). Every wl_keyboard
gets the keymap (a sealed memfd, `xkb.Keymap`) and the repeat rate (clients repeat keys
themselves; the kernel's repeats are dropped). A client never gets an event about another
client's surface: events are posted to the resources of the focused surface's own client.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pywayland.protocol.wayland import WlKeyboard, WlPointer

from exo_init.system.nexquelium import devices, wlfix
from exo_init.system.nexquelium.xkb import Keymap

if TYPE_CHECKING:
    from exo_init.system.nexquelium.compositor import Compositor, Surface

Res = Any
CAP_POINTER, CAP_KEYBOARD = 1, 2
KEYMAP_XKB_V1 = 1
REPEAT_RATE, REPEAT_DELAY = 25, 600    # keys per second, ms
KEY_LEFTALT, KEY_RIGHTALT, KEY_TAB = 56, 100, 15
SEAT_VERSION = 4                       # keyboard repeat_info; no wl_pointer.frame (v5) to send


def now_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


@dataclass
class Seat:
    comp: Compositor
    keymap: Keymap
    seats: list[Res] = field(default_factory=list)
    keyboards: list[Res] = field(default_factory=list)
    pointers: list[Res] = field(default_factory=list)
    capabilities: int = 0
    x: float = 0.0
    y: float = 0.0
    pointer_focus: Surface | None = None
    keyboard_focus: Surface | None = None
    pressed: set[int] = field(default_factory=set)   # keys held down and sent to the focused client
    swallowed: set[int] = field(default_factory=set)  # keys of a compositor chord (their release too)
    on_input: Callable[[], None] | None = None         # called after a key or button press reached a client
    events_delivered: int = 0

    # --- binding --------------------------------------------------------------------------------

    def bind(self, res: Res) -> None:
        self.seats.append(res)
        res.dispatcher["get_keyboard"] = self._get_keyboard
        res.dispatcher["get_pointer"] = self._get_pointer
        res.dispatcher["get_touch"] = lambda r, new_id: r._post_error(0, "no touch device")  # missing_capability
        wlfix.post_event(res, 0, self.capabilities)
        if res.version >= 2:
            wlfix.post_event(res, 1, "seat0")

    def set_capabilities(self, caps: int) -> None:
        if caps != self.capabilities:
            self.capabilities = caps
            for res in self.seats:
                wlfix.post_event(res, 0, caps)

    def _get_keyboard(self, parent: Res, new_id: int) -> None:
        kb = self.comp.new_resource(WlKeyboard, parent, new_id)
        self.keyboards.append(kb)
        wlfix.post_event(kb, 0, KEYMAP_XKB_V1, self.keymap.fd, self.keymap.size)
        if kb.version >= 4:
            wlfix.post_event(kb, 5, REPEAT_RATE, REPEAT_DELAY)
        focus = self.keyboard_focus
        if focus is not None and self._same_client(kb, focus):
            self._keyboard_enter(kb, focus)

    def _get_pointer(self, parent: Res, new_id: int) -> None:
        ptr = self.comp.new_resource(WlPointer, parent, new_id)
        ptr.dispatcher["set_cursor"] = lambda *_a: None  # the compositor draws its own cursor
        self.pointers.append(ptr)
        focus = self.pointer_focus
        if focus is not None and self._same_client(ptr, focus):
            sx, sy = self.comp.surface_local(focus, self.x, self.y)
            wlfix.post_event(ptr, 0, self.comp.display.next_serial(), focus.resource, sx, sy)

    def forget(self, res: Res) -> None:
        for group in (self.seats, self.keyboards, self.pointers):
            if res in group:
                group.remove(res)
        if self.pointer_focus is not None and self.pointer_focus.resource is res:
            self.pointer_focus = None
        if self.keyboard_focus is not None and self.keyboard_focus.resource is res:
            self.keyboard_focus = None

    @staticmethod
    def _same_client(res: Res, surface: Surface) -> bool:
        return res._ptr is not None and surface.resource._ptr is not None and \
            wlfix.address(wlfix.client_of(res)) == wlfix.address(wlfix.client_of(surface.resource))

    def _of(self, group: list[Res], surface: Surface) -> list[Res]:
        return [r for r in group if self._same_client(r, surface)]

    # --- keyboard focus ---------------------------------------------------------------------------

    def _keyboard_enter(self, kb: Res, surface: Surface) -> None:
        keys = struct.pack(f"={len(self.pressed)}I", *sorted(self.pressed))
        wlfix.post_event(kb, 1, self.comp.display.next_serial(), surface.resource, keys)
        m = self.keymap.mods
        wlfix.post_event(kb, 4, self.comp.display.next_serial(), m.depressed, m.latched, m.locked, m.group)

    def focus_keyboard(self, surface: Surface | None) -> None:
        old = self.keyboard_focus
        if old is surface:
            return
        if old is not None and old.resource._ptr is not None:
            for kb in self._of(self.keyboards, old):
                wlfix.post_event(kb, 2, self.comp.display.next_serial(), old.resource)
        self.keyboard_focus = surface
        if surface is not None:
            for kb in self._of(self.keyboards, surface):
                self._keyboard_enter(kb, surface)

    # --- pointer focus ----------------------------------------------------------------------------

    def update_pointer(self, time_ms: int | None = None) -> None:
        """Enter/leave/motion for the pointer at (x, y) over whatever view is there now."""
        target = self.comp.view_at(self.x, self.y)
        old = self.pointer_focus
        if target is not old:
            if old is not None and old.resource._ptr is not None:
                for p in self._of(self.pointers, old):
                    wlfix.post_event(p, 1, self.comp.display.next_serial(), old.resource)
            self.pointer_focus = target
            if target is not None:
                sx, sy = self.comp.surface_local(target, self.x, self.y)
                for p in self._of(self.pointers, target):
                    wlfix.post_event(p, 0, self.comp.display.next_serial(), target.resource, sx, sy)
            return
        if target is not None and time_ms is not None:
            sx, sy = self.comp.surface_local(target, self.x, self.y)
            for p in self._of(self.pointers, target):
                wlfix.post_event(p, 2, time_ms, sx, sy)
            self._delivered(pressed=False)

    # --- input events -----------------------------------------------------------------------------

    def handle(self, event: devices.InputEvent) -> None:
        t = now_ms()
        if isinstance(event, devices.Key):
            self._key(event, t)
        elif isinstance(event, devices.Motion | devices.MoveTo):
            w, h = self.comp.canvas.width, self.comp.canvas.height
            if isinstance(event, devices.Motion):
                self.x, self.y = self.x + event.dx, self.y + event.dy
            else:
                self.x, self.y = event.fx * (w - 1), event.fy * (h - 1)
            self.x, self.y = min(max(self.x, 0.0), w - 1.0), min(max(self.y, 0.0), h - 1.0)
            self.comp.cursor_moved()
            self.update_pointer(t)
        elif isinstance(event, devices.Button):
            self._button(event, t)
        else:
            focus = self.pointer_focus
            if focus is not None:
                for p in self._of(self.pointers, focus):
                    for axis, value in ((0, event.vertical), (1, event.horizontal)):
                        if value:
                            wlfix.post_event(p, 4, t, axis, value)
                self._delivered(pressed=False)

    def _key(self, event: devices.Key, t: int) -> None:
        mods_changed = self.keymap.update_key(event.code, event.pressed)
        if event.code in self.swallowed:
            if not event.pressed:
                self.swallowed.discard(event.code)
            return
        alt = {KEY_LEFTALT, KEY_RIGHTALT} & self.pressed
        if event.pressed and event.code == KEY_TAB and alt:
            self.swallowed.add(event.code)
            self.comp.cycle_focus()
            return
        if event.pressed:
            self.pressed.add(event.code)
        else:
            self.pressed.discard(event.code)
        focus = self.keyboard_focus
        if focus is None:
            return
        for kb in self._of(self.keyboards, focus):
            wlfix.post_event(kb, 3, self.comp.display.next_serial(), t, event.code, 1 if event.pressed else 0)
            if mods_changed:
                m = self.keymap.mods
                wlfix.post_event(kb, 4, self.comp.display.next_serial(), m.depressed, m.latched, m.locked, m.group)
        self._delivered(event.pressed)

    def _button(self, event: devices.Button, t: int) -> None:
        if event.pressed and self.comp.click(self.x, self.y):
            return  # the compositor's own (the view bar)
        focus = self.pointer_focus
        if focus is None:
            return
        if event.pressed and focus is not self.keyboard_focus:
            self.comp.activate(focus)  # click to focus
        for p in self._of(self.pointers, focus):
            wlfix.post_event(p, 3, self.comp.display.next_serial(), t, event.code, 1 if event.pressed else 0)
        self._delivered(event.pressed)

    def _delivered(self, pressed: bool) -> None:
        """An event reached a client; a press (key or button) is one it may answer with a frame:
        the input-to-frame latency is timed from presses only (a release or a motion that nothing
        redraws for would be answered by whatever frame came next)."""
        self.events_delivered += 1
        if pressed and self.on_input is not None:
            self.on_input()
