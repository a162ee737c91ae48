"""Runs in the guest, under exo_init or under systemd (whichever is PID 1): the measurements of
tests/bench/versus.py. Each subcommand prints one JSON line.

    boot NAME...              when each capsule (unit exo-NAME.service) became ready, by the guest's
                              monotonic clock; systemd's own start-up figures; PID 1's RSS; MemAvailable
    spawn NAME RUNS           start -> ready of a notify-type service, RUNS times (stopped in between):
                              exo_init's control socket (start, then its event stream) against
                              systemd's private D-Bus socket (StartUnit, then JobRemoved)
    bare RUNS                 the same program by a bare fork/exec, until its READY=1
    restart NAME RUNS         kill -9 of the main process -> ready again
    control NAME RUNS         `exoctl status NAME` (and --via socket) against `systemctl show NAME`,
                              and the raw API calls beneath them
    scale SCOPED HOST SECONDS that many trivial services (scoped, unconfined) added live; until all are
                              ready; then PID 1's (and the Sentry's / journald's) CPU and RSS over SECONDS

Times come from this process's own clock (time.perf_counter) around the request and at the moment
it learns the answer, the same way for both inits. Standard library, exo_init's control client and
(under systemd) GLib's D-Bus binding, which the image has for the D-Bus bridge.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, "/usr/lib/exosphere")
from exo_init.client.control import Subscription, call

CONTROL = Path("/run/exosphere/control.sock")
READY_PROGRAM = ["/usr/bin/python3", "-I", "-S", "/usr/lib/exosphere/test/ready.py"]
SYSTEMD_PRIVATE = "unix:path=/run/systemd/private"
SERVICE = "org.freedesktop.systemd1.Service"
TIMEOUT = 120.0
LOW_MEMORY_KIB = 48 * 1024  # the scale test stops adding to a guest about to run out of memory
SCALE_DEADLINE = 900.0      # ... or after this long


def pid1() -> str:
    return "systemd" if os.readlink("/proc/1/exe").endswith("/systemd") else "exo_init"


def unit(name: str) -> str:
    return f"exo-{name}.service"


def proc_status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def rss_kib(pid: int) -> int:
    return int(proc_status(pid)["VmRSS"].split()[0])


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def ms(t0: float, t1: float) -> float:
    return round((t1 - t0) * 1000, 3)


def output(argv: list[str]) -> str:
    """A command's stdout; one error naming the command, its status and its stderr if it fails."""
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)[:200]}: exit status {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout


def systemctl_show(names: list[str], props: str) -> dict[str, dict[str, str]]:
    out = output(["systemctl", "show", "-p", f"Id,{props}", *names])
    result: dict[str, dict[str, str]] = {}
    for block in out.strip().split("\n\n"):
        fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        result[fields.get("Id", "")] = fields
    return result


# --- exo_init: the control socket and its event stream ---------------------------------------------

class Events:
    """exo_init's event stream (the one control client's Subscription), read from this thread (no
    helper thread: the time an event is seen is the time this process learns it)."""

    def __init__(self) -> None:
        self.sub = Subscription(CONTROL, TIMEOUT)
        self.pending: list[dict[str, Any]] = []

    def next_event(self, timeout: float) -> dict[str, Any]:
        while not self.pending:
            self.pending += self.sub.events(timeout)
            if not self.pending:
                raise TimeoutError("no event from exo_init")
        return self.pending.pop(0)

    def wait(self, name: str, state: str, timeout: float = TIMEOUT) -> float:
        """perf_counter() when `name` was seen entering `state`."""
        while True:
            event = self.next_event(timeout)
            if event.get("capsule") == name and event.get("new") == state:
                return time.perf_counter()
            if event.get("capsule") == name and event.get("new") == "failed":
                raise RuntimeError(f"{name} failed: {event.get('reason')}")

    def close(self) -> None:
        self.sub.close()


def exo(request: dict[str, Any], timeout: float = 60.0) -> Any:
    return call(CONTROL, request, timeout=timeout)


# --- systemd: its private D-Bus socket ------------------------------------------------------------

class Systemd:
    """A connection to systemd's private socket (what systemctl uses as root): StartUnit/StopUnit,
    and the JobRemoved and PropertiesChanged signals."""

    def __init__(self) -> None:
        from gi.repository import Gio, GLib  # (only under systemd)

        self.Gio, self.GLib = Gio, GLib
        self.con = Gio.DBusConnection.new_for_address_sync(
            SYSTEMD_PRIVATE, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT, None, None)
        self.ctx = GLib.MainContext.default()
        self.jobs: dict[str, tuple[float, str]] = {}       # job path -> (seen at, result)
        self.states: list[tuple[float, str, str]] = []     # (seen at, unit path, ActiveState)
        self.con.signal_subscribe(None, "org.freedesktop.systemd1.Manager", "JobRemoved",
                                  "/org/freedesktop/systemd1", None, Gio.DBusSignalFlags.NONE, self._job_removed)
        self.con.signal_subscribe(None, "org.freedesktop.DBus.Properties", "PropertiesChanged", None,
                                  "org.freedesktop.systemd1.Unit", Gio.DBusSignalFlags.NONE, self._changed)
        self.manager("Subscribe", None)

    def _job_removed(self, *args: Any) -> None:
        _id, job, _unit, result = args[5].unpack()
        self.jobs[job] = (time.perf_counter(), result)

    def _changed(self, *args: Any) -> None:
        changed = args[5].unpack()[1]
        if "ActiveState" in changed:
            self.states.append((time.perf_counter(), args[2], changed["ActiveState"]))

    def manager(self, method: str, params: Any, reply: str | None = None) -> Any:
        GLib = self.GLib
        return self.con.call_sync("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                  "org.freedesktop.systemd1.Manager", method, params,
                                  GLib.VariantType(reply) if reply else None, 0, -1, None)

    def unit_path(self, name: str) -> str:
        path: str = self.manager("LoadUnit", self.GLib.Variant("(s)", (name,)), "(o)").unpack()[0]
        return path

    def get(self, name: str, interface: str, prop: str) -> Any:
        GLib = self.GLib
        reply = self.con.call_sync("org.freedesktop.systemd1", self.unit_path(name),
                                   "org.freedesktop.DBus.Properties", "Get",
                                   GLib.Variant("(ss)", (interface, prop)), GLib.VariantType("(v)"), 0, -1, None)
        return reply.unpack()[0]

    def get_all(self, path: str) -> Any:
        """Every property of the unit at `path` (the reply as it comes: what systemctl show asks)."""
        GLib = self.GLib
        return self.con.call_sync("org.freedesktop.systemd1", path, "org.freedesktop.DBus.Properties", "GetAll",
                                  GLib.Variant("(s)", ("",)), GLib.VariantType("(a{sv})"), 0, -1, None)

    def drain(self) -> None:
        """Deliver what has arrived (a late signal of an earlier change must not count later)."""
        time.sleep(0.2)
        while self.ctx.iteration(False):
            pass

    def pump(self, done: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from systemd")
            self.ctx.iteration(True)

    def job(self, method: str, name: str) -> float:
        """StartUnit/StopUnit and wait for its job: perf_counter() when it was removed (done)."""
        job = self.manager(method, self.GLib.Variant("(ss)", (name, "replace")), "(o)").unpack()[0]
        self.pump(lambda: job in self.jobs)
        seen, result = self.jobs.pop(job)
        if result != "done":
            raise RuntimeError(f"{method} {name}: job {result}")
        return seen


# --- the measurements -------------------------------------------------------------------------------

def boot(names: list[str]) -> dict[str, Any]:
    init = pid1()
    out: dict[str, Any] = {"pid1": init, "ready": {}}
    if init == "exo_init":
        now = time.monotonic()
        for st in exo({"op": "status"}):
            if st["state"] in ("ready", "exited"):
                out["ready"][st["name"]] = round(now - float(st["since"]), 3)
        info = exo({"op": "info"})
        out["boot_complete"] = info.get("boot_complete")
    else:
        manager = systemctl_show([], "UserspaceTimestampMonotonic,FinishTimestampMonotonic")
        fields = next(iter(manager.values()))
        out["userspace"] = int(fields["UserspaceTimestampMonotonic"]) / 1e6
        out["finish"] = int(fields["FinishTimestampMonotonic"]) / 1e6
        units = systemctl_show([unit(n) for n in names], "ActiveState,ActiveEnterTimestampMonotonic")
        for n in names:
            u = units.get(unit(n), {})
            if u.get("ActiveState") == "active":
                out["ready"][n] = int(u["ActiveEnterTimestampMonotonic"]) / 1e6
    out["missing"] = [n for n in names if n not in out["ready"]]
    out["pid1_rss_kib"] = rss_kib(1)
    out["mem_available_kib"] = mem_available_kib()
    return out


def spawn(name: str, runs: int) -> dict[str, Any]:
    times: list[float] = []
    if pid1() == "exo_init":
        events = Events()
        for _ in range(runs):
            t0 = time.perf_counter()
            exo({"op": "start", "name": name})
            times.append(ms(t0, events.wait(name, "ready")))
            exo({"op": "stop", "name": name})
            events.wait(name, "stopped")
        events.close()
    else:
        sd = Systemd()
        for _ in range(runs):
            t0 = time.perf_counter()
            times.append(ms(t0, sd.job("StartUnit", unit(name))))
            sd.job("StopUnit", unit(name))
    return {"ms": times}


def bare(runs: int) -> dict[str, Any]:
    path = f"/run/bench-notify-{os.getpid()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(TIMEOUT)
    times, execs = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(READY_PROGRAM, env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": path})
        t_exec = time.perf_counter()
        sock.recv(64)
        times.append(ms(t0, time.perf_counter()))
        execs.append(ms(t0, t_exec))
        proc.kill()
        proc.wait()
    sock.close()
    os.unlink(path)
    return {"ms": times, "exec_ms": execs}


def restart(name: str, runs: int) -> dict[str, Any]:
    times: list[float] = []
    if pid1() == "exo_init":
        events = Events()
        exo({"op": "start", "name": name})
        events.wait(name, "ready")
        for _ in range(runs):
            pid = int(exo({"op": "status", "name": name})["pid"])
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            times.append(ms(t0, events.wait(name, "ready")))
        exo({"op": "stop", "name": name})
        events.wait(name, "stopped")
        events.close()
    else:
        sd = Systemd()
        u = unit(name)
        sd.job("StartUnit", u)
        path = sd.unit_path(u)
        for _ in range(runs):
            pid = int(sd.get(u, SERVICE, "MainPID"))
            sd.drain()
            sd.states.clear()
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)

            def active_again(path: str = path) -> bool:
                seen = [s for _t, p, s in sd.states if p == path]
                downs = [i for i, s in enumerate(seen) if s != "active"]
                return bool(downs) and "active" in seen[downs[-1]:]

            sd.pump(active_again)
            seen = [(t, s) for t, p, s in sd.states if p == path]
            last_down = max(i for i, (_t, s) in enumerate(seen) if s != "active")
            times.append(ms(t0, next(t for t, s in seen[last_down:] if s == "active")))
        sd.job("StopUnit", u)
    return {"ms": times}


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return ms(t0, time.perf_counter())


def control(name: str, runs: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {}
    if pid1() == "exo_init":
        exo({"op": "start", "name": name})
        series: dict[str, Callable[[], float]] = {
            "cli": lambda: timed(["exoctl", "status", name]),
            "cli_socket": lambda: timed(["exoctl", "--via", "socket", "status", name]),
        }

        def raw() -> float:
            t0 = time.perf_counter()
            exo({"op": "status", "name": name})
            return ms(t0, time.perf_counter())
        series["api"] = raw
    else:
        sd = Systemd()
        sd.job("StartUnit", unit(name))
        series = {"cli": lambda: timed(["systemctl", "show", unit(name)])}
        path = sd.unit_path(unit(name))

        def raw_sd() -> float:
            t0 = time.perf_counter()
            sd.get_all(path)
            return ms(t0, time.perf_counter())
        series["api"] = raw_sd
    for key, fn in series.items():
        fn()  # (the first call warms the page cache; not counted)
        out[key] = [fn() for _ in range(runs)]
    if pid1() == "exo_init":
        exo({"op": "stop", "name": name})
    else:
        subprocess.run(["systemctl", "stop", unit(name)], check=True)
    return out


def scale_capsules(scoped: int, host: int) -> dict[str, Any]:
    caps: dict[str, Any] = {}
    for i in range(scoped):
        caps[f"scale-s{i:04d}"] = {"argv": ["/bin/sleep", "infinity"], "description": "trivial, scoped"}
    for i in range(host):
        caps[f"scale-h{i:04d}"] = {"argv": ["/bin/sleep", "infinity"], "description": "trivial, unconfined",
                                   "capabilities": {"host": True}}
    return caps


def cgroup_usec(cgroup: str) -> int:
    for line in Path(f"/sys/fs/cgroup/{cgroup}/cpu.stat").read_text().splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1])
    return 0


def steady(watched: dict[str, tuple[int, str | None]], seconds: float) -> dict[str, Any]:
    """CPU (% of one CPU) of each watched process over `seconds` -- by its cgroup (what a capsule
    or unit costs, every process of it) where it has one of its own, else by /proc (PID 1) -- and
    its main process's RSS. A process that went away meanwhile is reported so."""
    hz = os.sysconf("SC_CLK_TCK")
    before: dict[str, float] = {}
    for k, (pid, cgroup) in watched.items():
        try:
            before[k] = cgroup_usec(cgroup) / 1e6 if cgroup else cpu_ticks(pid) / hz
        except OSError:
            before[k] = -1.0
    t0 = time.monotonic()
    time.sleep(seconds)
    dt = time.monotonic() - t0
    out: dict[str, Any] = {}
    for k, (pid, cgroup) in watched.items():
        try:
            if before[k] < 0:
                raise OSError("not running")
            now = cgroup_usec(cgroup) / 1e6 if cgroup else cpu_ticks(pid) / hz
            out[k] = {"cpu_percent": round((now - before[k]) / dt * 100, 2), "rss_kib": rss_kib(pid)}
        except OSError as e:
            out[k] = {"error": f"{k} (pid {pid}): {e}"}
    return out


def scale(scoped: int, host: int, seconds: float) -> dict[str, Any]:
    caps = scale_capsules(scoped, host)
    names = set(caps)
    out: dict[str, Any] = {"services": len(caps), "mem_available_before_kib": mem_available_kib()}
    deadline = SCALE_DEADLINE
    if pid1() == "exo_init":
        current = json.loads(Path("/etc/exosphere/manifest.json").read_text())
        current["capsules"].update(caps)
        target = Path("/run/scale-manifest.json")
        target.write_text(json.dumps(current))
        events = Events()
        t0 = time.perf_counter()
        exo({"op": "switch", "target": str(target), "try": False}, timeout=deadline)
        pending = set(names)
        last = t0
        while pending:
            try:
                event = events.next_event(5.0)
            except TimeoutError:
                event = {}
            if event.get("capsule") in pending and event.get("new") == "ready":
                pending.discard(event["capsule"])
                last = time.perf_counter()
            elif event.get("capsule") in pending and event.get("new") == "failed":
                out["failed"] = out.get("failed", 0) + 1
                pending.discard(event["capsule"])
            if mem_available_kib() < LOW_MEMORY_KIB or time.perf_counter() - t0 > deadline:
                out["gave_up"] = (f"{len(pending)} of {len(names)} not ready after {time.perf_counter() - t0:.0f} s; "
                                  f"MemAvailable {mem_available_kib() // 1024} MiB")
                break
        events.close()
        out["all_ready_s"] = round(last - t0, 3)
        plane = {n: exo({"op": "status", "name": n}, 600) for n in ("sentry", "dashboard")}
        out["plane_restarts"] = {n: st["restarts"] for n, st in plane.items()}
        watched: dict[str, tuple[int, str | None]] = {"pid1": (1, None)}
        for n, st in plane.items():
            pid = int(st["pid"] or 0)
            if n == "dashboard":  # (scoped: its main pid is the namespace's init; the program is its child)
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                pid = int(children[0]) if children else pid
            watched[n] = (pid, f"capsules/{n}")
    else:
        work = Path("/run/scale-units")
        manifest = Path("/run/scale-manifest.json")
        manifest.write_text(json.dumps({"version": 1, "capsules": caps}))
        output(["exoctl", "export-systemd", str(manifest), "-o", str(work)])
        target = Path("/run/systemd/system")
        target.mkdir(parents=True, exist_ok=True)
        for f in work.glob("exo-scale-*.service"):
            f.rename(target / f.name)
        units = sorted(unit(n) for n in names)
        (target / "bench-scale.target").write_text(
            "[Unit]\nDescription=scale benchmark\nWants=" + " ".join(units) + "\nAfter=" + " ".join(units) + "\n")
        t0 = time.perf_counter()
        output(["systemctl", "daemon-reload"])
        start = subprocess.Popen(["systemctl", "start", "bench-scale.target"])
        while start.poll() is None:  # (the same give-up rule as exo_init's side)
            time.sleep(2.0)
            if mem_available_kib() < LOW_MEMORY_KIB or time.perf_counter() - t0 > deadline:
                start.kill()
                start.wait()
                left = mem_available_kib() // 1024
                out["gave_up"] = f"after {time.perf_counter() - t0:.0f} s; MemAvailable {left} MiB"
                break
        out["all_ready_s"] = round(time.perf_counter() - t0, 3)
        # (one ListUnitsByPatterns call: `systemctl show` of a thousand units asks for each one's
        # properties in turn, and ended in exit status 1 in the 4 GiB run of 2026-12-05)
        listed = output(["systemctl", "list-units", "--all", "--plain", "--no-legend", "--no-pager",
                         "exo-scale-*.service"]).splitlines()
        active = {f[0] for f in (line.split() for line in listed) if len(f) > 2 and f[2] == "active"}
        out["not_active"] = len(set(units) - active)
        journald = int(systemctl_show(["systemd-journald.service"], "MainPID")["systemd-journald.service"]["MainPID"])
        watched = {"pid1": (1, None), "journald": (journald, "system.slice/systemd-journald.service")}
    out["steady"] = steady(watched, seconds)
    out["mem_available_after_kib"] = mem_available_kib()
    return out


def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "boot":
        result = boot(args)
    elif command == "spawn":
        result = spawn(args[0], int(args[1]))
    elif command == "bare":
        result = bare(int(args[0]))
    elif command == "restart":
        result = restart(args[0], int(args[1]))
    elif command == "control":
        result = control(args[0], int(args[1]))
    elif command == "scale":
        result = scale(int(args[0]), int(args[1]), float(args[2]))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps({"pid1": pid1(), **result}))


if __name__ == "__main__":
    main(sys.argv[1:])
