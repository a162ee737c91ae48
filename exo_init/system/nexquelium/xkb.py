"""Keymaps for wl_keyboard: libxkbcommon (Debian's libxkbcommon0, with xkb-data's keymap files)
through ctypes.

Wayland clients (libwayland's toolkits, xkbcommon in each of them) expect the compositor to send
its keymap as text in a sealed memfd (`wl_keyboard.keymap`, format xkb_v1) and then, with each
change, the serialized modifier state (`wl_keyboard.modifiers`); the keys themselves go as evdev
codes. The compositor keeps one `xkb_state` fed with every key, which gives those modifiers and
the keysyms of its own chords. ctypes rather than the `xkbcommon` PyPI package: that one is a cffi
extension built at install time (no wheel for the image's manylinux install), and seven functions
are all this needs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
from dataclasses import dataclass

XKB_KEYMAP_FORMAT_TEXT_V1 = 1
XKB_KEY_UP, XKB_KEY_DOWN = 0, 1
XKB_STATE_MODS_DEPRESSED, XKB_STATE_MODS_LATCHED, XKB_STATE_MODS_LOCKED = 1, 2, 4
XKB_STATE_LAYOUT_EFFECTIVE = 0x80
EVDEV_OFFSET = 8  # xkb keycodes are evdev codes + 8 (the X11 legacy)


class XkbError(Exception):
    """libxkbcommon is missing or refused the keymap names."""


class _RuleNames(ctypes.Structure):
    _fields_ = [(name, ctypes.c_char_p) for name in ("rules", "model", "layout", "variant", "options")]


def _lib() -> ctypes.CDLL:
    name = ctypes.util.find_library("xkbcommon") or "libxkbcommon.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise XkbError(f"libxkbcommon: {e}") from None
    vp = ctypes.c_void_p
    for fn, res, args in (
        ("xkb_context_new", vp, [ctypes.c_int]),
        ("xkb_context_unref", None, [vp]),
        ("xkb_keymap_new_from_names", vp, [vp, ctypes.POINTER(_RuleNames), ctypes.c_int]),
        ("xkb_keymap_get_as_string", vp, [vp, ctypes.c_int]),
        ("xkb_keymap_unref", None, [vp]),
        ("xkb_state_new", vp, [vp]),
        ("xkb_state_unref", None, [vp]),
        ("xkb_state_update_key", ctypes.c_int, [vp, ctypes.c_uint32, ctypes.c_int]),
        ("xkb_state_serialize_mods", ctypes.c_uint32, [vp, ctypes.c_int]),
        ("xkb_state_serialize_layout", ctypes.c_uint32, [vp, ctypes.c_int]),
        ("xkb_state_key_get_one_sym", ctypes.c_uint32, [vp, ctypes.c_uint32]),
        ("xkb_keysym_get_name", ctypes.c_int, [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t]),
    ):
        f = getattr(lib, fn)
        f.restype, f.argtypes = res, args
    return lib


@dataclass(frozen=True)
class Mods:
    """wl_keyboard.modifiers' four values."""
    depressed: int = 0
    latched: int = 0
    locked: int = 0
    group: int = 0


@dataclass(frozen=True)
class Layout:
    rules: str = "evdev"
    model: str = "pc105"
    layout: str = "us"
    variant: str = ""
    options: str = ""


class Keymap:
    """A compiled keymap, its text in a sealed memfd (shared with every client: read-only, it
    cannot be changed through the fd), and the compositor's key state."""

    def __init__(self, layout: Layout = Layout()) -> None:
        self.lib = _lib()
        libc = ctypes.CDLL(None)
        libc.free.argtypes = [ctypes.c_void_p]
        self.ctx = self.lib.xkb_context_new(0)
        if not self.ctx:
            raise XkbError("xkb_context_new failed")
        names = _RuleNames(*(v.encode() or None for v in (layout.rules, layout.model, layout.layout,
                                                            layout.variant, layout.options)))
        self.keymap = self.lib.xkb_keymap_new_from_names(self.ctx, ctypes.byref(names), 0)
        if not self.keymap:
            self.lib.xkb_context_unref(self.ctx)
            raise XkbError(f"no keymap for {layout} (is xkb-data installed?)")
        text = self.lib.xkb_keymap_get_as_string(self.keymap, XKB_KEYMAP_FORMAT_TEXT_V1)
        self.text = ctypes.string_at(text) + b"\0"  # clients mmap `size` bytes and expect a C string
        libc.free(text)
        self.state = self.lib.xkb_state_new(self.keymap)
        self.fd = os.memfd_create("nexquelium-keymap", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(self.fd, self.text)
        fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
        self.mods = Mods()

    @property
    def size(self) -> int:
        return len(self.text)

    def update_key(self, evdev_code: int, pressed: bool) -> bool:
        """Feed a key to the state; True when the serialized modifiers changed (send them)."""
        self.lib.xkb_state_update_key(self.state, evdev_code + EVDEV_OFFSET, XKB_KEY_DOWN if pressed else XKB_KEY_UP)
        serialize = self.lib.xkb_state_serialize_mods
        mods = Mods(int(serialize(self.state, XKB_STATE_MODS_DEPRESSED)),
                    int(serialize(self.state, XKB_STATE_MODS_LATCHED)),
                    int(serialize(self.state, XKB_STATE_MODS_LOCKED)),
                    int(self.lib.xkb_state_serialize_layout(self.state, XKB_STATE_LAYOUT_EFFECTIVE)))
        changed, self.mods = mods != self.mods, mods
        return changed

    def keysym_name(self, evdev_code: int) -> str:
        """The keysym the key gives in the current state ("a", "A", "Tab", "Alt_L")."""
        sym = self.lib.xkb_state_key_get_one_sym(self.state, evdev_code + EVDEV_OFFSET)
        buf = ctypes.create_string_buffer(64)
        n = self.lib.xkb_keysym_get_name(sym, buf, len(buf))
        return buf.value.decode() if n > 0 else ""

    def close(self) -> None:
        if self.state:
            self.lib.xkb_state_unref(self.state)
            self.lib.xkb_keymap_unref(self.keymap)
            self.lib.xkb_context_unref(self.ctx)
            os.close(self.fd)
            self.state = None
