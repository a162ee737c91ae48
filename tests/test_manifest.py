"""Pure logic: manifest parsing and validation, dependency graphs, backoff arithmetic."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from exo_init.pid1 import scope
from exo_init.pid1.capsule import TRANSITIONS, State, backoff_delay, start_limit_hit
from exo_init.pid1.config import UsageError, kernel_cmdline, read_options
from exo_init.pid1.graph import find_cycles, topological_order
from exo_init.pid1.manifest import (
    CAPSULE,
    READINESS,
    RESTART,
    SIZE_UNITS,
    STOP,
    Access,
    Capsule,
    ManifestError,
    NetworkKind,
    Restart,
    Veth,
    load_manifest,
    parse_capsule,
    parse_cpu_max,
    parse_manifest,
    parse_size,
)
from exo_init.pid1.manifest_schema import (
    BEGIN,
    END,
    SCHEMA,
    FieldType,
    parse_schema,
    reference_markdown,
    schema_text,
)
from exo_init.pid1.manifest_schema import main as manifest_schema_main

REPO_ROOT = Path(__file__).resolve().parent.parent


def manifest(**capsules: Any) -> dict[str, Any]:
    return {"version": 1, "capsules": capsules}


def test_full_capsule_parses() -> None:
    m = parse_manifest(manifest(web={
        "argv": ["/usr/bin/web", "--port", "80"], "env": {"A": "1"}, "user": "nobody", "group": "nogroup",
        "workdir": "/srv", "type": "simple", "autostart": False, "after": ["db"], "requires": [],
        "readiness": {"kind": "tcp", "port": 80, "timeout": 5},
        "restart": {"policy": "always", "delay": 1, "max_delay": 10, "reset_after": 20, "limit_burst": 3,
                    "limit_interval": 30},
        "stop": {"signal": "INT", "timeout": 3},
        "quotas": {"cpu_max": "50%", "memory_max": "128M", "memory_high": "100M", "pids_max": 64,
                   "cpu_weight": 200, "io_weight": 50, "io_max": ["8:0 rbps=1048576"],
                   "memory_oom_group": True, "memory_swap_max": 0},
        "watchdog_sec": 5, "description": "a web server",
    }))
    assert not m.errors
    web = m.capsules["web"]
    assert web.stop.signal == signal.SIGINT and web.readiness.port == 80 and not web.autostart
    assert dict(web.env) == {"A": "1"}
    files = {path: value for _, path, value in web.quotas.cgroup_files()}
    assert files == {"cpu.max": "50000 100000", "memory.max": str(128 << 20), "memory.high": str(100 << 20),
                     "pids.max": "64", "cpu.weight": "200", "io.weight": "50", "io.max": "8:0 rbps=1048576",
                     "memory.oom.group": "1", "memory.swap.max": "0"}


@pytest.mark.parametrize(("capsule", "field", "text"), [
    ({}, "argv", "missing"),
    ({"argv": []}, "argv", "must not be empty"),
    ({"argv": ["rel/path"]}, "argv[0]", "absolute"),
    ({"argv": ["/bin/x", 3]}, "argv[1]", "expected a string"),
    ({"argv": ["/bin/x"], "colour": 1}, "colour", "unknown key"),
    ({"argv": ["/bin/x"], "restart": {"policy": "sometimes"}}, "restart.policy", "unknown policy"),
    ({"argv": ["/bin/x"], "restart": {"delay": 5, "max_delay": 1}}, "restart.max_delay", ">= restart.delay"),
    ({"argv": ["/bin/x"], "stop": {"signal": "SIGNOPE"}}, "stop.signal", "unknown signal"),
    ({"argv": ["/bin/x"], "quotas": {"memory_max": "lots"}}, "quotas.memory_max", "expected a size"),
    ({"argv": ["/bin/x"], "quotas": {"cpu_max": "0%"}}, "quotas.cpu_max", "percentage"),
    ({"argv": ["/bin/x"], "quotas": {"pids_max": 0}}, "quotas.pids_max", "between 1"),
    ({"argv": ["/bin/x"], "quotas": {"io_max": ["sda rbps=1"]}}, "quotas.io_max[0]", "MAJ:MIN"),
    ({"argv": ["/bin/x"], "readiness": {"kind": "tcp"}}, "readiness.port", "needs a port"),
    ({"argv": ["/bin/x"], "readiness": {"kind": "file", "path": "x"}}, "readiness.path", "absolute"),
    ({"argv": ["/bin/x"], "type": "oneshot", "readiness": {"kind": "notify"}}, "readiness.kind", "oneshot"),
    ({"argv": ["/bin/x"], "autostart": "yes"}, "autostart", "true or false"),
    ({"argv": ["/bin/x"], "watchdog_sec": True}, "watchdog_sec", "a number"),
    ({"argv": ["/bin/x"], "capabilities": {"network": "wide"}}, "capabilities.network", "expected \"none\""),
    ({"argv": ["/bin/x"], "capabilities": {"filesystem": {"/": "ro"}}}, "capabilities.filesystem./", "whole host"),
    ({"argv": ["/bin/x"], "capabilities": {"filesystem": {"/a/../etc": "ro"}}}, "capabilities.filesystem./a/../etc",
     "normalised"),
    ({"argv": ["/bin/x"], "capabilities": {"filesystem": {"etc": "ro"}}}, "capabilities.filesystem.etc", "absolute"),
    ({"argv": ["/bin/x"], "capabilities": {"filesystem": {"/etc": "write"}}}, "capabilities.filesystem./etc",
     "\"ro\" or \"rw\""),
    ({"argv": ["/bin/x"], "capabilities": {"devices": ["/etc/passwd"]}}, "capabilities.devices[0]", "under /dev/"),
    ({"argv": ["/bin/x"], "capabilities": {"caps": ["CAP_FLY"]}}, "capabilities.caps[0]", "unknown Linux capability"),
    ({"argv": ["/bin/x"], "capabilities": {"caps": ["CAP_SYS_ADMIN"]}}, "capabilities.caps[0]", "leave its namespaces"),
    ({"argv": ["/bin/x"], "capabilities": {"seccomp_deny": ["no_such_call"]}}, "capabilities.seccomp_deny[0]",
     "unknown system call"),
    ({"argv": ["/bin/x"], "capabilities": {"host": True, "display": True}}, "capabilities.display", "host = true"),
    ({"argv": ["/bin/x"], "capabilities": {"bus": "yes"}}, "capabilities.bus", "true or false"),
    ({"argv": ["/bin/x"], "capabilities": {"network": {"veth": {"address": "10.0.0.2/30", "peer": "10.9.0.1/30"}}}},
     "capabilities.network.veth", "one subnet"),
    ({"argv": ["/bin/x"], "capabilities": {"network": {"veth": {"address": "nope", "peer": "10.0.0.1/30"}}}},
     "capabilities.network.veth", "does not appear to be"),
    ({"argv": ["/bin/x"], "user": ""}, "user", "dynamic"),
    ({"argv": ["/bin/x"], "requires": ["self"]}, "requires", "itself"),
])
def test_bad_fields_are_named(capsule: dict[str, Any], field: str, text: str) -> None:
    m = parse_manifest(manifest(self=capsule, other={"argv": ["/bin/true"]}))
    assert "other" in m.capsules, "one bad capsule does not take others down"
    err = m.errors["self"]
    assert err.field == field and text in err.message, err
    assert str(err).startswith("capsule 'self': ")


def test_seccomp_deny_of_a_syscall_this_abi_lacks_is_not_an_error() -> None:
    """A manifest is shared by architectures: aarch64 has mkdirat but no mkdir, x86_64 no cacheflush.
    Such a name is valid (nothing to filter on this ABI); a name no ABI has is not."""
    assert scope.syscall_number("cacheflush") is None and scope.syscall_number("mkdirat") is not None
    m = parse_manifest(manifest(c={"argv": ["/bin/x"], "capabilities": {"seccomp_deny": ["cacheflush", "mkdirat"]}}))
    assert not m.errors and m.capsules["c"].capabilities.seccomp_deny == ("cacheflush", "mkdirat")
    with pytest.raises(LookupError, match="unknown system call 'no_such_call'"):
        scope.syscall_number("no_such_call")


def test_cycles_and_missing_requirements_fail_transitively() -> None:
    m = parse_manifest(manifest(
        a={"argv": ["/x"], "requires": ["b"]}, b={"argv": ["/x"], "after": ["a"]},
        c={"argv": ["/x"], "requires": ["ghost"]}, d={"argv": ["/x"], "requires": ["c"]},
        e={"argv": ["/x"], "after": ["ghost"]},
    ))
    assert set(m.errors) == {"a", "b", "c", "d"}
    assert "dependency cycle a -> b -> a" in m.errors["a"].message
    assert "'ghost' is not declared" in m.errors["c"].message
    assert "'c' failed to load" in m.errors["d"].message
    assert "e" in m.capsules, "`after` an absent capsule only orders, it does not require"


def test_graph_helpers() -> None:
    deps = {"a": ["b"], "b": ["c"], "c": [], "d": ["a", "c"]}
    order = topological_order(deps)
    assert all(order.index(dep) < order.index(n) for n, ds in deps.items() for dep in ds)
    assert find_cycles(deps) == []
    assert find_cycles({"x": ["y"], "y": ["x"]}) == [["x", "y", "x"]]


@pytest.mark.parametrize(("value", "expect"), [("64M", str(64 << 20)), ("1g", str(1 << 30)), (4096, "4096"),
                                               ("max", "max"), ("10KB", "10240")])
def test_sizes(value: Any, expect: str) -> None:
    assert parse_size(value, "f") == expect


def test_cpu_max_forms() -> None:
    assert parse_cpu_max("20%", "f") == "20000 100000"
    assert parse_cpu_max("150%", "f") == "150000 100000"
    assert parse_cpu_max("max", "f") == "max 100000"
    assert parse_cpu_max("5000 10000", "f") == "5000 10000"


def test_document_errors(tmp_path: Path) -> None:
    for doc, text in (([], "top level"), ({"version": 2}, "version must be 1"),
                      ({"version": 1, "extra": 1}, "unknown top-level key"),
                      ({"version": 1, "hostname": "bad name"}, "not a valid host name")):
        with pytest.raises(ManifestError, match=text):
            parse_manifest(doc)
    bad = tmp_path / "m.json"
    bad.write_text('{"version": 1,')
    with pytest.raises(ManifestError, match=r"m.json: not valid JSON: .* line 1"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.json")
    bad.write_text(json.dumps(manifest()))
    assert load_manifest(bad).capsules == {}


def test_backoff_and_start_limit() -> None:
    policy = Restart(delay=0.5, max_delay=4.0, limit_burst=3, limit_interval=10.0)
    assert [backoff_delay(policy, n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    times: deque[float] = deque([0.0, 1.0])
    assert not start_limit_hit(policy, times, 2.0)
    times.append(2.0)
    assert start_limit_hit(policy, times, 2.0)
    assert not start_limit_hit(policy, deque([0.0, 1.0, 2.0]), 11.5), "old failures age out"


def test_state_machine_is_closed() -> None:
    assert set(TRANSITIONS) == set(State)
    for targets in TRANSITIONS.values():
        assert targets <= set(State)
    assert State.READY not in TRANSITIONS[State.STOPPED], "readiness only after starting"


def test_kernel_cmdline() -> None:
    assert kernel_cmdline("quiet exo.manifest=/m.json exo.debug root=/dev/sda") == {
        "exo.manifest": "/m.json", "exo.debug": ""}


def test_capabilities_parse_to_the_declared_world() -> None:
    m = parse_manifest(manifest(
        iso={"argv": ["/bin/x"]},
        host={"argv": ["/bin/x"], "capabilities": {"host": True}},
        grants={"argv": ["/bin/x"], "user": "root", "capabilities": {
            "filesystem": {"/var/lib/x/": "rw", "/etc/fonts": "ro"}, "devices": ["/dev/fb0"], "display": True,
            "bus": True, "control": True, "logs": True, "caps": ["CAP_NET_BIND_SERVICE", "CAP_NET_BIND_SERVICE"],
            "seccomp_deny": ["ptrace"], "network": {"veth": {"address": "10.250.0.2/30", "peer": "10.250.0.1/30"}},
        }},
    ))
    assert not m.errors
    iso = m.capsules["iso"].capabilities
    assert iso.isolated and iso.network is NetworkKind.NONE and not iso.filesystem and not iso.caps
    assert m.capsules["iso"].user is None, "no user: a dynamic uid is allocated at start"
    assert not m.capsules["host"].capabilities.isolated
    g = m.capsules["grants"].capabilities
    assert g.filesystem == (("/etc/fonts", Access.RO), ("/var/lib/x", Access.RW))
    assert g.devices == ("/dev/fb0",) and g.display and g.bus and g.control and g.logs
    assert g.caps == ("CAP_NET_BIND_SERVICE",) and g.seccomp_deny == ("ptrace",)
    assert g.network is NetworkKind.VETH and g.veth == Veth("10.250.0.2/30", "10.250.0.1/30")



# --- the schema: every numeric field is bounded, at the edges ---------------------------------------

RUNTIME_SECTIONS = {spec.section: name for name, spec in SCHEMA.runtimes.items()}


def _patch(section: str, name: str, value: Any) -> dict[str, Any]:
    """A capsule patch setting one field; restart's delays get a partner that keeps max >= delay; a
    runtime's section comes with that runtime (argv null: a runtime capsule has none); a health check
    with its kind."""
    if section == "capsule":
        return {name: value}
    fields: dict[str, Any] = {name: value}
    if (section, name) == ("restart", "delay"):
        fields["max_delay"] = RESTART.field("max_delay").bounds.max  # type: ignore[union-attr]
    if (section, name) == ("restart", "max_delay"):
        fields["delay"] = 0
    if section == "health":  # a check needs its kind (a file check needs nothing bounded)
        fields = {"kind": "file", "path": "/x"} | fields
    if section in RUNTIME_SECTIONS:
        required = {f.name: f.example for f in SCHEMA.section(section).fields if f.required}
        return {"runtime": RUNTIME_SECTIONS[section], "argv": None, section: required | fields}
    return {section: fields}


def _size_unit(limit: int) -> tuple[int, str]:
    """The largest unit (T G M K) that divides `limit`: the size forms at the edge are written in it."""
    for letter in "TGMK":
        unit = SIZE_UNITS[letter]
        if limit >= unit and limit % unit == 0:
            return unit, letter
    return 1, ""


def bound_cases() -> list[tuple[dict[str, Any], bool]]:
    """(capsule patch, accepted?) at both edges of every bounded field of the schema, and just
    outside them: integers by 1, numbers by a fraction; sizes and cpu_max in each of their forms."""
    cases: list[tuple[dict[str, Any], bool]] = []
    for section in SCHEMA.sections.values():
        for spec in section.fields:
            b = spec.bounds
            if spec.type in (FieldType.INT, FieldType.PIDS):
                assert b is not None and isinstance(b.min, int) and isinstance(b.max, int)
                cases += [(_patch(section.name, spec.name, v), ok)
                          for v, ok in ((b.min, True), (b.max, True), (b.min - 1, False), (b.max + 1, False))]
            elif spec.type is FieldType.NUMBER:
                assert b is not None
                cases += [(_patch(section.name, spec.name, v), ok)
                          for v, ok in ((b.min, True), (b.max, True), (b.max - 0.5, True), (b.min - 0.5, False),
                                        (b.max + 0.5, False))]
            elif spec.type is FieldType.SIZE:
                assert b is not None and isinstance(b.max, int)
                unit, letter = _size_unit(b.max)
                top = b.max // unit
                lower = "TGMK"["TGMK".index(letter) + 1] if letter in "TGM" else ""
                cases += [(_patch(section.name, spec.name, v), ok)
                          for v, ok in ((b.max, True), (b.max + 1, False), (f"{top}{letter}", True),
                                        (f"{top + 1}{letter}", False), (f"{b.max}", True), (f"{b.max + 1}", False),
                                        (f"000{top}{letter}", True), ("9" * 30, False))]
                if lower:
                    below = ((f"{top << 10}{lower.lower()}", True), (f"{(top << 10) + 1}{lower}", False))
                    cases += [(_patch(section.name, spec.name, v), ok) for v, ok in below]
            elif spec.type is FieldType.CPU_MAX:
                pct, quota, period = (spec.sub_bounds(k) for k in ("percent", "quota", "period"))
                forms = ((f"{pct.min}%", True), (f"{pct.max}%", True), ("0.5%", False), (f"{pct.max + 1}%", False),
                         ("123456789%", False), (f"{quota.min}", True), (f"{quota.min - 1}", False),
                         (f"{quota.max} {period.max}", True), (f"{quota.max + 1} {period.max}", False),
                         (f"max {period.min}", True), (f"max {period.min - 1}", False),
                         (f"max {period.max + 1}", False), ("max " + "9" * 30, False))
                cases += [(_patch(section.name, spec.name, v), ok) for v, ok in forms]
    return cases


def test_every_numeric_field_has_bounds() -> None:
    numeric = {FieldType.INT, FieldType.NUMBER, FieldType.PIDS, FieldType.SIZE}
    for section in SCHEMA.sections.values():
        for spec in section.fields:
            if spec.type in numeric:
                assert spec.bounds is not None, f"{section.name}.{spec.name}"
    with pytest.raises(ValueError, match="needs bounds"):
        parse_schema({**json.loads(schema_text()), "sections": {"capsule": {"doc": "", "fill": True, "fields": [
            {"name": "n", "type": "number", "default": 0, "doc": ""}]}}})


@pytest.mark.parametrize(("patch", "ok"), bound_cases(), ids=lambda p: json.dumps(p, sort_keys=True))
def test_bounds_at_the_edges(patch: dict[str, Any], ok: bool) -> None:
    m = parse_manifest(manifest(web={"argv": ["/bin/true"], **patch}))
    assert (not m.errors) == ok, m.errors
    if not ok:
        assert "between" in m.errors["web"].message or "at most" in m.errors["web"].message, m.errors


def test_numbers_too_big_for_python_are_one_capsules_error(tmp_path: Path) -> None:
    """Neither a 4,301-digit integer (int() refuses it) nor 1e400 (inf) gets past the loader, and
    neither takes the other capsules down."""
    huge = "9" * 4301
    doc = ('{"version": 1, "capsules": {"ok": {"argv": ["/bin/true"]},'
           f' "a": {{"argv": ["/x"], "quotas": {{"memory_max": {huge}}}}},'
           f' "b": {{"argv": ["/x"], "quotas": {{"memory_max": "{huge}"}}}},'
           f' "c": {{"argv": ["/x"], "readiness": {{"fd": {huge}}}}},'
           ' "d": {"argv": ["/x"], "watchdog_sec": 1e400},'
           ' "e": {"argv": ["/x"], "stop": {"timeout": NaN}},'
           f' "f": {{"argv": ["/x"], "quotas": {{"cpu_max": "{huge} 100000"}}}},'
           f' "g": {{"argv": ["/x"], "quotas": {{"pids_max": -{huge}}}}}}}}}')
    path = tmp_path / "m.json"
    path.write_text(doc)
    m = load_manifest(path)
    assert set(m.capsules) == {"ok"}
    assert set(m.errors) == set("abcdefg")
    assert m.errors["d"].message == "must be between 0 and 86400, got inf"
    assert m.errors["e"].message == "must be between 0 and 86400, got nan"
    # The same values given as Python objects (a caller that did its own json.loads).
    for value in (10 ** 5000, -(10 ** 5000), float("inf"), float("nan")):
        m = parse_manifest(manifest(web={"argv": ["/x"], "restart": {"limit_burst": value}}))
        assert m.errors["web"].field == "restart.limit_burst", m.errors


def test_dataclass_defaults_are_the_schemas() -> None:
    """A capsule with only argv parses to the dataclasses' defaults, which come from the schema."""
    parsed = parse_capsule("x", {"argv": ["/bin/true"]})
    assert parsed == Capsule(name="x", argv=("/bin/true",))
    assert parsed.readiness.timeout == READINESS.field("timeout").default
    assert parsed.restart.limit_burst == RESTART.field("limit_burst").default
    assert parsed.stop.signal == signal.Signals[STOP.field("signal").default]
    for section, obj in (("readiness", parsed.readiness), ("restart", parsed.restart), ("stop", parsed.stop),
                         ("quotas", parsed.quotas)):
        assert set(SCHEMA.section(section).keys) == set(type(obj).__dataclass_fields__), section


