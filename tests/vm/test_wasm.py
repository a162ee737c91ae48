"""WebAssembly capsules in the booted image: the runtime (exo_init/runtimes/wasm.py) with the pinned
wasmtime wheel the builder installed, under the image's own exo_init, cgroups and Scoped HAL.

The capsules are the test layer's (tests/guest/capsules.nix), their modules tests/guest/wasm/*.wat;
wasm-hello runs at boot. Each test prints what it saw.
"""

from __future__ import annotations

import errno
import json
import re
import time
from pathlib import Path

from qemu.build import TREE_SITTER
from tests.machine import Machine

WASM_DIR = Path(__file__).resolve().parent.parent / "guest" / "wasm"
EXIT_DETERMINISTIC = 65


def test_wasmtime_imports_in_the_image(machine: Machine) -> None:
    """The builder's pip download took the manylinux wheel, not the py3-none-any one (a Windows DLL)."""
    out = machine.succeed("python3 -c 'import importlib.metadata as m, wasmtime; "
                          "print(m.version(\"wasmtime\"), wasmtime.Engine().__class__.__name__)'")
    assert out.split() == ["50.0.1", "Engine"], out


def test_the_tree_sitter_wheels_import_in_the_image_and_crush_walks_each_language(machine: Machine) -> None:
    """The same platform tags brought tree-sitter and its grammars (abi3 manylinux wheels): each
    imports at the version qemu/build.py pins, and `crush run` walks a program in each language."""
    pins = [tuple(r.split("==")) for r in TREE_SITTER]
    names = ", ".join(f'"{name}"' for name, _ in pins)
    out = machine.succeed("python3 -c 'import importlib.metadata as m, tree_sitter, tree_sitter_python, "
                          f"tree_sitter_javascript, tree_sitter_rust; [print(n, m.version(n)) for n in ({names})]'")
    assert [tuple(line.split()) for line in out.splitlines() if line.strip()] == pins, out
    programs = {"py": ("print(sum([i * i for i in range(10)]))", "285"),
                "js": ("console.log([1, 2, 3].map((x) => x * x).reduce((a, b) => a + b, 0) / 4);", "3.5"),
                "rs": ('fn main() {\n    let x: u8 = 255;\n    println!("{}", x.wrapping_add(30));\n}', "29")}
    for ext, (source, _) in programs.items():
        machine.succeed(f"cat > /tmp/walk.{ext} <<'EOF'\n{source}\nEOF")
    seen = {ext: machine.succeed(f"crush run /tmp/walk.{ext}").strip() for ext in programs}
    assert seen == {ext: want for ext, (_, want) in programs.items()}, seen


def test_a_hello_module_ran_at_boot(machine: Machine) -> None:
    st = machine.capsule_status("wasm-hello")
    assert st["state"] == "exited" and st["reason"] == "exited 0", st
    assert st["runtime"] == "wasm" and 0 < st["metrics"]["fuel"]["value"] < 100, st["metrics"]
    log = machine.succeed("exoctl logs wasm-hello -n 20")
    assert "hello from wasm" in log and "hello.wat: compiled in" in log, log
    # Its compiled module is cached in its own state directory (no state disk: /run), owned by its
    # dynamic uid; a second run loads it.
    listing = machine.succeed("stat -c '%u %a' /run/exosphere/state/capsules/wasm-hello; "
                              "ls /run/exosphere/state/capsules/wasm-hello")
    owner, mode = listing.split()[:2]
    assert 61184 <= int(owner) < 65520 and mode == "700" and listing.count(".cwasm") == 1, listing
    machine.succeed("exoctl start wasm-hello")
    machine.wait_until_succeeds("exoctl logs wasm-hello -n 20 | grep 'loaded from cache'", 60)
    print(f"\nwasm-hello: {next(x for x in log.splitlines() if 'compiled in' in x).split(' ', 1)[1]}")


def test_a_runaway_loop_stops_at_its_fuel_budget_and_the_neighbour_stays_ready(machine: Machine) -> None:
    machine.succeed("exoctl start neighbour")
    neighbour = machine.wait_for_capsule("neighbour", "ready", 30)
    machine.succeed("exoctl start wasm-spin")
    st = machine.wait_for_capsule("wasm-spin", "failed", 120)
    line = "wasm trap: out of fuel (all 50000000 of wasm.fuel used); fuel 50M/50M, memory 64K/16M"
    assert st["reason"] == f"{line} (deterministic: not restarted)", st
    assert st["last_exit"] == f"exited {EXIT_DETERMINISTIC}" and st["status_text"] == line
    time.sleep(3)  # several backoff delays of its policy ("always"): it is not restarted
    again = machine.capsule_status("wasm-spin")
    assert again["state"] == "failed" and again["restarts"] == 0, again
    after = machine.capsule_status("neighbour")
    assert after["state"] == "ready" and after["pid"] == neighbour["pid"], after
    assert line in machine.succeed("exoctl logs wasm-spin -n 5")
    machine.succeed("exoctl stop neighbour")
    print(f"\nwasm-spin: failed: {st['reason']}")


