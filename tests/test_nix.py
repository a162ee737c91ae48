"""The Nix side of Exosphere, checked offline with nix-instantiate (pure Nix, no nixpkgs).

* every .nix file in the repository parses;
* nixos-modules/render.nix (what the Debian dev-image builder runs) evaluates, and exo_init's own
  loader accepts its JSON with no errors (the contract between the two halves);
* nixos-modules/manifest.nix accepts and rejects exactly what exo_init.pid1.manifest accepts and
  rejects (also at both edges of every bounded field, with the loader's own message), fills in the
  loader's own defaults, and names the capsule and field when it rejects; both read one table,
  exo_init/pid1/manifest_schema.json (schema.nix for Nix);
* the NixOS module's capsule options are typed, defaulted and documented by that table;
* flake.lock is the shared nixpkgs pin, flake.nix has the promised outputs, and every relative
  path literal in the Nix files exists.

Every nix-instantiate call uses `--store dummy://`: evaluation here never needs the Nix store, and
this way the tests also run as a user who cannot write /nix.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from exo_init.pid1.manifest import (
    CAPSULE_KEYS,
    QUOTA_KEYS,
    Readiness,
    Restart,
    Stop,
    parse_capsule,
    parse_manifest,
)
from exo_init.pid1.manifest_schema import SCHEMA, FieldSpec, FieldType
from tests.test_manifest import bound_cases

REPO = Path(__file__).resolve().parent.parent
MODULES = REPO / "nixos-modules"
RENDER = MODULES / "render.nix"
MANIFEST_NIX = MODULES / "manifest.nix"
CAPSULES_NIX = MODULES / "capsules.nix"
FLAKE = REPO / "flake.nix"
LOCK = REPO / "flake.lock"
SHARED_PIN = Path("/work/shared/nixpkgs-pin.json")

# The nixpkgs pin the flake must be locked to (the values of /work/shared/nixpkgs-pin.json, kept
# here so the test also runs where that file is not present).
PIN = {
    "type": "github",
    "owner": "NixOS",
    "repo": "nixpkgs",
    "branch": "nixos-25.11",
    "rev": "8fd9daa3db09ced9700431c5b7ad0e8ba199b575",
    "narHash": "sha256-Ti+ZBvW6yrWWAg2szExVTwCd4qOJ3KlVr1tFHfyfi8Q=",
    "lastModified": 1778430510,
}

NIX_INSTANTIATE = shutil.which("nix-instantiate")

pytestmark = pytest.mark.skipif(
    NIX_INSTANTIATE is None, reason="nix-instantiate is not installed (apt-get install nix-bin)"
)

MINIMAL: dict[str, Any] = {"argv": ["/bin/true"]}
# The capsules the NixOS module declares by default (capsules.nix).
MODULE_DEFAULTS = {"kmod", "console", "powerbutton", "dbus", "dbus-bridge", "network"}


# --- helpers -------------------------------------------------------------------------------------


def nix(*args: str) -> subprocess.CompletedProcess[str]:
    """Run nix-instantiate from the repository root; the caller checks the result."""
    assert NIX_INSTANTIATE is not None
    return subprocess.run(
        [NIX_INSTANTIATE, "--store", "dummy://", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def nix_json(*args: str) -> Any:
    """`nix-instantiate --eval --strict --json ARGS`, parsed; fails the test on an error."""
    proc = nix("--eval", "--strict", "--json", *args)
    if proc.returncode != 0:
        pytest.fail(f"nix-instantiate {' '.join(args)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def nix_error(*args: str) -> str:
    """The error text of an evaluation that must fail."""
    proc = nix("--eval", "--strict", "--json", *args)
    assert proc.returncode != 0, f"expected nix-instantiate to fail, got:\n{proc.stdout}"
    return proc.stderr


def render_capsules_args(capsules: dict[str, Any], hostname: str = "exosphere") -> list[str]:
    """Arguments that evaluate manifest.nix on `capsules` (given as JSON)."""
    return [
        "--argstr", "json", json.dumps(capsules),
        "--argstr", "manifestNix", str(MANIFEST_NIX),
        "--argstr", "hostname", hostname,
        "--expr",
        "{ json, manifestNix, hostname }: "
        "import manifestNix { inherit hostname; capsules = builtins.fromJSON json; }",
    ]  # fmt: skip


def render_capsules(capsules: dict[str, Any], hostname: str = "exosphere") -> Any:
    return nix_json(*render_capsules_args(capsules, hostname))


def nix_path_literal(path: Path) -> str:
    """`path` as a Nix path literal, as the builder passes it with --arg extra '[ /abs/file.nix ]'."""
    text = str(path)
    assert re.fullmatch(r"(/[A-Za-z0-9._+-]+)+", text), f"not usable as a Nix path literal: {text}"
    return text


def loads_cleanly(doc: Any) -> None:
    manifest = parse_manifest(doc, "rendered")
    assert not manifest.errors, {name: str(err) for name, err in manifest.errors.items()}


def walk(value: Any) -> list[Any]:
    """Every value in a JSON document, depth first."""
    out = [value]
    if isinstance(value, dict):
        for item in value.values():
            out.extend(walk(item))
    elif isinstance(value, list):
        for item in value:
            out.extend(walk(item))
    return out


def nix_files() -> list[Path]:
    skip = {".git", ".venv", "node_modules", "__pycache__"}
    return sorted(
        p
        for p in REPO.rglob("*.nix")
        if not any(part in skip or part.startswith("result") for part in p.relative_to(REPO).parts)
    )


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", nix_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_nix_file_parses(path: Path) -> None:
    proc = nix("--parse", str(path))
    assert proc.returncode == 0, proc.stderr


def test_flake_parses() -> None:
    proc = nix("--parse", str(FLAKE))
    assert proc.returncode == 0, proc.stderr


# --- the contract: render.nix -> exo_init's loader --------------------------------------------------


def test_render_default_manifest_loads() -> None:
    # Exactly what the dev-image builder runs (relative path, from the repository root).
    doc = nix_json("nixos-modules/render.nix")
    assert doc["version"] == 1
    assert doc["hostname"] == "exosphere"
    loads_cleanly(doc)
    manifest = parse_manifest(doc)
    assert {"kmod", "console"} <= set(manifest.capsules)

    kmod = manifest.capsules["kmod"]
    assert kmod.argv[:3] == ("/usr/bin/python3", "-m", "exo_init.system.coldplug")
    assert dict(kmod.env)["MODPROBE"] == "/usr/sbin/modprobe"
    assert kmod.type.value == "oneshot"
    assert kmod.restart.policy.value == "never"
    console = manifest.capsules["console"]
    assert console.argv == ("/usr/bin/python3", "-m", "corecaps.sh") and console.capabilities.control
    assert console.console is True
    assert console.restart.policy.value == "always"
    assert "kmod" in console.after


def default_capsule_names() -> set[str]:
    """The capsules of the dev image's default manifest (render.nix with no extra file)."""
    return set(nix_json(str(RENDER))["capsules"])


def test_render_has_no_nulls() -> None:
    doc = nix_json("nixos-modules/render.nix")
    assert None not in walk(doc)


