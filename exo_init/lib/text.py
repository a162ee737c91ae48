"""Capsule-controlled text made safe to print on an administrator's terminal.

Log lines, status text (sd_notify STATUS=), exit reasons, event details and file names come from
capsules, which may write terminal escape sequences (to retitle, hide or rewrite what is on the
screen, or worse on some terminals). Every place exoctl and the CoreCaps print such text goes
through `printable`: escape sequences are removed, other control characters (C0, DEL, C1, and the
bidirectional overrides that reorder what is shown) become "?". Tabs stay.
"""

from __future__ import annotations

import re

# ESC [ ... final (CSI), ESC ] ... BEL or ST (OSC), ESC P/X/^/_ ... ST (DCS, SOS, PM, APC), ESC + one
# character, and the 8-bit CSI (0x9b).
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[^\[\]PX^_]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` without escape sequences, its other control characters shown as "?"."""
    return _CONTROLS.sub("?", _ESCAPES.sub("", text))
