"""WebAssembly figures, where wasmtime runs: on the host (tests/bench/wasm.py imports this) and in
the guest (the test layer installs it as /usr/lib/exosphere/test/bench_wasm.py).

    python3 bench_wasm.py overhead [REPS]   fuel and epoch overhead on tests/guest/wasm/bench/*.wat
    python3 bench_wasm.py start [RUNS]      (guest) start -> ready of a wasm capsule, cold and cached,
                                            against an ordinary Python capsule

Overhead: each module's `run` export is timed (the call only: compiled and instantiated before)
with no interruption, with fuel (Config.consume_fuel), with epoch interruption (a deadline far
away) and with both; the best (and the median) of REPS runs, each in a fresh store, the
configurations interleaved. The modules are a recursive
Fibonacci (calls), a heapsort (memory, branches), FNV-1a (byte loads) and a tight counting loop;
every configuration must return the same result.

Start -> ready: from the control socket's `start` to PID 1's `ready` event. `wasm-ticker` (a
scoped wasm capsule, ready once its module is instantiated) cold = its compiled-module cache
emptied before the start; cached = the next start; `bench-python` = a scoped Python capsule that
is ready (sd_notify) as soon as it runs; the three interleaved, RUNS times. Also the runtime's
own figures for those starts: the compilation ("compiled in N ms") against the cache load
("loaded from cache in N ms"), which the start-to-ready figures include.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH_DIR = HERE / "wasm" / "bench"
CONFIGS = {"none": (False, False), "fuel": (True, False), "epoch": (False, True), "fuel+epoch": (True, True)}


def overhead(reps: int) -> dict[str, Any]:
    import wasmtime  # (only this part needs it)

    out: dict[str, Any] = {}
    for path in sorted(BENCH_DIR.glob("*.wat")):
        text = path.read_text()
        compiled = {}
        for name, (fuel, epoch) in CONFIGS.items():
            cfg = wasmtime.Config()
            cfg.consume_fuel = fuel
            cfg.epoch_interruption = epoch
            engine = wasmtime.Engine(cfg)
            compiled[name] = (engine, wasmtime.Module(engine, text), fuel, epoch)
        samples: dict[str, list[float]] = {name: [] for name in CONFIGS}
        results: set[int] = set()
        for _ in range(reps):  # the configurations interleaved: a shared host's drift hits them alike
            for name, (engine, module, fuel, epoch) in compiled.items():
                store = wasmtime.Store(engine)
                if fuel:
                    store.set_fuel(1 << 62)
                if epoch:
                    store.set_epoch_deadline(1 << 40)
                run: Any = wasmtime.Instance(store, module, []).exports(store)["run"]
                t0 = time.perf_counter()
                results.add(run(store))
                samples[name].append(time.perf_counter() - t0)
        if len(results) != 1:
            raise SystemExit(f"{path.name}: the configurations disagree: {sorted(results)}")
        # The best of REPS (the least disturbed by the rest of a shared machine), and the median.
        best = {name: min(values) * 1000 for name, values in samples.items()}
        median = {name: statistics.median(values) * 1000 for name, values in samples.items()}
        out[path.stem] = {"best_ms": best, "median_ms": median,
                          "overhead_pct": {k: (v / best["none"] - 1) * 100 for k, v in best.items()}}
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_to_ready(runs: int) -> dict[str, Any]:
    sys.path.insert(0, "/usr/lib/exosphere")
    from exo_init.client.control import call, subscribe

    sock = Path("/run/exosphere/control.sock")
    events: list[dict[str, Any]] = []
    cond = threading.Condition()
    subscribed = threading.Event()

    def watch() -> None:
        for ev in subscribe(sock, on_subscribed=subscribed.set):
            with cond:
                events.append(ev)
                cond.notify_all()

    threading.Thread(target=watch, daemon=True).start()
    subscribed.wait(10)

    def wait_event(name: str, state: str, after: int) -> dict[str, Any]:
        with cond:
            if not cond.wait_for(lambda: any(e["capsule"] == name and e["new"] == state for e in events[after:]),
                                 timeout=120):
                raise SystemExit(f"{name} never reached {state}: {call(sock, {'op': 'status', 'name': name})}")
            return next(e for e in events[after:] if e["capsule"] == name and e["new"] == state)

    def start(name: str) -> float:
        mark = len(events)
        t0 = time.time()
        call(sock, {"op": "start", "name": name})
        ready = wait_event(name, "ready", mark)
        mark = len(events)
        call(sock, {"op": "stop", "name": name})
        wait_event(name, "stopped", mark)
        return (float(ready["time"]) - t0) * 1000

    def load_ms(kind: str) -> float:
        """The runtime's own figure for the last start: "compiled in N ms" / "loaded from cache in N ms"."""
        lines = call(sock, {"op": "logs", "name": "wasm-ticker", "lines": 200})["lines"]
        for line in reversed(lines):
            m = re.search(r"(compiled|loaded from cache) in (\d+) ms", line)
            if m:
                if m.group(1) != kind:
                    raise SystemExit(f"wasm-ticker: expected {kind}, its log says: {line}")
                return float(m.group(2))
        raise SystemExit("wasm-ticker: no load line in its log")

    state = Path("/run/exosphere/state/capsules/wasm-ticker")
    cold: list[float] = []
    cached: list[float] = []
    python: list[float] = []
    compile_ms: list[float] = []
    cache_ms: list[float] = []
    for _ in range(runs):  # interleaved: the guest's drift hits the three alike
        for f in state.glob("*.cwasm") if state.is_dir() else ():
            f.unlink()
        cold.append(start("wasm-ticker"))
        compile_ms.append(load_ms("compiled"))
        cached.append(start("wasm-ticker"))
        cache_ms.append(load_ms("loaded from cache"))
        python.append(start("bench-python"))

    def summary(values: list[float]) -> dict[str, Any]:
        return {"p50": pct(values, 50), "p90": pct(values, 90), "mean": statistics.mean(values),
                "all": [round(v) for v in values]}

    return {"runs": runs, "wasm_cold_ms": summary(cold), "wasm_cached_ms": summary(cached),
            "python_ms": summary(python), "compile_ms": summary(compile_ms), "cache_load_ms": summary(cache_ms)}


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "overhead"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print(json.dumps(overhead(count) if what == "overhead" else start_to_ready(count)))


if __name__ == "__main__":
    main()