def test_kernel_modules_are_exported_and_loaded() -> None:
    modules = nix_json("--expr", f"(import {CAPSULES_NIX}).kernelModules")
    assert {"virtio_console", "virtio_net", "virtio_blk", "virtio_rng", "ext4"} <= set(modules)
    doc = nix_json(str(RENDER))
    assert doc["capsules"]["kmod"]["argv"][3:] == modules


def test_render_with_extra_file(tmp_path: Path) -> None:
    extra = tmp_path / "more-capsules.nix"
    extra.write_text(
        """paths: {
          web = {
            argv = [ paths.python3 "-m" "http.server" "8080" ];
            env.PYTHONPATH = paths.exoInitLib;
            readiness = { kind = "tcp"; port = 8080; };
            restart.policy = "always";
            quotas = { cpu_max = "20%"; memory_max = "64M"; pids_max = 32; };
            after = [ "kmod" ];
          };
          setup = { argv = [ paths.shell "-c" "true" ]; type = "oneshot"; };
        }
        """
    )
    doc = nix_json(
        str(RENDER), "--arg", "extra", f"[ {nix_path_literal(extra)} ]", "--argstr", "hostname", "devbox"
    )
    loads_cleanly(doc)
    manifest = parse_manifest(doc)
    assert manifest.hostname == "devbox"
    assert set(manifest.capsules) == default_capsule_names() | {"web", "setup"}
    web = manifest.capsules["web"]
    assert web.argv[0] == "/usr/bin/python3"
    assert dict(web.env) == {"PYTHONPATH": "/usr/lib/exosphere"}
    assert web.readiness.port == 8080
    assert web.quotas.cpu_max == "20000 100000"
    assert web.quotas.memory_max == str(64 << 20)


def test_extra_file_replaces_and_removes_defaults(tmp_path: Path) -> None:
    extra = tmp_path / "replace.nix"
    extra.write_text(
        'paths: { console = null; kmod = { argv = [ paths.modprobe "-a" "loop" ]; type = "oneshot"; }; }\n'
    )
    doc = nix_json(str(RENDER), "--arg", "extra", f"[ {nix_path_literal(extra)} ]")
    loads_cleanly(doc)
    assert set(doc["capsules"]) == default_capsule_names() - {"console"}
    assert doc["capsules"]["kmod"]["argv"] == ["/usr/sbin/modprobe", "-a", "loop"]


def test_extra_file_may_be_a_plain_attrset_and_a_string_path(tmp_path: Path) -> None:
    extra = tmp_path / "plain.nix"
    extra.write_text('{ hello = { argv = [ "/bin/echo" "hi" ]; type = "oneshot"; }; }\n')
    doc = nix_json(str(RENDER), "--arg", "extra", f"[ {json.dumps(str(extra))} ]")
    loads_cleanly(doc)
    assert "hello" in doc["capsules"]


def test_two_extra_files_declaring_one_capsule_fail(tmp_path: Path) -> None:
    one, two = tmp_path / "one.nix", tmp_path / "two.nix"
    one.write_text('paths: { web = { argv = [ "/bin/a" ]; }; }\n')
    two.write_text('{ web = { argv = [ "/bin/b" ]; }; }\n')
    err = nix_error(str(RENDER), "--arg", "extra", f"[ {nix_path_literal(one)} {nix_path_literal(two)} ]")
    assert f'capsule "web" is declared by both {one} and {two}' in err


def test_extra_file_of_the_wrong_shape_fails(tmp_path: Path) -> None:
    extra = tmp_path / "wrong.nix"
    extra.write_text("paths: [ ]\n")
    err = nix_error(str(RENDER), "--arg", "extra", f"[ {nix_path_literal(extra)} ]")
    assert f"exosphere: {extra}: must evaluate to" in err


def test_render_works_in_restricted_mode(tmp_path: Path) -> None:
    extra = tmp_path / "web.nix"
    extra.write_text('paths: { web = { argv = [ paths.python3 "-m" "http.server" ]; }; }\n')
    plain = nix_json(str(RENDER))
    restricted = nix_json("--option", "restrict-eval", "true", "-I", str(REPO), str(RENDER))
    assert restricted == plain
    with_extra = nix_json(
        "--option", "restrict-eval", "true", "-I", str(REPO), "-I", str(extra),
        str(RENDER), "--arg", "extra", f"[ {nix_path_literal(extra)} ]",
    )  # fmt: skip
    assert "web" in with_extra["capsules"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            'argv = [ paths.python3 ]; restart.policy = "sometimes";',
            'exosphere: capsule "web": '
            'restart.policy must be one of always, on-failure, never, got "sometimes"',
        ),
        (
            'argv = [ "bin/web" ];',
            'exosphere: capsule "web": argv[0] must be an absolute path, got "bin/web"',
        ),
        (
            'argv = [ paths.python3 ]; quotas.memory_max = "64Q";',
            'exosphere: capsule "web": quotas.memory_max must be a size',
        ),
        (
            'argv = [ paths.python3 ]; requires = [ "db" ];',
            'exosphere: capsule "web": requires names "db", which is not declared',
        ),
        ("argv = [ paths.python3 ]; colour = 1;", 'exosphere: capsule "web": colour is not a known field'),
        ("description = 1;", 'exosphere: capsule "web": argv is missing'),
    ],
)
def test_invalid_config_names_capsule_and_field(tmp_path: Path, fields: str, message: str) -> None:
    extra = tmp_path / "bad.nix"
    extra.write_text(f"paths: {{ web = {{ {fields} }}; }}\n")
    err = nix_error(str(RENDER), "--arg", "extra", f"[ {nix_path_literal(extra)} ]")
    assert message in err, err


def test_every_problem_is_reported() -> None:
    err = nix_error(
        *render_capsules_args(
            {
                "a": {"argv": ["rel"], "restart": {"policy": "sometimes"}},
                "b": {"argv": ["/bin/b"], "quotas": {"pids_max": 0}},
            }
        )
    )
    assert "exosphere: 3 problems in the capsule manifest" in err
    assert 'capsule "a": argv[0] must be an absolute path' in err
    assert 'capsule "a": restart.policy must be one of' in err
    assert 'capsule "b": quotas.pids_max must be between 1 and 4194304, got 0' in err


@pytest.mark.parametrize("name", ["cpu.max", "cgroup.procs", "memory.high", "io.weight", "pids.max", "irq.pressure",
                                  "misc.x", "web", "web.1", "cpufreq.x"])
def test_capsule_names_of_cgroup_files_are_refused_by_both(name: str) -> None:
    """A capsule's cgroup is a directory beside its parent's interface files: cpu.max, cgroup.procs."""
    caps = {name: {"argv": ["/bin/true"]}}
    errors = parse_manifest({"version": 1, "capsules": caps}).errors
    proc = nix("--eval", "--strict", "--json", *render_capsules_args(caps))
    assert (proc.returncode == 0) == (not errors), proc.stderr
    if errors:
        why = f"named like a cgroup interface file ({name.partition('.')[0]}.*)"
        assert why in errors[name].message
        assert f'exosphere: capsule "{name}": the name is {why}' in proc.stderr


