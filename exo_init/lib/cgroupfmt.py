"""The text formats of cgroup v2 interface files, read by PID 1 (pid1/cgroups.py) and the Sentry
(system/sentry.py) alike: flat keyed files (`memory.events`, `cpu.stat`: "KEY VALUE" lines) and
pressure files (`memory.pressure`: "some avg10=... avg60=... total=..." lines)."""

from __future__ import annotations


def flat_keyed(text: str) -> dict[str, int]:
    """The integer values of a flat keyed file; lines of another shape are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def psi_avg10(text: str) -> float | None:
    """The `some` line's avg10 of a pressure file, None if there is none."""
    for line in text.splitlines():
        if line.startswith("some "):
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                if key == "avg10":
                    return float(value)
    return None