def test_schema_signals_are_the_systems() -> None:
    assert set(SCHEMA.signal_names) == set(signal.Signals.__members__)
    assert set(SCHEMA.signal_numbers) == {int(s) for s in signal.Signals}


def test_readme_field_reference_is_generated_from_the_schema() -> None:
    """README.md's field reference is what `python3 -m exo_init.pid1.manifest_schema README.md` writes."""
    readme = (REPO_ROOT / "README.md").read_text()
    assert readme.count(BEGIN) == 1 and readme.count(END) == 1
    section = readme[readme.index(BEGIN):readme.index(END) + len(END)]
    assert section == reference_markdown(), (
        "README.md's manifest field reference differs from the schema; "
        "regenerate it: python3 -m exo_init.pid1.manifest_schema README.md")
    for spec in CAPSULE.fields:
        assert f"| `{spec.name}` |" in section


def test_readme_regeneration_replaces_only_the_section(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(f"before\n{BEGIN}\nstale\n{END}\nafter\n")
    assert manifest_schema_main([str(path)]) == 0
    text = path.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "stale" not in text
    assert reference_markdown() in text


def test_the_schema_ships_in_the_python_package(tmp_path: Path) -> None:
    """setuptools (what package.nix builds with) installs manifest_schema.json next to the loader
    that reads it: package.nix's source is the whole exo_init tree, and pyproject.toml lists the
    file as package data. (The dev image copies the exo_init tree as is.)"""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, tmp_path / name)
    for name in ("exo_init", "corecaps"):
        shutil.copytree(REPO_ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "-d", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    shipped = tmp_path / "out" / "exo_init" / "pid1" / "manifest_schema.json"
    assert shipped.read_text() == (REPO_ROOT / "exo_init" / "pid1" / "manifest_schema.json").read_text()


def test_exo_init_options() -> None:
    """exo_init's own small option parser: values (`--opt V`, `--opt=V`), flags; outside PID 1 an
    unknown word is an error, as PID 1 the kernel's unknown words are ignored."""
    assert read_options(["--manifest", "/m.json", "--runtime-dir=/r", "--no-cgroups", "--generation", "3"],
                        strict=True) == {"--manifest": "/m.json", "--runtime-dir": "/r", "--no-cgroups": True,
                                         "--generation": "3"}
    assert read_options(["quiet", "splash", "--debug"], strict=False) == {"--debug": True}
    for bad in (["--bogus"], ["--manifest"], ["--generation", "x"]):
        with pytest.raises(UsageError):
            read_options(bad, strict=True)


def test_seccomp_classes_are_the_schemas() -> None:
    """The classes a manifest may grant are the classes the filter has, and the baseline denies
    every class not granted (plus what is never granted; an explicit deny replaces a baseline rule)."""
    assert SCHEMA.section("capabilities").field("seccomp_allow").values == tuple(scope.SYSCALL_CLASSES)
    everything = {r.syscall for r in scope.baseline_rules()}
    assert {"unshare", "clone", "clone3", "setns", "mount", "bpf", "io_uring_setup", "keyctl", "ptrace", "socket",
            "init_module", "kexec_load", "open_by_handle_at"} <= everything
    without_ptrace = {r.syscall for r in scope.baseline_rules(("ptrace",))}
    assert everything - without_ptrace == {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"}
    rules = scope.baseline_rules((), ("clone3", "mkdir"))
    assert [r.action for r in rules if r.syscall == "clone3"] == [scope.SCMP_ACT_ERRNO_EPERM]
    assert any(r.syscall == "mkdir" for r in rules)
    with pytest.raises(ValueError, match="unknown system call class 'kernel'"):
        scope.baseline_rules(("kernel",))
