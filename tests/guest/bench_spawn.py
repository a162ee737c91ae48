"""Runs in the guest: capsule spawn-into-cgroup latency against a bare fork/exec, and PID 1's RSS.

Capsule latency = from the `start` request on the control socket to PID 1's `ready` event
(readiness "started": the exec succeeded inside the capsule's cgroup), for a scoped capsule
(`benchcap`: its own namespaces and root) and an unconfined one (`benchcap-host`). Baseline = the same
program started with subprocess.Popen (which also returns once the exec succeeded), in this
same process and run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, "/usr/lib/exosphere")
from exo_init.client.control import call, subscribe

SOCK = Path("/run/exosphere/control.sock")
PROGRAM = ["/bin/sleep", "1000"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    events: list[dict[str, object]] = []
    cond = threading.Condition()
    subscribed = threading.Event()

    def watch() -> None:
        for ev in subscribe(SOCK, on_subscribed=subscribed.set):
            with cond:
                events.append(ev)
                cond.notify_all()

    threading.Thread(target=watch, daemon=True).start()
    subscribed.wait(10)

    def wait_event(name: str, state: str, after: int) -> dict[str, object]:
        with cond:
            ok = cond.wait_for(lambda: any(e["capsule"] == name and e["new"] == state
                                           for e in events[after:]), timeout=30)
            if not ok:
                raise SystemExit(f"{name} never reached {state}")
            return next(e for e in events[after:] if e["capsule"] == name and e["new"] == state)

    def starts(name: str) -> list[float]:
        out: list[float] = []
        for _ in range(runs):
            mark = len(events)
            t0 = time.time()
            call(SOCK, {"op": "start", "name": name})
            ready = wait_event(name, "ready", mark)
            out.append((float(ready["time"]) - t0) * 1000)  # type: ignore[arg-type]
            mark = len(events)
            call(SOCK, {"op": "stop", "name": name})
            wait_event(name, "stopped", mark)
        return out

    capsule = starts("benchcap")
    host = starts("benchcap-host")

    bare: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(PROGRAM)
        bare.append((time.perf_counter() - t0) * 1000)
        proc.kill()
        proc.wait()

    status = Path("/proc/1/status").read_text().splitlines()
    rss_kb = int(next(line.split()[1] for line in status if line.startswith("VmRSS:")))
    result = {
        "runs": runs,
        "capsule_ms": {"p50": pct(capsule, 50), "p99": pct(capsule, 99), "mean": statistics.mean(capsule)},
        "host_capsule_ms": {"p50": pct(host, 50), "p99": pct(host, 99), "mean": statistics.mean(host)},
        "bare_fork_exec_ms": {"p50": pct(bare, 50), "p99": pct(bare, 99), "mean": statistics.mean(bare)},
        "ratio_p50": pct(capsule, 50) / pct(bare, 50),
        "pid1_rss_kib": rss_kb,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