def test_nix_cannot_render_a_nul_nor_take_a_deep_value() -> None:
    """A NUL cannot be in a Nix string (fromJSON cuts it off): the renderer never writes one, where
    the loader refuses it by name. A value nested 50,000 deep where a string belongs is one error."""
    doc = render_capsules({"web": {"argv": ["/bin/sh", "-c", "echo\u0000rm"], "env": {"A": "b\u0000c"}}})
    assert "\0" not in json.dumps(doc) and doc["capsules"]["web"]["argv"][2] == "echo"
    args = render_capsules_args({"web": {"argv": ["/bin/true"], "description": "DEEP"}})
    args[2] = args[2].replace('"DEEP"', "[" * 50000 + '"x"' + "]" * 50000)  # (json.dumps cannot nest so deep)
    message = nix_error(*args)
    assert 'exosphere: capsule "web": description must be a string, got a list' in message, message


def test_dependency_cycle_is_reported() -> None:
    err = nix_error(
        *render_capsules_args(
            {
                "a": {"argv": ["/a"], "after": ["b"]},
                "b": {"argv": ["/b"], "requires": ["a"]},
            }
        )
    )
    assert 'exosphere: capsule "a": after/requires: dependency cycle a -> b -> a' in err


def test_invalid_hostname_fails() -> None:
    err = nix_error(*render_capsules_args({}, hostname="bad_name"))
    assert 'exosphere: hostname "bad_name" is not a valid host name' in err


def test_capsules_nix_checks_its_paths() -> None:
    err = nix_error("--expr", f'(import {CAPSULES_NIX}) {{ python3 = "/usr/bin/python3"; shell = "bash"; }}')
    assert "exosphere: capsules.nix: paths.modprobe must be an absolute path" in err


# --- manifest.nix agrees with exo_init.pid1.manifest ------------------------------------------------------


def test_defaults_match_the_loader() -> None:
    # Rendering only writes out defaults: the loader reads the same capsule either way.
    doc = render_capsules({"web": MINIMAL})
    assert parse_capsule("web", doc["capsules"]["web"]) == parse_capsule("web", MINIMAL)


FULL: dict[str, Any] = {
    "argv": ["/usr/bin/web", "--port", "8080"],
    "env": {"A": "1"},
    "user": "nobody",
    "group": "nogroup",
    "workdir": "/srv",
    "type": "simple",
    "autostart": False,
    "after": ["other"],
    "requires": [],
    "readiness": {"kind": "tcp", "fd": 4, "path": "", "host": "::1", "port": 8080, "timeout": 5.5},
    "restart": {
        "policy": "always",
        "delay": 1,
        "max_delay": 10.5,
        "reset_after": 20,
        "limit_burst": 3,
        "limit_interval": 30,
    },
    "stop": {"signal": "int", "timeout": 3},
    "quotas": {
        "cpu_max": "150%",
        "cpu_weight": 50,
        "memory_max": "64M",
        "memory_high": "48m",
        "memory_swap_max": 0,
        "pids_max": "max",
        "io_weight": 200,
        "io_max": ["8:0 rbps=1048576 wiops=max"],
        "memory_oom_group": True,
    },
    "capabilities": {},
    "watchdog_sec": 2.5,
    "console": False,
    "description": "every field",
    "runtime": "exec",
    "wasm": None,
    "crush": None,
    "health": {"kind": "exec", "path": "/run/ok", "host": "::1", "port": 8080, "argv": ["/bin/true", "x"],
               "interval": 2.5, "timeout": 1.5, "threshold": 4, "action": "restart", "network": True},
}
# The same capsule as a WebAssembly capsule: every field of the wasm section.
FULL_WASM: dict[str, Any] = {
    **FULL, "argv": None, "runtime": "wasm", "readiness": {"kind": "notify", "timeout": 5},
    "wasm": {"module": "/usr/share/exosphere/wasm/hello.wat", "entry": "main", "fuel": 123456789,
             "memory_max": "2M", "deadline": 2.5},
}

# ... and as a CRUSH capsule: every field of the crush section.
FULL_CRUSH: dict[str, Any] = {
    **FULL, "argv": None, "runtime": "crush", "readiness": {"kind": "notify", "timeout": 5},
    "crush": {"program": "/usr/share/exosphere/crush/hello.casm", "gas": 5000000, "arena": "1M",
              "checkpoint_every": 100000, "on_bad_checkpoint": "restart", "fast": True,
              "gas_per_period": 5000, "period": 0.5},
}


def test_every_loader_field_is_known() -> None:
    assert set(FULL) == set(CAPSULE_KEYS)
    assert set(FULL["quotas"]) == set(QUOTA_KEYS)
    assert set(FULL_WASM["wasm"]) == set(SCHEMA.section("wasm").keys)
    assert set(FULL_CRUSH["crush"]) == set(SCHEMA.section("crush").keys)
    assert set(FULL["health"]) == set(SCHEMA.section("health").keys)
    for full in (FULL, FULL_WASM, FULL_CRUSH):
        doc = render_capsules({"web": full})
        loads_cleanly(doc)
        assert parse_capsule("web", doc["capsules"]["web"]) == parse_capsule("web", full)
        assert doc["capsules"]["web"]["stop"]["signal"] == "SIGINT"
    wasm = parse_capsule("web", FULL_WASM)
    assert wasm.argv == () and wasm.wasm is not None and wasm.wasm.memory_max == 2 << 20
    crush = parse_capsule("web", FULL_CRUSH)
    assert crush.argv == () and crush.crush is not None and crush.crush.arena == 1 << 20 and crush.crush.fast


def test_every_signal_the_loader_knows() -> None:
    names = sorted(signal.Signals.__members__)
    numbers = sorted({int(s) for s in signal.Signals})
    capsules: dict[str, Any] = {}
    for name in names:
        capsules[name.lower()] = {"argv": ["/bin/true"], "stop": {"signal": name}}
        capsules[f"short-{name.lower()}"] = {"argv": ["/bin/true"], "stop": {"signal": name[3:].lower()}}
    for number in numbers:
        capsules[f"n{number}"] = {"argv": ["/bin/true"], "stop": {"signal": number}}
    doc = render_capsules(capsules)
    loads_cleanly(doc)
    for name in names:
        assert doc["capsules"][f"short-{name.lower()}"]["stop"]["signal"] == name


