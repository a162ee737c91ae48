"""The text formats of cgroup v2 interface files, read by PID 1 (pid1/cgroups.py), the Sentry
(system/sentry.py) and the dashboard alike: flat keyed files (`memory.events`, `cpu.stat`: "KEY
VALUE" lines) and pressure files (`memory.pressure`: "some avg10=... avg60=... total=..." lines);
and `CgroupFiles`, the capsules' cgroup directories read by a capsule other than PID 1."""

from __future__ import annotations

import os
from pathlib import Path


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


class CgroupFiles:
    """The capsules' cgroup directories (`info`'s cgroup root + capsules/NAME), read by the Sentry
    and the dashboard themselves: asking PID 1 for capsules' `status` with figures every second
    made PID 1 read a dozen files per capsule per second for them (in the TCG guest, a dashboard
    with the test image's dozen capsules on screen held PID 1 at 13.8 % of a CPU)."""

    def __init__(self, capsules_dir: Path) -> None:
        self.dir = capsules_dir

    def path(self, name: str, file: str = "") -> str:
        return f"{self.dir}/{name}/{file}" if name else f"{self.dir}/{file}"

    def read(self, name: str, file: str) -> str | None:
        try:
            fd = os.open(self.path(name, file), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            return os.read(fd, 65536).decode(errors="replace")
        except OSError:
            return None
        finally:
            os.close(fd)

    def counters(self, name: str) -> tuple[int, int] | None:
        """(memory.events oom_kill, pids.events max), None if the cgroup is not there."""
        mem, pids = self.read(name, "memory.events"), self.read(name, "pids.events")
        if mem is None and pids is None:
            return None
        return flat_keyed(mem or "").get("oom_kill", 0), flat_keyed(pids or "").get("max", 0)

    def value(self, name: str, file: str) -> str:
        return (self.read(name, file) or "").strip() or "max"