def test_a_deadline_stops_a_module_within_its_bound(machine: Machine) -> None:
    machine.succeed("exoctl start wasm-deadline")
    st = machine.wait_for_capsule("wasm-deadline", "failed", 120)
    stopped = [float(x) for x in re.findall(r"stopped after ([0-9.]+) s, wasm.deadline 2 s",
                                            machine.succeed("exoctl logs wasm-deadline -n 20"))]
    assert st["restarts"] == 1 and "start limit hit (2 failures" in st["reason"], st
    assert len(stopped) == 2 and all(2.0 <= s < 4.0 for s in stopped), stopped
    print(f"\nwasm-deadline: stopped after {', '.join(f'{s:.2f}' for s in stopped)} s (deadline 2 s), "
          f"restarted once, then: {st['reason']}")


def test_memory_grow_past_the_limit_returns_minus_one_and_an_out_of_bounds_load_traps(machine: Machine) -> None:
    machine.succeed("exoctl start wasm-grow")
    st = machine.wait_for_capsule("wasm-grow", "failed", 120)
    log = machine.succeed("exoctl logs wasm-grow -n 20")
    assert "memory.grow returned -1" in log and "at pages 16" in log, log
    assert st["reason"].startswith("wasm trap: memory out of bounds (memory fault at wasm address 0x100000 in "
                                   "linear memory of size 0x100000; wasm trap: out of bounds memory access)"), st
    assert st["metrics"]["memory"] == {"value": 1 << 20, "limit": 1 << 20, "unit": "bytes"}
    print(f"\nwasm-grow: {st['reason']}")


def test_an_ungranted_import_is_refused_at_link_time(machine: Machine) -> None:
    machine.succeed("exoctl start wasm-ungranted")
    st = machine.wait_for_capsule("wasm-ungranted", "failed", 120)
    assert st["reason"] == ("wasm: import exo.fs_read refused at link time: not granted (it needs a "
                            "capabilities.filesystem entry) (deterministic: not restarted)"), st
    assert "this never runs" not in machine.succeed("exoctl logs wasm-ungranted -n 20")


def test_granted_file_read_works_and_ungranted_and_escapes_are_refused(machine: Machine) -> None:
    module = (WASM_DIR / "fs.wat.in").read_text().replace("@BASE@", "/srv/wasm")
    machine.succeed("rm -rf /srv/wasm && mkdir -p /srv/wasm/ro /srv/wasm/rw /srv/wasm/secret && "
                    "echo granted > /srv/wasm/ro/file && echo secret > /srv/wasm/secret/file && "
                    "ln -s ../secret/file /srv/wasm/ro/escape && ln -s /etc/passwd /srv/wasm/ro/abs && "
                    "chmod 777 /srv/wasm/rw && chmod 755 /srv/wasm")
    machine.succeed(f"cat > /srv/wasm/fs.wat <<'EOF'\n{module}\nEOF")
    machine.succeed("exoctl start wasm-fs")
    st = machine.wait_for_capsule("wasm-fs", "exited", 120)
    assert st["reason"] == "exited 0", st
    log = machine.succeed("exoctl logs wasm-fs -n 40")
    seen = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\S+ ([a-z-]+) (-?\d+)$", log, re.M)}
    want = {"read-granted": 8, "read-ungranted": -errno.EACCES, "read-dotdot": -errno.EINVAL,
            "read-symlink": -errno.EXDEV, "read-abs-symlink": -errno.EXDEV, "write-granted": 15,
            "write-readonly": -errno.EACCES}
    print("\nwasm-fs: attempt -> result (bytes, or -errno)")
    for label, value in want.items():
        print(f"  {label:<18} {seen.get(label)!s:>5}  {'ok' if seen.get(label) == value else f'UNEXPECTED ({value})'}")
    assert seen == want, log
    assert "content: granted" in log
    assert machine.succeed("cat /srv/wasm/rw/out") == "written by wasm"
    machine.fail("test -e /srv/wasm/ro/new")


def test_exoctl_and_the_status_show_a_wasm_capsules_budgets(machine: Machine) -> None:
    machine.succeed("exoctl start wasm-ticker")
    machine.wait_for_capsule("wasm-ticker", "ready", 120)
    machine.wait_until(
        "fuel used reported",
        lambda: (json.loads(machine.succeed("exoctl --json status wasm-ticker"))["metrics"]["fuel"]["value"] > 0, ""),
        30)
    table = machine.succeed("exoctl status")
    header, row = table.splitlines()[0], next(x for x in table.splitlines() if x.startswith("wasm-ticker"))
    assert "BUDGETS" in header and re.search(r"fuel \S+/1G, memory 128K/16M", row), table
    machine.succeed("exoctl stop wasm-ticker")
    print(f"\n{header}\n{row}")