# Patches over MINIMAL. Each case must be accepted by both or rejected by both. Where the Python
# loader is more lenient than manifest.nix on purpose (e.g. " 20 %"), the case is left out.
PARITY: list[dict[str, Any]] = [
    {},
    {"type": "oneshot"},
    {"env": {"A": "b"}},
    {"user": "nobody", "group": "nogroup", "workdir": "/tmp"},
    {"after": ["not-declared"]},
    {"readiness": {"kind": "tcp", "port": 80}},
    {"readiness": {"kind": "file", "path": "/run/ready"}},
    {"readiness": {"kind": "fd", "fd": 5}},
    {"readiness": {"kind": "notify", "timeout": 0.5}},
    {"restart": {"policy": "always", "delay": 1, "max_delay": 1}},
    {"stop": {"signal": "TERM"}},
    {"stop": {"signal": 9}},
    {"quotas": {"cpu_max": "20%"}},
    {"quotas": {"cpu_max": "12.5%"}},
    {"quotas": {"cpu_max": "max"}},
    {"quotas": {"cpu_max": "50000 100000"}},
    {"quotas": {"cpu_max": "max 100000"}},
    {"quotas": {"cpu_max": "20000"}},
    {"quotas": {"memory_max": "1g"}},
    {"quotas": {"memory_max": 1048576}},
    {"quotas": {"memory_max": "max"}},
    {"quotas": {"memory_max": "512kb"}},
    {"quotas": {"pids_max": 1}},
    {"quotas": {"io_max": []}},
    {"quotas": {"cpu_weight": 1, "io_weight": 10000, "memory_oom_group": False}},
    {"watchdog_sec": 1.5, "console": True, "autostart": False, "description": "x"},
    {"capabilities": {"host": True}},
    {"capabilities": {"filesystem": {"/etc/fonts": "ro", "/var/lib/x": "rw"}, "devices": ["/dev/fb0"],
                      "display": True, "bus": True, "control": True, "logs": True, "caps": ["CAP_NET_BIND_SERVICE"],
                      "seccomp_deny": ["ptrace"], "network": "host"}},
    {"capabilities": {"network": {"veth": {"address": "10.250.0.2/30", "peer": "10.250.0.1/30"}}}},
    {"user": "root", "capabilities": {}},
    {"capabilities": {"seccomp_allow": ["ptrace", "namespaces", "mount", "ptrace"]}},
    {"capabilities": {"seccomp_allow": []}},
    {"quotas": {"io_max": ["8:0 rbps=" + "9" * 19]}},
    {"quotas": {"memory_max": "0064M"}},
    {"quotas": {"cpu_max": "12.123456789%"}},
    {"quotas": {"cpu_max": "0001000 0100000"}},
    # WebAssembly capsules (argv null: a runtime capsule's command is derived)
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/hello.wat"}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/hello.wasm", "entry": "run", "fuel": 1,
                                              "memory_max": "max", "deadline": 0.5}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat", "memory_max": 65536},
     "readiness": {"kind": "notify"}, "restart": {"policy": "always"}},
    {"argv": None, "runtime": "wasm", "type": "oneshot", "wasm": {"module": "/srv/a.wat", "memory_max": "0"}},
    {"runtime": "exec", "wasm": None},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat"},
     "capabilities": {"filesystem": {"/srv/data": "ro"}}},
    # CRUSH capsules
    {"argv": None, "runtime": "crush", "crush": {"program": "/srv/hello.casm"}},
    {"argv": None, "runtime": "crush", "crush": {"program": "/srv/a.py", "gas": 1, "arena": "max",
                                                "checkpoint_every": 0, "on_bad_checkpoint": "restart"},
     "readiness": {"kind": "notify"}, "capabilities": {"filesystem": {"/data": "ro"}}},
    # liveness checks
    {"health": {"kind": "tcp", "port": 80, "network": True, "action": "restart"}},
    {"health": {"kind": "file", "path": "/run/ok", "interval": 0.1, "threshold": 1000}},
    {"health": {"kind": "exec", "argv": ["/bin/true"], "timeout": 0.5}},
    {"health": {"kind": "notify-watchdog"}},
    {"health": None},
    # rejected by both
    {"health": {"kind": "tcp"}},
    {"health": {"kind": "file", "path": "run/ok"}},
    {"health": {"kind": "exec"}},
    {"health": {"kind": "file", "path": "/x", "argv": ["/bin/true"]}},
    {"health": {"kind": "http"}},
    {"health": {"path": "/x"}},
    {"health": {"kind": "file", "path": "/x", "action": "reboot"}},
    {"type": "oneshot", "health": {"kind": "notify-watchdog"}},
    {"argv": []},
    {"argv": ["bin/true"]},
    {"argv": "/bin/true"},
    {"argv": ["/bin/true", 1]},
    {"env": {"A=B": "x"}},
    {"env": {"A": 1}},
    {"user": 0},
    {"group": 0},
    {"workdir": "tmp"},
    {"type": "forking"},
    {"autostart": "yes"},
    {"after": ["web"]},
    {"after": ["Bad"]},
    {"requires": ["nope"]},
    {"readiness": {"kind": "magic"}},
    {"readiness": {"kind": "tcp"}},
    {"readiness": {"kind": "file", "path": "relative"}},
    {"readiness": {"fd": 2}},
    {"readiness": {"port": 70000}},
    {"readiness": {"timeout": -1}},
    {"readiness": {"bogus": 1}},
    {"readiness": "started"},
    {"type": "oneshot", "readiness": {"kind": "notify"}},
    {"restart": {"policy": "sometimes"}},
    {"restart": {"limit_burst": 0}},
    {"restart": {"delay": 5, "max_delay": 1}},
    {"restart": {"delay": "1"}},
    {"stop": {"signal": "SIGFOO"}},
    {"stop": {"signal": 99}},
    {"stop": {"timeout": -1}},
    {"quotas": {"cpu_max": "0%"}},
    {"quotas": {"cpu_max": "abc"}},
    {"quotas": {"cpu_max": 20}},
    {"quotas": {"memory_max": "64Q"}},
    {"quotas": {"memory_max": -1}},
    {"quotas": {"pids_max": 0}},
    {"quotas": {"cpu_weight": 0}},
    {"quotas": {"io_weight": 10001}},
    {"quotas": {"io_max": ["8:0 foo=1"]}},
    {"quotas": {"io_max": "8:0 rbps=1"}},
    {"quotas": {"memory_oom_group": 1}},
    {"quotas": {"bogus": 1}},
    {"capabilities": {"net_admin": True}},
    {"capabilities": {"host": True, "bus": True}},
    {"capabilities": {"host": "yes"}},
    {"capabilities": {"filesystem": {"/": "ro"}}},
    {"capabilities": {"filesystem": {"/a/../b": "ro"}}},
    {"capabilities": {"filesystem": {"rel": "ro"}}},
    {"capabilities": {"filesystem": {"/etc": "rwx"}}},
    {"capabilities": {"filesystem": ["/etc"]}},
    {"capabilities": {"network": "wide"}},
    {"capabilities": {"network": {"veth": {"address": "x", "peer": "10.250.0.1/30"}}}},
    {"capabilities": {"network": {"bridge": {}}}},
    {"capabilities": {"devices": ["/etc/passwd"]}},
    {"capabilities": {"devices": "/dev/fb0"}},
    {"capabilities": {"caps": ["net_admin"]}},
    {"capabilities": {"caps": ["CAP_SYS_ADMIN"]}},
    {"capabilities": {"seccomp_deny": ["Bad Name"]}},
    {"capabilities": {"seccomp_allow": ["kernel"]}},
    {"capabilities": {"seccomp_allow": "ptrace"}},
    {"capabilities": {"seccomp_allow": [1]}},
    {"capabilities": {"display": 1}},
    {"user": ""},
    {"watchdog_sec": -1},
    {"console": "yes"},
    {"description": 5},
    {"bogus": 1},
    {"quotas": {"io_max": ["8:0 rbps=" + "9" * 20]}},
    {"after": ["cpu.max"]},
    {"requires": ["cgroup.procs"]},
    {"description": [[[[["deep"]]]]]},
    {"quotas": {"memory_max": "9" * 4301}},
    {"quotas": {"io_max": ["12345:0 rbps=1"]}},
    {"quotas": {"pids_max": 99999999999999999999}},
    {"readiness": {"timeout": 1e300}},
    {"restart": {"limit_burst": 1e20}},
    {"watchdog_sec": "1"},
    {"argv": None},
    {"runtime": "wasm"},
    {"runtime": "wasm", "wasm": {"module": "/srv/a.wat"}},
    {"argv": None, "runtime": "wasm"},
    {"argv": None, "runtime": "wasi", "wasm": {"module": "/srv/a.wat"}},
    {"wasm": {"module": "/srv/a.wat"}},
    {"argv": None, "wasm": {"module": "/srv/a.wat"}},
    {"argv": None, "runtime": "wasm", "wasm": {}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "srv/a.wat"}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.py"}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat", "entry": ""}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat", "fuel": 0}},
    {"argv": None, "runtime": "crush"},
    {"argv": None, "runtime": "crush", "crush": {"program": "/srv/a.wat"}},
    {"argv": None, "runtime": "crush", "crush": {"program": "/srv/a.py", "gas": 0}},
    {"argv": None, "runtime": "crush", "crush": {"program": "/srv/a.py", "on_bad_checkpoint": "delete"}},
    {"argv": None, "runtime": "crush", "crush": {"program": "/srv/a.py"}, "readiness": {"kind": "tcp", "port": 1}},
    {"argv": None, "runtime": "wasm", "crush": {"program": "/srv/a.py"}, "wasm": {"module": "/srv/a.wat"}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat", "fuel": "1000"}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat", "memory_max": "5G"}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat", "deadline": -1}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat", "stack": 1}},
    {"argv": None, "runtime": "wasm", "wasm": "/srv/a.wat"},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat"}, "readiness": {"kind": "fd"}},
    {"argv": None, "runtime": "wasm", "wasm": {"module": "/srv/a.wat"}, "readiness": {"kind": "tcp", "port": 80}},
]


