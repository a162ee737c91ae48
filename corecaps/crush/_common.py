# What the CoreCaps (ls, cat, ps, top) share: a library module, linked before each program that uses
# it when the image is built (qemu/build.py compile_crush_programs: corecaps/crush/_*.py are
# libraries). CWD is the runner's global (corecaps/crushcap.py RUNNER_GLOBALS).
BIDI = (0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069)


def strip_escapes(text):
    """exo_init/lib/text.py's escape sequences removed: CSI, OSC, DCS/SOS/PM/APC, ESC + one character,
    8-bit CSI (tests/test_crushcaps.py compares `printable` with exo_init's)."""
    out = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "\x9b" or (ch == "\x1b" and nxt == "["):
            i += 1 if ch == "\x9b" else 2
            while i < n and "0" <= text[i] <= "?":
                i += 1
            while i < n and " " <= text[i] <= "/":
                i += 1
            if i < n and "@" <= text[i] <= "~":
                i += 1
        elif ch == "\x1b" and nxt == "]":
            i += 2
            while i < n and text[i] != "\x07" and text[i] != "\x1b":
                i += 1
            if i < n and text[i] == "\x07":
                i += 1
            elif text[i:i + 2] == "\x1b\\":
                i += 2
        elif ch == "\x1b" and nxt != "" and nxt in "PX^_":
            i += 2
            while i < n and text[i] != "\x1b":
                i += 1
            if text[i:i + 2] == "\x1b\\":
                i += 2
        elif ch == "\x1b":
            i += 2 if nxt != "" else 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def printable(text):
    """exo_init/lib/text.py's printable: escape sequences removed, other control characters "?"."""
    if text.isprintable():  # (every character it changes is one str.isprintable refuses: the common case at once)
        return text
    out = []
    for ch in strip_escapes(text):
        n = ord(ch)
        out.append("?" if (n < 32 and n != 9) or 127 <= n <= 159 or n in BIDI else ch)
    return "".join(out)


def absolute(path):
    parts = [] if path.startswith("/") else [p for p in CWD.split("/") if p]
    for p in path.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p and p != ".":
            parts.append(p)
    return "/" + "/".join(parts)


def strerror(e):
    text = str(e)
    start = text.find("] ")
    end = text.rfind(": '")
    return text[start + 2:end] if start >= 0 and end > start else text


def fmt_bytes(n):
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)
