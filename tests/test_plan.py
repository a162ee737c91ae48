"""The launch plan (exo_init/pid1/plan.py), a pure function: manifest entry + facts -> SpawnPlan.
No process, no system lookup: the user database and the paths that exist are given."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from exo_init.lib.runtime import ENV_CONFIG, RuntimeConfig
from exo_init.pid1 import scope
from exo_init.pid1.config import SYSTEM_PATH, Config, parse_args
from exo_init.pid1.manifest import Capsule, parse_manifest
from exo_init.pid1.plan import NS_INIT, Facts, PlanError, UserEntry, Users, cached_users, launch_plan

CONFIG = Config(manifest=Path("/etc/exosphere/manifest.json"), runtime_dir=Path("/run/exosphere"),
                log_dir=Path("/var/log/exosphere"), cgroup_root=None, pid1=True)
USERS = Users(users={"root": UserEntry(0, 0, "/root"), "www": UserEntry(33, 33, "/var/www"),
                     "dyn-collide": UserEntry(61184, 61184, "/")},
              groups={"root": 0, "www-data": 33, "video": 44, "audio": 29},
              members={"www": (44, 29)})
EXISTING = {"/usr", "/bin", "/lib", "/etc/ld.so.cache", "/srv/data", "/dev/fb0", "/etc/resolv.conf",
            "/run/exosphere/notify.sock", "/run/exosphere/control.sock", "/var/log/exosphere", "/run/dbus",
            "/run/exosphere/wayland"}


def capsule(**fields: Any) -> Capsule:
    doc = {"version": 1, "capsules": {"svc": {"argv": ["/usr/bin/svc", "--flag"], **fields}}}
    manifest = parse_manifest(doc, "test")
    assert not manifest.errors, manifest.errors
    return manifest.capsules["svc"]


BLOCK = {"/dev/vda"}


def facts(existing: set[str] = EXISTING | BLOCK, taken: frozenset[int] = frozenset()) -> Facts:
    return Facts(config=CONFIG, users=USERS, taken_uids=taken, exists=existing.__contains__,
                 is_block_device=BLOCK.__contains__)


def test_an_isolated_capsule_gets_a_stable_dynamic_uid_that_no_one_else_has() -> None:
    spec = capsule()
    first = launch_plan(spec, facts())
    assert first == launch_plan(spec, facts())  # pure: same inputs, same plan
    assert first.uid in scope.DYNAMIC_UIDS and first.gid == first.uid and first.groups == (first.uid,)
    assert first.user == "svc" and first.env["HOME"] == "/tmp"
    other = launch_plan(spec, facts(taken=frozenset({first.uid})))
    assert other.uid != first.uid and other.uid in scope.DYNAMIC_UIDS
    # Every dynamic uid taken by capsules but two, one of which a passwd entry has: the other one.
    assert USERS.users["dyn-collide"].uid == 61184 != first.uid
    taken = frozenset(scope.DYNAMIC_UIDS) - {61184, first.uid}
    assert launch_plan(spec, facts(taken=taken)).uid == first.uid
    with pytest.raises(PlanError, match=r"^user: no free dynamic uid"):
        launch_plan(spec, facts(taken=frozenset(scope.DYNAMIC_UIDS)))


def test_a_named_user_gets_its_ids_groups_and_home_only_when_unconfined() -> None:
    plan = launch_plan(capsule(user="www", group="video", capabilities={"host": True}), facts())
    assert (plan.uid, plan.gid, plan.groups, plan.env["HOME"]) == (33, 44, (29, 44), "/var/www")
    assert plan.scope is None
    scoped = launch_plan(capsule(user="www"), facts())
    assert (scoped.uid, scoped.gid, scoped.env["HOME"]) == (33, 33, "/tmp") and scoped.scope is not None


@pytest.mark.parametrize(("fields", "error"), [
    ({"user": "nobody-here"}, "user: unknown user 'nobody-here'"),
    ({"user": "www", "group": "nogroup-here"}, "group: unknown group 'nogroup-here'"),
    ({"capabilities": {"filesystem": {"/srv/missing": "ro"}}}, "capabilities.filesystem: /srv/missing does not exist"),
    ({"capabilities": {"devices": ["/dev/dri/card0"]}}, "capabilities.devices: /dev/dri/card0 does not exist"),
    ({"capabilities": {"devices": ["/dev/vda"]}}, "capabilities.devices: /dev/vda is a block device (raw access to "
                                                  "a disk); that needs capabilities.block_devices = true"),
    ({"capabilities": {"display": True}}, "capabilities: the Wayland socket directory (is the compositor running?) "
                                         "is not there (/run/exosphere/wayland)"),
])
def test_a_grant_that_cannot_be_honoured_is_a_plan_error_naming_it(fields: dict[str, Any], error: str) -> None:
    existing = EXISTING - {"/run/exosphere/wayland"} | BLOCK
    with pytest.raises(PlanError, match="^" + re.escape(error)):
        launch_plan(capsule(**fields), facts(existing))


def test_the_scope_binds_only_what_exists_and_what_is_granted() -> None:
    plan = launch_plan(capsule(capabilities={"filesystem": {"/srv/data": "rw"}, "devices": ["/dev/fb0"],
                                             "control": True, "logs": True, "network": "host"}), facts())
    assert plan.scope is not None
    binds = {b.target: b for b in plan.scope.binds}
    assert {"/usr", "/bin", "/lib", "/etc/ld.so.cache"} <= set(binds)
    assert "/lib64" not in binds and "/nix/store" not in binds  # not on this machine
    assert not binds["/srv/data"].readonly and binds["/usr"].readonly
    assert binds["/dev/fb0"].device
    assert binds["/run/exosphere/control.sock"].readonly and binds["/var/log/exosphere"].readonly
    assert "/run/dbus" not in binds and "/run/exosphere/notify.sock" not in binds  # not granted
    assert binds["/etc/resolv.conf"].readonly and plan.scope.network == "host"
    assert plan.scope.root == "/run/exosphere/scope-root" and plan.scope.hostname == "svc"


def test_veth_caps_and_seccomp_reach_the_scope() -> None:
    plan = launch_plan(capsule(capabilities={"network": {"veth": {"address": "10.9.0.2/24", "peer": "10.9.0.1/24"}},
                                             "caps": ["CAP_NET_BIND_SERVICE"], "seccomp_deny": ["ptrace"]}), facts())
    assert plan.scope is not None
    assert (plan.scope.network, plan.scope.veth_address, plan.scope.veth_peer) == ("veth", "10.9.0.2/24", "10.9.0.1/24")
    assert plan.scope.veth_host_name == scope.veth_name("svc")
    assert plan.scope.caps == (scope.CAP_NUMBERS["CAP_NET_BIND_SERVICE"],) and plan.scope.seccomp_deny == ("ptrace",)


def test_environment() -> None:
    plan = launch_plan(capsule(env={"LANG": "de_DE.UTF-8", "X": "1"}, watchdog_sec=2.5, console=True,
                               capabilities={"bus": True, "display": True}), facts())
    env = plan.env
    assert env["PATH"] == SYSTEM_PATH and env["EXO_CAPSULE"] == "svc" and env["USER"] == "svc"
    assert env["TERM"] == "linux" and env["LANG"] == "de_DE.UTF-8" and env["X"] == "1"
    assert env["NOTIFY_SOCKET"] == "/run/exosphere/notify.sock" and env["WATCHDOG_USEC"] == "2500000"
    assert env["DBUS_SYSTEM_BUS_ADDRESS"] == "unix:path=/run/dbus/system_bus_socket"
    assert (env["XDG_RUNTIME_DIR"], env["WAYLAND_DISPLAY"]) == ("/run/exosphere/wayland", "wayland-0")
    plain = launch_plan(capsule(), facts()).env
    assert plain["TERM"] == "dumb" and not {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WAYLAND_DISPLAY"} & set(plain)


def test_argv_workdir_console_and_the_readiness_fd() -> None:
    plan = launch_plan(capsule(workdir="/srv/data", readiness={"kind": "fd", "fd": 7}), facts())
    assert (plan.argv, plan.workdir, plan.console) == (("/usr/bin/svc", "--flag"), "/srv/data", False)
    assert plan.notify_fd == 7
    assert launch_plan(capsule(), facts()).notify_fd is None


def test_a_block_device_needs_its_own_grant() -> None:
    plan = launch_plan(capsule(capabilities={"devices": ["/dev/vda", "/dev/fb0"], "block_devices": True}), facts())
    assert plan.scope is not None and {b.target for b in plan.scope.binds if b.device} == {"/dev/vda", "/dev/fb0"}


def test_an_isolated_capsule_without_limits_gets_default_ones() -> None:
    with_ram = Facts(config=CONFIG, users=USERS, taken_uids=frozenset(), mem_total=2 << 30,
                     exists=EXISTING.__contains__)
    scoped = launch_plan(capsule(), with_ram)
    assert scoped.default_quotas.pids_max == "1024" and scoped.default_quotas.memory_max == str(1 << 30)
    assert scoped.quotas.pids_max is None  # a default, not a declared limit (no controller: no failure)
    declared = launch_plan(capsule(quotas={"pids_max": 16}), with_ram)
    assert declared.quotas.pids_max == "16"
    unconfined = launch_plan(capsule(capabilities={"host": True}), with_ram)
    assert unconfined.default_quotas.pids_max is None and unconfined.default_quotas.memory_max is None
    assert launch_plan(capsule(), facts()).default_quotas.memory_max is None  # RAM unknown


def test_the_user_database_is_read_again_only_when_it_changed(tmp_path: Path) -> None:
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text("a\n")
    group.write_text("b\n")
    users = cached_users((str(passwd), str(group)))
    first = users()
    assert users() is first and first.users  # (the real database: this host has users)
    group.write_text("b\nc\n")
    assert users() is not first


def test_the_small_namespace_init_where_the_system_has_it() -> None:
    with_init = facts(existing=EXISTING | {NS_INIT})
    assert launch_plan(capsule(), with_init).ns_init == NS_INIT
    assert launch_plan(capsule(console=True), with_init).ns_init is None  # the terminal: exo_init's own init
    assert launch_plan(capsule(capabilities={"host": True}), with_init).ns_init is None
    assert launch_plan(capsule(), facts()).ns_init is None  # not installed: exo_init's own init


# --- runtime capsules (runtime = "wasm") ----------------------------------------------------------------

RT_CONFIG = replace(CONFIG, python="/opt/py/bin/python3", exo_lib="/opt/exo", python_paths=("/opt/py", "/usr/lib/py"))
RT_EXISTING = EXISTING | {"/opt/py/bin/python3", "/opt/py", "/opt/exo/exo_init", "/usr/lib/py", "/srv/data/app.wat",
                          "/usr/share/exosphere/hello.wat"}


def wasm_capsule(**fields: Any) -> Capsule:
    wasm = {"module": "/srv/data/app.wat", "fuel": 5000, "memory_max": "1M", "deadline": 2} | fields.pop("wasm", {})
    doc = {"version": 1, "capsules": {"app": {"runtime": "wasm", "wasm": wasm, **fields}}}
    manifest = parse_manifest(doc, "test")
    assert not manifest.errors, manifest.errors
    return manifest.capsules["app"]


def rt_facts(existing: set[str] = RT_EXISTING, state_dir: Path | None = None) -> Facts:
    return Facts(config=RT_CONFIG, users=USERS, taken_uids=frozenset(), exists=existing.__contains__,
                 is_block_device=BLOCK.__contains__, state_dir=state_dir)


def test_a_runtime_capsule_runs_the_runtime_with_its_configuration_and_grants() -> None:
    spec = wasm_capsule(env={"EXO_RUNTIME": "forged", "X": "1"},
                        capabilities={"filesystem": {"/srv/data": "rw", "/etc/fonts": "ro"}})
    plan = launch_plan(spec, rt_facts(RT_EXISTING | {"/etc/fonts"}, state_dir=Path("/var/lib/exosphere")))
    assert plan.argv == ("/opt/py/bin/python3", "-m", "exo_init.runtimes.wasm")
    assert plan.env["PYTHONPATH"] == "/opt/exo" and plan.env["X"] == "1"
    assert plan.env["NOTIFY_SOCKET"] == "/run/exosphere/notify.sock", "a runtime reports its figures"
    config = RuntimeConfig.from_json(plan.env[ENV_CONFIG])  # the capsule's env cannot forge it
    assert (config.runtime, config.capsule) == ("wasm", "app")
    assert config.options == {"module": "/srv/data/app.wat", "entry": "_start", "fuel": 5000,
                              "memory_max": 1 << 20, "deadline": 2.0}
    assert config.grants["filesystem"] == {"/etc/fonts": "ro", "/srv/data": "rw"} and config.grants["host"] is False
    assert config.state_dir == plan.state_dir == "/var/lib/exosphere/capsules/app"
    assert plan.scope is not None
    binds = [(b.target, b.readonly) for b in plan.scope.binds]
    assert ("/opt/py", True) in binds and ("/opt/exo/exo_init", True) in binds
    assert "/usr/lib/py" not in dict(binds), "under /usr: in every world already"
    # The module is bound read-only after (so above) the rw grant that holds it.
    assert binds.index(("/srv/data/app.wat", True)) > binds.index(("/srv/data", False))
    assert ("/var/lib/exosphere/capsules/app", False) in binds


def test_a_runtime_capsules_state_is_in_run_without_a_state_disk_and_its_module_under_usr_is_not_bound() -> None:
    plan = launch_plan(wasm_capsule(wasm={"module": "/usr/share/exosphere/hello.wat"}), rt_facts())
    assert plan.state_dir == "/run/exosphere/state/capsules/app"
    assert plan.scope is not None
    assert "/usr/share/exosphere/hello.wat" not in {b.target for b in plan.scope.binds}
    unconfined = launch_plan(wasm_capsule(capabilities={"host": True}), rt_facts())
    assert unconfined.scope is None and unconfined.state_dir == "/run/exosphere/state/capsules/app"
    assert unconfined.argv[1:] == ("-m", "exo_init.runtimes.wasm")
    own = replace(rt_facts(), interpreter="/opt/py/bin/python3", realpath=lambda p: p)
    assert launch_plan(wasm_capsule(capabilities={"host": True}), own).python is None, "the runtime execs"
    exec_plan = launch_plan(capsule(), facts())
    assert exec_plan.state_dir is None and ENV_CONFIG not in exec_plan.env


@pytest.mark.parametrize(("missing", "error"), [
    ("/srv/data/app.wat", "wasm.module: /srv/data/app.wat does not exist"),
    ("/opt/py/bin/python3", "runtime: the runtime interpreter /opt/py/bin/python3 does not exist"),
])
def test_a_runtime_capsule_without_its_module_or_interpreter_is_a_plan_error(missing: str, error: str) -> None:
    with pytest.raises(PlanError, match="^" + re.escape(error)):
        launch_plan(wasm_capsule(), rt_facts(RT_EXISTING - {missing}))
    with pytest.raises(PlanError, match="^" + re.escape(error)):
        launch_plan(wasm_capsule(capabilities={"host": True}), rt_facts(RT_EXISTING - {missing}))


def test_a_crush_capsule_runs_the_crush_runtime_with_its_program_and_the_crush_package() -> None:
    doc = {"version": 1, "capsules": {"app": {"runtime": "crush", "crush": {"program": "/srv/data/app.casm",
                                                                            "gas": 1000, "checkpoint_every": 10},
                                              "capabilities": {"filesystem": {"/srv/data": "ro"}}}}}
    spec = parse_manifest(doc, "test").capsules["app"]
    existing = RT_EXISTING | {"/srv/data/app.casm", "/opt/exo/crush"}
    plan = launch_plan(spec, rt_facts(existing))
    assert plan.argv == ("/opt/py/bin/python3", "-m", "exo_init.runtimes.crush")
    config = RuntimeConfig.from_json(plan.env[ENV_CONFIG])
    assert config.options == {"program": "/srv/data/app.casm", "gas": 1000, "arena": 16 << 20, "checkpoint_every": 10,
                              "on_bad_checkpoint": "fail", "fast": False,
                              "gas_per_period": 0, "period": 1.0}
    assert plan.scope is not None
    binds = [(b.target, b.readonly) for b in plan.scope.binds]
    assert ("/opt/exo/crush", True) in binds and ("/opt/exo/exo_init", True) in binds
    assert binds.index(("/srv/data/app.casm", True)) > binds.index(("/srv/data", True))
    wasm_scope = launch_plan(wasm_capsule(), rt_facts(existing)).scope
    assert wasm_scope is not None and "/opt/exo/crush" not in {b.target for b in wasm_scope.binds}
    with pytest.raises(PlanError, match="^" + re.escape("crush.program: /srv/data/app.casm does not exist")):
        launch_plan(spec, rt_facts(RT_EXISTING))


def test_the_runtime_interpreter_comes_from_the_command_line_or_is_exo_inits_own() -> None:
    own = parse_args([], pid1=False)
    assert own.python == sys.executable and own.exo_lib == str(Path(__file__).resolve().parent.parent)
    prefix = os.path.realpath(sys.prefix)
    assert any(prefix == p or prefix.startswith(p + "/") for p in own.python_paths), own.python_paths
    assert all(not a.startswith(b + "/") for a in own.python_paths for b in own.python_paths), "outermost only"
    other = parse_args(["--python", "/opt/other/bin/python3"], pid1=False)
    assert other.python == "/opt/other/bin/python3" and other.python_paths == (), "another one: under /usr or /nix"