@pytest.mark.parametrize("patch", PARITY, ids=lambda p: json.dumps(p, sort_keys=True))
def test_manifest_nix_agrees_with_the_loader(patch: dict[str, Any]) -> None:
    capsule = {**MINIMAL, **patch}
    python_ok = not parse_manifest({"version": 1, "capsules": {"web": capsule}}).errors
    proc = nix("--eval", "--strict", "--json", *render_capsules_args({"web": capsule}))
    nix_ok = proc.returncode == 0
    assert nix_ok == python_ok, (
        f"exo_init {'accepts' if python_ok else 'rejects'} {capsule}, manifest.nix "
        f"{'accepts' if nix_ok else 'rejects'} it:\n{proc.stderr}"
    )
    if nix_ok:
        loads_cleanly(json.loads(proc.stdout))
    else:
        assert 'exosphere: capsule "web": ' in proc.stderr, proc.stderr


# New with the schema: bounds on every numeric field (the edges come from the schema itself), sizes
# in every form, and the cpu_max parts.
@pytest.mark.parametrize(("patch", "ok"), bound_cases(), ids=lambda p: json.dumps(p, sort_keys=True))
def test_manifest_nix_agrees_on_bounds(patch: dict[str, Any], ok: bool) -> None:
    """Both loaders accept the edges and refuse what is just outside, with the same message."""
    capsule = {**MINIMAL, **patch}
    errors = parse_manifest({"version": 1, "capsules": {"web": capsule}}).errors
    assert (not errors) == ok, errors
    proc = nix("--eval", "--strict", "--json", *render_capsules_args({"web": capsule}))
    assert (proc.returncode == 0) == ok, proc.stderr
    if not ok:
        err = errors["web"]
        assert f'exosphere: capsule "web": {err.field} {err.message}' in proc.stderr, proc.stderr


def test_schema_nix_is_the_schema() -> None:
    """schema.nix's defaults and keys are the JSON table's, which is what the loader uses."""
    sections = nix_json("--expr", f"builtins.mapAttrs (_: s: {{ inherit (s) keys defaults; }}) "
                        f"(import {MODULES / 'schema.nix'}).sections")
    assert set(sections) == set(SCHEMA.sections)
    for name, section in SCHEMA.sections.items():
        assert sections[name]["keys"] == list(section.keys)
        assert sections[name]["defaults"] == {f.name: f.default for f in section.fields if f.has_default}


# --- the flake -------------------------------------------------------------------------------------


def test_flake_lock_is_the_shared_pin() -> None:
    if SHARED_PIN.exists():
        shared = json.loads(SHARED_PIN.read_text())
        assert {k: shared[k] for k in PIN} == PIN
    lock = json.loads(LOCK.read_text())
    assert lock["version"] == 7
    assert lock["root"] == "root"
    assert lock["nodes"]["root"] == {"inputs": {"nixpkgs": "nixpkgs"}}
    node = lock["nodes"]["nixpkgs"]
    assert node["locked"] == {
        "type": PIN["type"],
        "owner": PIN["owner"],
        "repo": PIN["repo"],
        "rev": PIN["rev"],
        "narHash": PIN["narHash"],
        "lastModified": PIN["lastModified"],
    }
    assert node["original"] == {
        "type": PIN["type"],
        "owner": PIN["owner"],
        "repo": PIN["repo"],
        "ref": PIN["branch"],
    }


def test_flake_input_matches_the_lock() -> None:
    inputs = nix_json("--expr", f"(import {FLAKE}).inputs")
    assert inputs == {"nixpkgs": {"url": f"github:{PIN['owner']}/{PIN['repo']}/{PIN['branch']}"}}


def test_flake_outputs_have_the_promised_names() -> None:
    # The outputs function applied to a stub nixpkgs: only the names are forced, never a value
    # that would need the real nixpkgs.
    expr = f"""
      let
        flake = import {FLAKE};
        stub = {{ outPath = "/nonexistent"; lib = {{ }}; legacyPackages = {{ }}; }};
        out = flake.outputs {{ self = out; nixpkgs = stub; }};
        names = builtins.mapAttrs (_: builtins.attrNames);
      in {{
        top = builtins.attrNames out;
        packages = names out.packages;
        checks = names out.checks;
        apps = names out.apps;
        devShells = names out.devShells;
        formatter = builtins.attrNames out.formatter;
        nixosModules = builtins.attrNames out.nixosModules;
        nixosConfigurations = builtins.attrNames out.nixosConfigurations;
        module = toString out.nixosModules.exosphere;
      }}
    """
    shape = nix_json("--expr", expr)
    assert set(shape["top"]) >= {
        "packages", "nixosModules", "nixosConfigurations", "checks", "apps", "devShells", "formatter",
    }  # fmt: skip
    assert set(shape["packages"]["x86_64-linux"]) >= {"exo-init", "iso", "ova", "vm", "default"}
    assert set(shape["packages"]["aarch64-linux"]) == {"exo-init", "iso", "vm", "default"}  # (no VirtualBox)
    for system in ("x86_64-linux", "aarch64-linux"):
        assert "boot" in shape["checks"][system]
        assert "vm" in shape["apps"][system]
        assert "default" in shape["devShells"][system]
    assert shape["formatter"] == ["aarch64-linux", "x86_64-linux"]
    assert "exosphere" in shape["nixosModules"]
    assert set(shape["nixosConfigurations"]) >= {"exosphere-iso", "exosphere-ova", "exosphere-vm",
                                                 "exosphere-iso-aarch64", "exosphere-vm-aarch64"}
    assert shape["module"] == str(MODULES / "exosphere.nix")


