"""Benchmark: exo_init against systemd, on the same machine, kernel, QEMU settings and programs.

Boots the test image (exo_init is PID 1) and its systemd variant (the same base plus systemd-sysv,
the same manifest's capsules as the units `exoctl export-systemd` writes; qemu/build.py) N times
each, alternating, in this one process and run, and measures in each guest with
tests/guest/bench_versus.py (the same script under both inits):

  boot      kernel start -> PID 1 exec (the kernel's "Run ... as init process" line);
            PID 1 exec -> every service ready: the same capsules (every autostart one but exo_init's
            own plane), and each init's whole boot (exo_init's "boot complete", with its Sentry,
            D-Bus bridge and dashboard; systemd's "startup finished", with journald and udev)
  memory    PID 1's RSS and MemAvailable, SETTLE seconds after the boot
  spawn     start -> ready of a notify-type service (scoped and unconfined), against a bare
            fork/exec of the same program in the same guest until its READY=1
  restart   kill -9 of the main process -> ready again
  control   `exoctl status NAME` against `systemctl show NAME`, and the API calls beneath them
  scale     (in the last boot of each) SCOPED + HOST trivial services added live: until all are
            ready, then PID 1's and the Sentry's (systemd: journald's) CPU and RSS over STEADY s

Prints every boot, then medians with their spread and the ratio exo_init / systemd, and writes
everything measured as JSON. Timings are only ever compared within this run.
Usage: python3 -m tests.bench.versus [N] [--runs R] [--no-scale] [--scale-scoped S] [--scale-host H]
                                      [--steady SECONDS] [--memory MB] [--only spawn,restart,control,scale]
                                      [--json PATH]
(needs root: it builds the images)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exo_init.pid1.manifest import load_manifest
from qemu.build import EXO_INIT_PLANE, VERBOSE_KERNEL, Image, build
from qemu.vm import VMConfig, accel
from tests.machine import HarnessError, Machine, TestFailure, boot_times
from tests.vm.conftest import BOOT_TIMEOUT, TEST_LAYER

VARIANTS = ("exo_init", "systemd")
BOOTED = {"exo_init": r"boot complete: .*\n", "systemd": r"Reached target .*Exosphere capsules"}
BENCH = "python3 /usr/lib/exosphere/test/bench_versus.py"
SETTLE = 10.0  # seconds after boot before memory is read (both systems idle by then)
PHASES = ("spawn", "restart", "control", "scale")


@dataclass
class Boot:
    variant: str
    pid1_exec: float                  # kernel start -> PID 1 exec (s)
    same_ready: float                 # PID 1 exec -> the last of the common capsules ready (s)
    all_ready: float                  # PID 1 exec -> the init's own "boot complete" / "startup finished" (s)
    ready: dict[str, float]           # capsule -> s since PID 1 exec
    pid1_rss_kib: int = 0
    mem_available_kib: int = 0
    results: dict[str, Any] = field(default_factory=dict)  # spawn, bare, restart, control, scale


def printk_time(console: str, regex: str) -> float:
    found = re.search(r"\[ *(\d+\.\d+)\] " + regex, console)
    return float(found.group(1)) if found else math.nan


def guest(m: Machine, command: str, timeout: float = 900.0) -> dict[str, Any]:
    out = m.succeed(f"{BENCH} {command}", timeout=timeout)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def one_boot(image: Image, variant: str, common: list[str], workdir: Path, args: argparse.Namespace, *,
             scale: bool) -> Boot:
    # (the kernel's "Run ... as init process" line is a time point: not quiet, in both variants)
    cmdline = f"{image.cmdline} {VERBOSE_KERNEL} {args.exo_append}".strip() if variant == "exo_init" \
        else f"{image.cmdline} {VERBOSE_KERNEL}"
    m = Machine(variant, VMConfig(kernel=image.kernel, initrd=image.initrd, cmdline=cmdline, memory_mb=args.memory),
                workdir, global_timeout=4 * 3600, echo=False)
    with m.running():
        m.wait_for_console_text(BOOTED[variant], BOOT_TIMEOUT)
        exec_at = printk_time(m.console, r"Run \S+ as init process")
        first = guest(m, "boot " + " ".join(common))
        ready = {n: round(t - exec_at, 3) for n, t in first["ready"].items()}
        if first["missing"]:
            raise RuntimeError(f"{variant}: not ready after boot: {first['missing']}")
        if variant == "exo_init":
            all_ready = boot_times(m.console)["since_kernel"] - exec_at
        else:
            all_ready = float(first["finish"]) - exec_at
        boot = Boot(variant, exec_at, max(ready[n] for n in common), round(all_ready, 3), ready)
        time.sleep(SETTLE)
        settled = guest(m, "boot")
        boot.pid1_rss_kib, boot.mem_available_kib = settled["pid1_rss_kib"], settled["mem_available_kib"]
        r = boot.results
        if "spawn" in args.only:
            r["spawn_host"] = guest(m, f"spawn bench-notify-host {args.runs}")["ms"]
            r["spawn_scoped"] = guest(m, f"spawn bench-notify {args.runs}")["ms"]
            r["bare"] = guest(m, f"bare {args.runs}")["ms"]
        if "restart" in args.only:
            r["restart_host"] = guest(m, f"restart bench-notify-host {args.restarts}")["ms"]
            r["restart_scoped"] = guest(m, f"restart bench-notify {args.restarts}")["ms"]
        if "control" in args.only:
            control = guest(m, f"control bench-notify-host {args.calls}")
            r.update({f"control_{k}": v for k, v in control.items() if k != "pid1"})
        if scale and "scale" in args.only:
            try:
                r["scale"] = guest(m, f"scale {args.scale_scoped} {args.scale_host} {args.steady}", timeout=3600)
            except (TestFailure, HarnessError) as e:  # (a guest that cannot take them is a finding, not a crash)
                r["scale"] = {"error": str(e)[-2000:]}
    return boot


# --- statistics -------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and not math.isnan(a / b) else "-"


def summary(boots: dict[str, list[Boot]]) -> list[tuple[str, str, str, str]]:
    """(figure, exo_init, systemd, exo_init / systemd) rows."""
    rows: list[tuple[str, str, str, str]] = []
    per_boot: list[tuple[str, Callable[[Boot], float]]] = [("kernel start -> PID 1 exec (s)", lambda b: b.pid1_exec),
                ("PID 1 exec -> the same capsules ready (s)", lambda b: b.same_ready),
                ("PID 1 exec -> its whole boot done (s)", lambda b: b.all_ready),
                ("PID 1 RSS (MiB)", lambda b: b.pid1_rss_kib / 1024),
                ("MemAvailable after boot (MiB)", lambda b: b.mem_available_kib / 1024)]
    for label, get in per_boot:
        e, s = [get(b) for b in boots["exo_init"]], [get(b) for b in boots["systemd"]]
        rows.append((label, spread(e), spread(s), ratio(statistics.median(e), statistics.median(s))))

    def pooled(v: str, key: str) -> list[float]:
        return [x for b in boots[v] for x in b.results.get(key, [])]

    for key, label in (("spawn_host", "spawn start -> ready, unconfined"), ("spawn_scoped", "spawn, scoped"),
                       ("bare", "bare fork/exec -> READY=1"), ("restart_host", "kill -9 -> ready again, unconfined"),
                       ("restart_scoped", "kill -9 -> ready again, scoped"),
                       ("control_cli", "status CLI (exoctl status / systemctl show)"),
                       ("control_cli_socket", "exoctl --via socket status"),
                       ("control_api", "status API call (control socket / D-Bus GetAll)")):
        e, s = pooled("exo_init", key), pooled("systemd", key)
        if not e and not s:
            continue
        for p in (50, 99):
            ev = f"{pct(e, p):.1f}" if e else "-"
            sv = f"{pct(s, p):.1f}" if s else "-"
            rows.append((f"{label} p{p} (ms, n={len(e)}/{len(s)})", ev, sv,
                         ratio(pct(e, p), pct(s, p)) if e and s else "-"))
    for v in VARIANTS:
        if not pooled(v, "bare"):
            continue
        bare50 = pct(pooled(v, "bare"), 50)
        for key in ("spawn_host", "spawn_scoped"):
            rows.append((f"{v}: {key} p50 / bare fork/exec p50 (same guest)", "", "",
                         ratio(pct(pooled(v, key), 50), bare50)))
    return rows


def scale_rows(boots: dict[str, list[Boot]]) -> list[tuple[str, str, str, str]]:
    found = {v: next((b.results["scale"] for b in boots[v] if "scale" in b.results), None) for v in VARIANTS}
    e, s = found["exo_init"], found["systemd"]
    if e is None or s is None:
        return []
    if "error" in e or "error" in s:
        return [("scale: failed", e.get("error", "")[-300:], s.get("error", "")[-300:], "")]
    rows = [(f"scale: {e['services']} services added -> all ready (s)", f"{e['all_ready_s']:.1f}",
             f"{s['all_ready_s']:.1f}", ratio(e["all_ready_s"], s["all_ready_s"]))]
    for v, found_v in found.items():
        if found_v is not None and ("gave_up" in found_v or found_v.get("failed") or found_v.get("not_active")):
            rows.append((f"scale: {v} did not finish", str(found_v.get("gave_up", "")),
                         f"{found_v.get('failed', 0)} failed, {found_v.get('not_active', 0)} not active", ""))
    es, ss = e["steady"], s["steady"]

    def cpu(fig: dict[str, Any], key: str) -> float:
        return float(fig.get(key, {}).get("cpu_percent", math.nan))

    def rss(fig: dict[str, Any], key: str) -> float:
        return float(fig.get(key, {}).get("rss_kib", math.nan)) / 1024

    rows.append(("scale: PID 1 CPU at steady state (% of one CPU)", f"{cpu(es, 'pid1'):.1f}", f"{cpu(ss, 'pid1'):.1f}",
                 ratio(cpu(es, "pid1"), cpu(ss, "pid1"))))
    rows.append(("scale: PID 1 + Sentry / PID 1 + journald CPU (%)", f"{cpu(es, 'pid1') + cpu(es, 'sentry'):.1f}",
                 f"{cpu(ss, 'pid1') + cpu(ss, 'journald'):.1f}", ""))
    rows.append(("scale: exo_init's dashboard CPU (%)", f"{cpu(es, 'dashboard'):.1f}", "-", ""))
    rows.append(("scale: PID 1 RSS (MiB)", f"{rss(es, 'pid1'):.1f}", f"{rss(ss, 'pid1'):.1f}",
                 ratio(rss(es, "pid1"), rss(ss, "pid1"))))
    rows.append(("scale: Sentry / journald RSS (MiB)", f"{rss(es, 'sentry'):.1f}", f"{rss(ss, 'journald'):.1f}", ""))
    rows.append(("scale: MemAvailable with them (MiB)", f"{e['mem_available_after_kib'] / 1024:.0f}",
                 f"{s['mem_available_after_kib'] / 1024:.0f}", ""))
    return rows


def line(b: Boot) -> str:
    r = b.results
    spawn = (f"; spawn p50 {pct(r['spawn_host'], 50):.0f}/{pct(r['spawn_scoped'], 50):.0f} ms "
             f"(bare {pct(r['bare'], 50):.0f})") if "bare" in r else ""
    return (f"PID 1 exec {b.pid1_exec:5.2f} s, same capsules ready +{b.same_ready:5.2f} s, "
            f"whole boot +{b.all_ready:5.2f} s, PID 1 RSS {b.pid1_rss_kib / 1024:.1f} MiB, "
            f"MemAvailable {b.mem_available_kib / 1024:.0f} MiB{spawn}")


def table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("figure", "exo_init", "systemd", "exo_init/systemd")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python3 -m tests.bench.versus")
    p.add_argument("n", type=int, nargs="?", default=3, help="boots of each image (default 3)")
    p.add_argument("--runs", type=int, default=50, help="spawns per boot and kind (default 50)")
    p.add_argument("--restarts", type=int, default=20, help="kill -9 restarts per boot and kind (default 20)")
    p.add_argument("--calls", type=int, default=30, help="status calls per boot and kind (default 30)")
    p.add_argument("--no-scale", action="store_true")
    p.add_argument("--scale-scoped", type=int, default=500)
    p.add_argument("--scale-host", type=int, default=500)
    p.add_argument("--memory", type=int, default=1024, metavar="MB",
                   help="each guest's memory (default 1024; 1,000 services need more: ~1.5 MiB each)")
    p.add_argument("--steady", type=float, default=30.0, help="seconds of steady state measured (default 30)")
    p.add_argument("--json", type=Path, default=None, help="write every figure here")
    p.add_argument("--exo-append", default="", metavar="ARGS",
                   help="kernel command line words for exo_init's boots (e.g. exo.zygote=0: what the zygote buys)")
    p.add_argument("--only", default=",".join(PHASES),
                   help=f"comma-separated phases besides the boot figures (default: all of {','.join(PHASES)})")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    args.only = set(args.only.split(","))
    if not args.only <= set(PHASES):
        p.error(f"--only: phases are {', '.join(PHASES)}")
    images = {v: build([TEST_LAYER], iso=False, init=v) for v in VARIANTS}
    manifest = load_manifest(images["exo_init"].manifest)
    common = sorted(n for n, c in manifest.capsules.items() if c.autostart and n not in EXO_INIT_PLANE)
    boots: dict[str, list[Boot]] = {v: [] for v in VARIANTS}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.n):
            for v in VARIANTS:
                b = one_boot(images[v], v, common, Path(tmp) / f"{v}-{i}", args,
                             scale=not args.no_scale and i == args.n - 1)
                boots[v].append(b)
                print(f"boot {i + 1} {v:8}: {line(b)}", flush=True)
                save(args, common, boots)  # (after every boot: a run cut short keeps what it measured)
    print(f"\naccelerator {accel(images['exo_init'].kernel)}; {args.n} boots of each, alternating, "
          + (f"exo_init with {args.exo_append!r}, " if args.exo_append else "")
          + f"{(time.monotonic() - started) / 60:.0f} min; the same capsules: {', '.join(common)}")
    print("medians [min-max] over the boots; percentiles over every call of every boot\n")
    print(table(summary(boots) + scale_rows(boots)))
    if args.json is not None:
        save(args, common, boots)
        print(f"\nevery figure: {args.json}")


def save(args: argparse.Namespace, common: list[str], boots: dict[str, list[Boot]]) -> None:
    if args.json is None:
        return
    args.json.parent.mkdir(parents=True, exist_ok=True)
    shown = {k: sorted(a) if isinstance(a, set) else str(a) if isinstance(a, Path) else a
             for k, a in vars(args).items()}
    args.json.write_text(json.dumps({"args": shown, "common": common,
                                     "boots": {v: [asdict(b) for b in bs] for v, bs in boots.items()}}, indent=1))


if __name__ == "__main__":
    main()
