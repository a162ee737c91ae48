# The test script of the flake's checks.<system>.boot (nixpkgs' NixOS test driver: `machine` and
# `subtest` are its globals). tests/vm/test_nixos_module.py runs this same file against the dev image
# booted with the module's manifest, through a stand-in for the driver that speaks its protocol to
# the module's `backdoor` capsule (the handshake on /dev/hvc0, base64 output, ${PIPESTATUS[0]}).
#
# The driver's root shell is the `backdoor` capsule the module adds under the test instrumentation
# (no systemd: wait_for_unit and friends do not apply here).
# ruff: noqa: F821
machine.start()

with subtest("exo_init is PID 1 and the capsules are ready"):
    machine.succeed("tr '\\0' ' ' < /proc/1/cmdline | grep -q exo_init")
    machine.wait_until_succeeds("exoctl status kmod | grep -qw exited", timeout=300)
    for name in ["console", "backdoor", "quota-probe", "syslog", "root-shell"]:
        machine.wait_until_succeeds(f"exoctl status {name} | grep -qw ready", timeout=300)

with subtest("the backdoor is an unconfined root shell"):
    # PID 1's namespaces (the driver's commands read /proc/1, pgrep, move shells between cgroups).
    machine.succeed(
        "test \"$(id -u)\" = 0",
        "test \"$(readlink /proc/self/ns/pid)\" = \"$(readlink /proc/1/ns/pid)\"",
        "test \"$(readlink /proc/self/ns/mnt)\" = \"$(readlink /proc/1/ns/mnt)\"",
    )

with subtest("/dev/log takes messages (switch-to-configuration's logger needs it)"):
    machine.succeed("test -S /dev/log", "logger -t exosphere-boot-test hello-from-the-test")
    machine.wait_until_succeeds("exoctl logs syslog | grep -q hello-from-the-test", timeout=60)

with subtest("the root shell is an unconfined bash on tty2"):
    pid = machine.succeed("exoctl --json status root-shell | grep -o '\"pid\": [0-9]*' | grep -o '[0-9]*$'").strip()
    machine.wait_until_succeeds("ps -eo tty=,comm= | grep -Eq '^tty2 +bash$'", timeout=60)
    machine.succeed(f"test \"$(readlink /proc/{pid}/ns/mnt)\" = \"$(readlink /proc/1/ns/mnt)\"")

with subtest("quotas are written and enforced"):
    pid = machine.succeed("pgrep -xf '.*/sleep infinity' | head -n1").strip()
    cg = "/sys/fs/cgroup" + machine.succeed(f"cut -d: -f3 /proc/{pid}/cgroup").strip()
    machine.succeed(
        f"test \"$(cat {cg}/memory.max)\" = 67108864",
        f"test \"$(cat {cg}/pids.max)\" = 16",
        f"test \"$(cat {cg}/cpu.max)\" = '20000 100000'",
    )
    # A shell moved into the capsule's cgroup cannot fork past pids.max (16): the kernel refuses
    # the fork and counts it in pids.events. 16 sleeps with the capsule's own and the shell make
    # 18 tasks: two forks fail (bash retries each for about 15 s; the sleeps outlive that, so no
    # slot frees up meanwhile).
    machine.execute(
        f"bash -c 'echo $$ > {cg}/cgroup.procs; "
        "for i in $(seq 16); do sleep 120 >/dev/null 2>&1 & done' || true"
    )
    machine.succeed(f"grep -Eq '^max [1-9]' {cg}/pids.events")

with subtest("clean poweroff"):
    # The shell goes away with the machine, so do not wait for an answer.
    machine.execute("exoctl poweroff", check_return=False, check_output=False)
    machine.wait_for_shutdown()