def test_flake_configurations_target_their_platform() -> None:
    """Each NixOS configuration's modules, applied to a stub (lib.nixosSystem returns its modules):
    the platform, the image module it imports, and the serial console of that platform."""
    expr = f"""
      let
        flake = import {FLAKE};
        lib = {{ nixosSystem = args: args; mkDefault = x: x; mkForce = x: x; }};
        stub = {{ outPath = "/nonexistent"; inherit lib; legacyPackages = {{ }}; }};
        out = flake.outputs {{ self = out; nixpkgs = stub; }};
        args = {{ inherit lib; config.system.nixos.label = "L"; modulesPath = "/m"; pkgs = {{ }}; }};
        view = c: let ms = map (m: if builtins.isFunction m then m args else m) c.modules; in {{
          platform = builtins.concatMap (m: if m ? nixpkgs then [ m.nixpkgs.hostPlatform ] else [ ]) ms;
          imports = builtins.concatMap (m: map toString (m.imports or [ ])) ms;
          params = builtins.concatMap (m: m.boot.kernelParams or [ ]) ms;
          name = builtins.concatMap (m: if m ? image then [ m.image.baseName ] else [ ]) ms;
        }};
      in builtins.mapAttrs (_: view) out.nixosConfigurations
    """
    configs = nix_json("--expr", expr)
    for name, system, console in (("exosphere-iso", "x86_64-linux", "ttyS0"),
                                  ("exosphere-iso-aarch64", "aarch64-linux", "ttyAMA0")):
        c = configs[name]
        assert c["platform"] == [system] and "/m/installer/cd-dvd/iso-image.nix" in c["imports"], c
        assert c["params"] == [f"console={console},115200", "console=tty0"], c
        assert c["name"] == [f"exosphere-L-{system}"], c
    assert configs["exosphere-vm-aarch64"]["platform"] == ["aarch64-linux"]
    assert "/m/virtualisation/qemu-vm.nix" in configs["exosphere-vm-aarch64"]["imports"]
    assert configs["exosphere-ova"]["platform"] == ["x86_64-linux"]


def _path_literals(parsed: str) -> list[tuple[str, str]]:
    """(path, the 40 characters before it) for each path literal in `nix-instantiate --parse`
    output, where path literals are printed as absolute, unquoted paths and strings are quoted."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(parsed):
        ch = parsed[i]
        if ch == '"':
            i += 1
            while i < len(parsed) and parsed[i] != '"':
                i += 2 if parsed[i] == "\\" else 1
            i += 1
            continue
        # A path starts with "/" and a path character ("//" is the update operator).
        m = re.match(r"/[A-Za-z0-9._+-][A-Za-z0-9._+/-]*", parsed[i:]) if ch == "/" else None
        if m is not None and (i == 0 or parsed[i - 1] in " ([{=;"):
            out.append((m.group(0), parsed[max(0, i - 40) : i]))
            i += len(m.group(0))
            continue
        i += 1
    return out


@pytest.mark.parametrize(
    "path", [FLAKE, *sorted(MODULES.glob("*.nix"))], ids=lambda p: str(p.relative_to(REPO))
)
def test_relative_path_literals_exist(path: Path) -> None:
    proc = nix("--parse", str(path))
    assert proc.returncode == 0, proc.stderr
    literals = _path_literals(proc.stdout)
    if path.name in {"flake.nix", "exosphere.nix", "render.nix", "package.nix"}:
        assert literals, f"expected path literals in {path.name}"
    for literal, before in literals:
        # Parsing turns ./x and ../x into absolute paths under the file's directory.
        assert literal.startswith(str(REPO)), f"{path.name}: absolute path literal {literal}"
        if before.endswith("maybeMissing "):
            continue  # lib.fileset.maybeMissing: allowed not to exist
        assert Path(literal).exists(), f"{path.name}: {literal} does not exist"


# --- the NixOS module and package, against a stub nixpkgs ------------------------------------------
#
# There is no nixpkgs offline, so these evaluate exosphere.nix and package.nix with a small stand-in
# for `lib` (mkOption records the option, types are labels, priorities are not modelled) and for
# `pkgs` (packages are fake store paths). That checks what this repository decides: that the
# capsule options mirror the manifest fields and the loader's defaults, that the rendered
# /etc/exosphere/manifest.json loads, the PID 1 wiring and the two scripts. Whether nixpkgs accepts
# the module is checked by `nix flake check` on a machine with nixpkgs.

MODULE_HARNESS = r"""
{ modulePath, modulesPath, extraJson, testing }:
let
  inherit (builtins) attrNames concatStringsSep filter foldl' isFunction listToAttrs mapAttrs removeAttrs;
  option = attrs: attrs // { _option = true; };
  # Types are data here, so the test can read which type each option got.
  types = {
    str = "str"; bool = "bool"; port = "port"; package = "package"; nonEmptyStr = "nonEmptyStr";
    anything = "anything";
    enum = values: { enum = values; }; nullOr = t: { nullOr = t; }; either = a: b: { either = [ a b ]; };
    listOf = t: { listOf = t; }; nonEmptyListOf = t: { nonEmptyListOf = t; };
    attrsOf = t: { _attrsOf = t; };
    submodule = m: { _submodule = m; };
    numbers = { nonnegative = "number"; between = lo: hi: { numbersBetween = [ lo hi ]; }; };
    ints = { between = lo: hi: { intsBetween = [ lo hi ]; }; unsigned = "int"; positive = "ints.positive"; };
  };
  lib = {
    inherit types mapAttrs;
    mkOption = option;
    mkEnableOption = _: option { default = false; };
    mkDefault = v: v;
    mkOverride = _: v: v;
    mkIf = cond: v: if cond then v else { };
    mkMerge = foldl' (a: b: a // b) { };
    literalExpression = x: x;
    filterAttrs = pred: set: removeAttrs set (filter (n: !pred n set.${n}) (attrNames set));
    getAttrs = names: set: listToAttrs (map (n: { name = n; value = set.${n}; }) names);
    makeBinPath = ps: concatStringsSep ":" (map (p: "${p}/bin") ps);
    optional = cond: x: if cond then [ x ] else [ ];
  };
  pythonPackages = { psutil = "psutil"; pyroute2 = "pyroute2"; pydbus = "pydbus"; pygobject3 = "pygobject3";
                     wasmtime = "wasmtime"; };
  # A stub script's "store path" carries its text after a newline, so the test can read it.
  script = name: text: { inherit name text; outPath = "/nix/store/${name}\n${text}"; };
  pkgs = {
    kmod = "/nix/store/kmod"; bash = "/nix/store/bash"; bashInteractive = "/nix/store/bash-interactive";
    coreutils = "/nix/store/coreutils";
    # withPackages names the environment by the packages asked for (a name nixpkgs' python3Packages
    # has, per the stand-in set below; anything else is an evaluation error).
    python3 = { sitePackages = "lib/python3/site-packages";
                withPackages = f: "/nix/store/python-env-" + concatStringsSep "+" (f pythonPackages); };
    dbus = "/nix/store/dbus"; busybox = "/nix/store/busybox";
    writeTextDir = path: text: { outPath = "/nix/store/textdir/${path}\n${text}"; };
    writeShellScript = script;
    writeShellScriptBin = script;
    callPackage = _: _: "/nix/store/exo-init";
  };
  # A submodule's options, also inside nullOr (a nullable section).
  subOptions = name: type:
    let sub = type._submodule or (type.nullOr._submodule or null); in
    if sub == null then null else (if isFunction sub then sub { inherit name; } else sub).options;
  # Option values from definitions: the defined value, else the option's default (nested); a
  # nullable submodule that is not defined is its default, null.
  fill = name: opts: def: mapAttrs (k: o:
    let sub = subOptions name o.type; in
    if sub != null && (def ? ${k} || !(o.type ? nullOr)) then fill name sub (def.${k} or { })
    else if def ? ${k} then def.${k}
    else o.default or (throw "${name}.${k}: no definition and no default")) opts;
  capsuleOptions = name: subOptions name mod.options.services.exosphere.capsules.type._attrsOf;
  defined = mod.config.services.exosphere.capsules // builtins.fromJSON extraJson;
  config = {
    services.exosphere = {
      enable = true;
      package = "/nix/store/exo-init";
      hostname = mod.options.services.exosphere.hostname.default;
      capsules = mapAttrs (name: fill name (capsuleOptions name)) defined;
      sentry.enable = false;
      dashboard.enable = false;
    };
    testing.backdoor = testing == "on";
    networking.hostName = "exo-test";
    boot.initrd.systemd.enable = false;
    nix.package = "/nix/store/nix";
  };
  mod = import modulePath {
    inherit config lib pkgs modulesPath;
    options = if testing == "absent" then { } else { testing.backdoor = { }; };
  };
  fields = name: attrNames (subOptions "x" (capsuleOptions "x").${name}.type);
  # Each option as { type; default; description; example; } (a submodule's type as its options').
  describe = opts: mapAttrs (_: o:
    let
      sub = subOptions "x" o.type;
      described = { submodule = describe sub; };
    in
    removeAttrs o [ "_option" ]
    // (if sub != null then { type = if o.type ? nullOr then { nullOr = described; } else described; } else { })) opts;
in
{
  manifestJson = mod.config.environment.etc."exosphere/manifest.json".text;
  systemdExecutable = mod.config.boot.systemdExecutable;
  kernelParams = mod.config.boot.kernelParams;
  initrdSystemd = mod.config.boot.initrd.systemd.enable;
  assertions = map (a: a.assertion) mod.config.assertions;
  hostname = config.services.exosphere.hostname;
  capsuleFields = attrNames (capsuleOptions "x");
  readinessFields = fields "readiness";
  restartFields = fields "restart";
  stopFields = fields "stop";
  quotaFields = fields "quotas";
  capsuleOptions = describe (capsuleOptions "x");
  systemPackages = map toString mod.config.environment.systemPackages;
  dbusEnable = mod.config.services.dbus.enable;
  dbusPackages = map toString mod.config.services.dbus.packages;
}
"""


def eval_module(tmp_path: Path, extra: dict[str, Any], testing: str = "on") -> Any:
    # modulesPath/../lib/qemu-common.nix is where exosphere.nix finds the serial device name.
    (tmp_path / "nixpkgs" / "nixos" / "modules").mkdir(parents=True)
    (tmp_path / "nixpkgs" / "nixos" / "lib").mkdir()
    (tmp_path / "nixpkgs" / "nixos" / "lib" / "qemu-common.nix").write_text(
        '{ lib, pkgs }: { qemuSerialDevice = "ttyS0"; }\n'
    )
    harness = tmp_path / "harness.nix"
    harness.write_text(MODULE_HARNESS)
    return nix_json(
        str(harness),
        "--argstr", "modulePath", str(MODULES / "exosphere.nix"),
        "--argstr", "modulesPath", str(tmp_path / "nixpkgs" / "nixos" / "modules"),
        "--argstr", "extraJson", json.dumps(extra),
        "--argstr", "testing", testing,
    )  # fmt: skip


def stub_script(path: str) -> str:
    """The text of a stub script from its (stub) store path."""
    assert "\n" in path, path
    return path.split("\n", 1)[1]


def bash_syntax_ok(text: str) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    proc = subprocess.run([bash, "-n"], input=text, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_module_capsule_options_mirror_the_manifest(tmp_path: Path) -> None:
    out = eval_module(tmp_path, {})
    assert set(out["capsuleFields"]) == {*CAPSULE_KEYS, "enable"}
    assert set(out["quotaFields"]) == set(QUOTA_KEYS)
    assert set(out["readinessFields"]) == set(Readiness.__dataclass_fields__)
    assert set(out["restartFields"]) == set(Restart.__dataclass_fields__)
    assert set(out["stopFields"]) == set(Stop.__dataclass_fields__)


def expected_option_type(spec: FieldSpec) -> Any:
    """The lib.types a schema field's option must have (in the harness's stand-in notation)."""
    strings = {"listOf": "str"}
    by_type: dict[FieldType, Any] = {
        FieldType.BOOL: "bool", FieldType.STRING: "nonEmptyStr" if spec.nonempty else "str", FieldType.PATH: "str",
        FieldType.ENUM: {"enum": list(spec.values)}, FieldType.NAMES: strings,
        FieldType.ARGV: {"nonEmptyListOf": "str"}, FieldType.ENV: {"_attrsOf": "str"},
        FieldType.SIGNAL: {"either": ["str", "ints.positive"]},
        FieldType.CPU_MAX: "str", FieldType.IO_MAX: strings,
    }
    b = spec.bounds
    if spec.type is FieldType.INT and b is not None:
        t: Any = {"intsBetween": [b.min, b.max]}
    elif spec.type is FieldType.NUMBER and b is not None:
        t = {"numbersBetween": [b.min, b.max]}
    elif spec.type is FieldType.SIZE and b is not None:
        t = {"either": ["str", {"intsBetween": [0, b.max]}]}
    elif spec.type is FieldType.PIDS and b is not None:
        t = {"either": [{"enum": ["max"]}, {"intsBetween": [b.min, b.max]}]}
    else:
        t = by_type[spec.type]
    return {"nullOr": t} if spec.nullable else t


def test_module_option_types_follow_the_schema(tmp_path: Path) -> None:
    """Each capsule option is typed, defaulted and documented by its schema field; the bounds of
    every number reach its lib.types (ints.between, numbers.between)."""
    options = eval_module(tmp_path, {})["capsuleOptions"]
    assert options["enable"]["type"] == "bool"
    for spec in SCHEMA.section("capsule").fields:
        option = options[spec.name]
        assert option["description"].startswith(spec.doc)
        assert ("default" in option) == (not spec.required), spec.name
        if spec.has_default:
            assert option["default"] == spec.default
        if spec.type is FieldType.SECTION:
            section = SCHEMA.section(spec.name)
            if section.freeform:
                assert option["type"] == {"_attrsOf": "anything"}
                assert all(f"`{field.name}`: {field.doc}" in option["description"] for field in section.fields)
                continue
            sub = (option["type"]["nullOr"] if spec.nullable else option["type"])["submodule"]
            assert list(sub) == sorted(section.keys)
            for field in section.fields:
                assert sub[field.name]["type"] == expected_option_type(field), f"{spec.name}.{field.name}"
                if field.required:
                    assert "default" not in sub[field.name], f"{spec.name}.{field.name}"
                else:
                    assert sub[field.name]["default"] == (None if field.nullable else field.default)
                assert sub[field.name]["description"] == field.doc
        else:
            assert option["type"] == expected_option_type(spec), spec.name


def test_module_renders_a_manifest_the_loader_accepts(tmp_path: Path) -> None:
    probe = {"argv": ["/nix/store/coreutils/bin/sleep", "infinity"], "quotas": {"memory_max": "64M"}}
    hello = {"runtime": "wasm", "wasm": {"module": "/nix/store/hello/hello.wat", "fuel": 1000}}
    out = eval_module(tmp_path, {"probe": probe, "hello": hello, "off": {"argv": ["/bin/false"], "enable": False}})
    doc = json.loads(out["manifestJson"])
    loads_cleanly(doc)
    assert doc["hostname"] == "exo-test"
    assert set(doc["capsules"]) == MODULE_DEFAULTS | {"backdoor", "probe", "hello"}
    assert "wasm" not in doc["capsules"]["probe"] and "argv" not in doc["capsules"]["hello"]
    assert parse_capsule("hello", doc["capsules"]["hello"]) == parse_capsule("hello", hello)
    assert None not in walk(doc)
    assert doc["capsules"]["kmod"]["argv"][1:3] == ["-m", "exo_init.system.coldplug"]
    assert doc["capsules"]["kmod"]["env"]["MODPROBE"] == "/nix/store/kmod/bin/modprobe"
    assert doc["capsules"]["console"]["argv"][1:] == ["-m", "corecaps.sh"]
    # The option defaults are the loader's defaults.
    assert parse_capsule("probe", doc["capsules"]["probe"]) == parse_capsule("probe", probe)


@pytest.mark.parametrize("testing", ["absent", "off"])
def test_module_without_the_test_driver_has_no_backdoor(tmp_path: Path, testing: str) -> None:
    out = eval_module(tmp_path, {}, testing=testing)
    assert set(json.loads(out["manifestJson"])["capsules"]) == MODULE_DEFAULTS


def test_module_backdoor_capsule(tmp_path: Path) -> None:
    backdoor = json.loads(eval_module(tmp_path, {})["manifestJson"])["capsules"]["backdoor"]
    script = stub_script(backdoor["argv"][0])
    bash_syntax_ok(script)
    assert "exec < /dev/hvc0 > /dev/hvc0" in script
    assert "exec 2> /dev/ttyS0" in script
    # The test driver (nixos/lib/test-driver) waits for exactly this line, then talks to the shell.
    commands = [line for line in script.splitlines() if line.strip() and not line.startswith("#")]
    assert commands[-2] == 'echo "Spawning backdoor root shell..."'
    assert commands[-1].startswith('PS1="" exec /nix/store/bash/bin/bash --norc /dev/hvc0')
    assert backdoor["stop"]["signal"] == "SIGHUP"


def test_module_pid1_wiring(tmp_path: Path) -> None:
    out = eval_module(tmp_path, {})
    assert out["systemdExecutable"] == "/nix/store/exo-init/bin/exo_init"
    # Runtime capsules run with the capsules' Python, which has wasmtime (ps.wasmtime).
    env = "/nix/store/python-env-psutil+pyroute2+pydbus+pygobject3+wasmtime"
    assert out["kernelParams"] == [f"exo.python={env}/bin/python3"]
    assert out["assertions"] == [True]  # scripted stage 1
    assert out["initrdSystemd"] is False
    assert out["hostname"] == "exo-test"  # defaults to networking.hostName
    assert out["systemPackages"][0] == "/nix/store/exo-init"  # exo_init and exoctl


def test_module_runs_the_system_bus_and_network_as_capsules(tmp_path: Path) -> None:
    out = eval_module(tmp_path, {})
    capsules = json.loads(out["manifestJson"])["capsules"]
    assert capsules["dbus"]["argv"][3:5] == ["/nix/store/dbus/bin/dbus-daemon", "--config-file=/etc/dbus-1/system.conf"]
    assert capsules["dbus"]["readiness"]["kind"] == "fd"
    assert capsules["dbus-bridge"]["requires"] == ["dbus"]
    assert capsules["network"]["argv"][-2:] == ["--udhcpc", "/nix/store/busybox/bin/udhcpc"]
    # NixOS's dbus module provides /etc/dbus-1 with the Core1 policy, and the messagebus user.
    assert out["dbusEnable"] is True
    [policy] = out["dbusPackages"]
    path, text = policy.split("\n", 1)
    assert path == "/nix/store/textdir/share/dbus-1/system.d/org.exosphere.Core1.conf"
    assert text == (REPO / "dbus" / "org.exosphere.Core1.conf").read_text()


def test_module_switch_script(tmp_path: Path) -> None:
    script = stub_script(eval_module(tmp_path, {})["systemPackages"][1])
    bash_syntax_ok(script)
    steps = [
        'nix-env -p "$profile" --set "$new"',
        '"$new/bin/switch-to-configuration" boot',
        '"$new/activate"',
        'exoctl switch "$new/etc/exosphere/manifest.json"',
    ]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions)
    assert 'nix-env -p "$profile" --rollback' in script
    assert "profile=/nix/var/nix/profiles/system" in script


PACKAGE_HARNESS = r"""
{ packagePath }:
let
  lib = {
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    fileset = { toSource = args: args; unions = x: x; maybeMissing = x: x; };
    licenses.mit = "mit";
    platforms.linux = [ "x86_64-linux" ];
  };
  python3Packages = {
    buildPythonApplication = args: args;
    setuptools = "setuptools";
    psutil = "psutil";
  };
  drv = import packagePath { inherit lib python3Packages; };
in
{
  inherit (drv) pname version pyproject build-system dependencies pythonImportsCheck;
  root = toString drv.src.root;
  files = map toString drv.src.fileset;
}
"""


def test_package_builds_from_pyproject(tmp_path: Path) -> None:
    harness = tmp_path / "package-harness.nix"
    harness.write_text(PACKAGE_HARNESS)
    out = nix_json(str(harness), "--argstr", "packagePath", str(MODULES / "package.nix"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert out["pname"] == "exo-init"
    assert out["version"] == project["version"]
    assert out["pyproject"] is True
    assert out["build-system"] == ["setuptools"]
    assert out["dependencies"] == ["psutil"] == project["dependencies"]
    assert "exo_init" in out["pythonImportsCheck"]
    assert out["root"] == str(REPO)
    assert str(REPO / "pyproject.toml") in out["files"]
    assert str(REPO / "exo_init") in out["files"]
