# Capsules of the test image only (a layer the harness adds on top of the system's own).
# Same shape as an `extra` file for nixos-modules/render.nix: paths -> { NAME = capsule; }.
paths:
let
  hog = mode: [ paths.python3 "/usr/lib/exosphere/test/hogs.py" mode ];
  # Holds `held` MiB over a 32M memory.high, allocating and freeing beyond it (tests/vm/test_drills.py).
  pressure = held: {
    description = "Memory pressure: ${held}M over a 32M memory.high";
    argv = hog "pressure" ++ [ held ];
    autostart = false;
    restart.policy = "never";
    quotas = { memory_high = "32M"; memory_max = "256M"; };
  };
  # Scope probes (tests/vm/test_scope.py): report what their world allows, then exit.
  probe = todo: capabilities: {
    description = "Scope probe";
    argv = [ paths.python3 "/usr/lib/exosphere/test/scope_probe.py" ];
    env.PROBE = builtins.toJSON todo;
    type = "oneshot";
    autostart = false;
    restart.policy = "never";
    inherit capabilities;
  };
  # WebAssembly capsules (tests/vm/test_wasm.py): the modules are tests/guest/wasm/*.wat, compiled by
  # the runtime (exo_init/runtimes/wasm.py) when they start; all scoped, as dynamic uids.
  wasmDir = "/usr/lib/exosphere/test/wasm";
  wasm = module: fields: { runtime = "wasm"; wasm = { module = "${wasmDir}/${module}"; } // fields; };
  # CRUSH capsules (tests/vm/test_crush.py): Python-subset programs in tests/guest/crush/, compiled by
  # the runtime (exo_init/runtimes/crush.py, tree-sitter in the image) when they start.
  crushDir = "/usr/lib/exosphere/test/crush";
  crush = program: fields: {
    runtime = "crush";
    crush = { program = "${crushDir}/${program}"; } // fields;
    autostart = false;
    restart.policy = "never";
  };
  crushData = program: crush program { } // {
    description = "CRUSH with /data read-only";
    type = "oneshot";
    capabilities.filesystem."/data" = "ro";
  };
  # Two WATCHDOG=1, then silence: aborted 2 s later, restarted (tests/vm/test_promises.py).
  quietDog = resetAfter: {
    description = "Two WATCHDOG=1, then silence (watchdog_sec 2, reset_after ${toString resetAfter})";
    argv = hog "watchdog" ++ [ "2" ];
    autostart = false;
    readiness.kind = "notify";
    watchdog_sec = 2;
    restart = { delay = 0.5; max_delay = 8; reset_after = resetAfter; limit_burst = 100; };
  };
  attempts = {
    exists = [ "/root" "/var/lib/exosphere" "/etc/exosphere" "/srv/ro/file" "/dev/vda" "/dev/mem" "/dev/kmsg"
               "/dev/null" "/sys" "/run/exosphere/control.sock" "/run/dbus" ];
    write = [ "/srv/ro/new" "/srv/rw/new" "/usr/bin/planted" "/planted" "/proc/sys/kernel/hostname" ];
    connect = [ "10.0.2.2:53" "127.0.0.1:1" "10.250.7.1:7" "10.0.2.15:7" ];
    mkdir = "/tmp/ok";
    # The escapes of issue 13: each must fail (EPERM; clone3 ENOSYS), ordinary work must not.
    escape = [ "unshare user" "unshare net" "unshare user+mount, mount tmpfs" "unshare user+net, AF_PACKET"
               "clone NEWUSER" "clone3" "setns" "mount tmpfs" "socket AF_PACKET" "socket NETLINK_NETFILTER"
               "bpf map" "io_uring_setup" "keyctl" "userfaultfd" "perf_event_open" "ptrace TRACEME"
               "personality ADDR_NO_RANDOMIZE" "socket NETLINK_ROUTE" "fork, thread, exec" ];
  };
in
{
  agent = {
    description = "Test harness agent on virtio-serial";
    capabilities.host = true;  # runs the harness's commands as root on the machine
    argv = [ paths.python3 "/usr/lib/exosphere/test/agent.py" ];
    requires = [ "kmod" ];
    readiness.kind = "notify";
    restart.policy = "always";
  };
  memhog = {
    description = "Allocates until OOM-killed (64M quota)";
    argv = hog "mem";
    autostart = false;
    quotas = { memory_max = "64M"; memory_swap_max = "0"; };
    restart.policy = "never";
  };
  neighbour = {
    description = "An innocent bystander";
    argv = hog "idle";
    autostart = false;
    quotas.memory_max = "64M";
  };
  forkbomb = {
    description = "Forks until pids.max";
    argv = hog "fork";
    autostart = false;
    quotas = { pids_max = 16; memory_max = "256M"; };
    restart.policy = "never";
  };
  cpuhog = {
    description = "Spins; capped at 20% of one CPU";
    argv = hog "cpu";
    autostart = false;
    quotas.cpu_max = "20%";
  };
  benchcap = {
    description = "Started and stopped by the spawn benchmark (scoped)";
    argv = [ "/bin/sleep" "1000" ];
    autostart = false;
    restart.policy = "never";
  };
  benchcap-host = {
    description = "Started and stopped by the spawn benchmark (unconfined)";
    argv = [ "/bin/sleep" "1000" ];
    autostart = false;
    restart.policy = "never";
    capabilities.host = true;
  };
  # The spawn and restart benchmark (tests/bench/versus.py), the same capsules under exo_init and as
  # systemd units: READY=1 at once (an interpreter without site, to keep the program's own start-up
  # small), restarted at once when killed.
  bench-notify = {
    description = "sd_notify READY=1 at once, then sleeps (scoped)";
    argv = [ paths.python3 "-I" "-S" "/usr/lib/exosphere/test/ready.py" ];
    autostart = false;
    readiness.kind = "notify";
    restart = { policy = "always"; delay = 0; max_delay = 0; limit_burst = 1000; };
  };
  bench-notify-host = {
    description = "sd_notify READY=1 at once, then sleeps (unconfined)";
    argv = [ paths.python3 "-I" "-S" "/usr/lib/exosphere/test/ready.py" ];
    autostart = false;
    readiness.kind = "notify";
    restart = { policy = "always"; delay = 0; max_delay = 0; limit_burst = 1000; };
    capabilities.host = true;
  };
  # Prints its arguments as JSON: what the supervisor passed (tests/vm/test_versus.py compares them).
  argv-probe = {
    description = "Prints its argv as JSON";
    argv = [ paths.python3 "-c" "import json, sys; print(json.dumps(sys.argv[1:]))"
             "two words" "50%" "$HOME" "\${X}" ";" "back\\slash" "a \"quote\"" "" ];
    type = "oneshot";
    autostart = false;
    restart.policy = "never";
    capabilities.host = true;
  };
  echo = {
    description = "TCP echo server on port 7777 (reached from the host by a port forward)";
    argv = [ paths.python3 "/usr/lib/exosphere/test/echo.py" "7777" ];
    autostart = false;
    readiness = { kind = "tcp"; port = 7777; };
    after = [ "network" ];
    capabilities.network = "host";
  };
  # The Sentry with the test policy: quarantine a capsule that hits pids.max (freeze it), only
  # log the rest (memhog's OOM kill).
  sentry = {
    description = "Sentry (test policy)";
    capabilities.host = true;
    argv = [ paths.python3 "-m" "exo_init.system.sentry" ];
    env = {
      PYTHONPATH = paths.exoInitLib;
      EXO_SENTRY_POLICY = builtins.toJSON {
        default = "log";
        capsules.quarantine = { pids-max = "freeze"; };
        # tests/vm/test_drills.py: memory pressure across three capsules; the worst one is stopped
        capsules.pressure-a = { memory-pressure = "kill"; };
        capsules.pressure-b = { memory-pressure = "kill"; };
        capsules.pressure-c = { memory-pressure = "kill"; };
        # tests/vm/test_promises.py: the restart action
        capsules.relaunch = { pids-max = "restart"; };
        # one victim of memory pressure per 2 minutes (a loaded TCG host makes the drill slow)
        thresholds.cooldown = 120;
      };
    };
    readiness.kind = "notify";
    restart = { policy = "always"; limit_burst = 1000; };
  };
  # tests/vm/test_drills.py: the Sentry drills.
  # Needs the network: its check connects to the gateway, on a port nothing listens on: "refused"
  # is an answer (the network is there: exit 0); in a partition the connect fails otherwise (no
  # route to host) or hangs until the check's timeout kills it. A partition degrades it: no restart storm.
  uplink = {
    description = "Needs the network (its liveness check reaches the gateway)";
    capabilities.host = true;
    argv = [ "/bin/sleep" "infinity" ];
    autostart = false;
    after = [ "network" ];
    health = {
      kind = "exec";
      argv = [ paths.shell "-c" "case $( { : <>/dev/tcp/10.0.2.2/9; } 2>&1 ) in ''|*refused*) exit 0;; *) exit 1;; esac" ];
      interval = 2;
      timeout = 10;
      threshold = 3;
      action = "restart";
      network = true;
    };
  };
  # Memory pressure in three capsules at once (PSI): a holds the most above its memory.high.
  pressure-a = pressure "48";
  pressure-b = pressure "36";
  pressure-c = pressure "36";
  # A fork storm in an unconfined capsule: only its own pids.max stops it.
  hoststorm = {
    description = "Fork storm in a host capsule (pids.max 64)";
    capabilities.host = true;
    argv = hog "fork";
    autostart = false;
    restart.policy = "never";
    quotas.pids_max = 64;
  };
  # Ignores SIGTERM: the poweroff must still end within its stop timeout.
  stubborn = {
    description = "Ignores SIGTERM (stop timeout 4 s)";
    argv = hog "stubborn";
    autostart = false;
    stop.timeout = 4;
  };
  quarantine = {
    description = "Forks until pids.max; the sentry's policy freezes it";
    argv = hog "fork";
    autostart = false;
    quotas = { pids_max = 8; memory_max = "128M"; };
    restart.policy = "never";
  };
  crasher = {
    description = "Exits 3 after 0.2 s; restarted with backoff, then failed";
    argv = hog "crash";
    autostart = false;
    restart = { policy = "on-failure"; delay = 0.5; max_delay = 4; limit_burst = 4; limit_interval = 120; };
  };
  probe-none = probe attempts {
    filesystem = { "/srv/ro" = "ro"; "/srv/rw" = "rw"; };
    devices = [ "/dev/kmsg" ];
  };
  probe-veth = probe attempts {
    network.veth = { address = "10.250.7.2/30"; peer = "10.250.7.1/30"; };
  };
  # The same escapes as root in a scoped capsule (the shape of dbus-bridge and console).
  probe-root = probe { inherit (attempts) escape; } { } // { user = "root"; };
  # A granted class is open (the filter, not the kernel, refused it before).
  probe-grant = probe { escape = [ "unshare user+mount, mount tmpfs" "ptrace TRACEME" "keyctl" ]; } {
    seccomp_allow = [ "namespaces" "mount" "ptrace" ];
  };
  probe-caps = probe { mkdir = "/tmp/denied"; } {
    caps = [ "CAP_NET_BIND_SERVICE" ];
    seccomp_deny = [ "mkdir" "mkdirat" ];
  };
  # tests/vm/test_hostile.py: an attacker of PID 1's control socket from a dynamic uid (its
  # arguments are in /srv/hostile/args.json, which the test writes), and a capsule that writes as
  # fast as it can.
  hostile = {
    description = "Attacks exo_init's control socket from a dynamic uid";
    argv = [ paths.python3 "/usr/lib/exosphere/test/hostile.py" "@/srv/hostile/args.json" ];
    type = "oneshot";
    autostart = false;
    restart.policy = "never";
    capabilities = { control = true; filesystem."/srv/hostile" = "ro"; };
  };
  noisy = {
    description = "Writes y lines as fast as it can (/usr/bin/yes), scoped, no grants";
    argv = [ "/usr/bin/yes" ];
    autostart = false;
    restart.policy = "never";
  };
  # A runaway CRUSH loop with a gas budget: failed, not restarted, although its policy is "always".
  crush-spin = crush "spin.py" { gas = 2000000; } // {
    description = "A runaway CRUSH loop: stops at its gas budget";
    readiness.kind = "notify";
    restart.policy = "always";
  };
  # The same loop with a gas rate: throttled (waits for its next period), then out of its gas.
  crush-rate = crush "spin.py" { gas = 100000; gas_per_period = 20000; period = 1.0; } // {
    description = "A CRUSH loop at 20k gas a second: throttled, then out of its 100k gas";
    readiness.kind = "notify";
    autostart = false;
    restart.policy = "never";
  };
  crush-data-read = crushData "data_read.py";
  crush-data-outside = crushData "data_outside.py";
  crush-data-write = crushData "data_write.py";
  # A hello module at boot: one line through exo.log, then it returns (exited 0).
  wasm-hello = wasm "hello.wat" { } // {
    description = "Hello from WebAssembly (a oneshot at boot)";
    type = "oneshot";
    restart.policy = "never";
  };
  # A runaway loop with a fuel budget: failed, not restarted, although its policy is "always".
  wasm-spin = wasm "spin.wat" { fuel = 50000000; } // {
    description = "A runaway loop: stops at its fuel budget";
    autostart = false;
    readiness.kind = "notify";
    restart.policy = "always";
  };
  # The same loop with fuel to spare and a 2 s deadline (wall clock: restarted, then the start limit).
  wasm-deadline = wasm "spin.wat" { fuel = 1000000000000000; deadline = 2; } // {
    description = "A runaway loop: stopped at its deadline";
    autostart = false;
    readiness.kind = "notify";
    restart = { policy = "on-failure"; delay = 0.5; limit_burst = 2; limit_interval = 120; };
  };
  wasm-grow = wasm "grow.wat" { memory_max = "1M"; } // {
    description = "memory.grow past wasm.memory_max, then an out-of-bounds load";
    autostart = false;
    restart.policy = "never";
  };
  wasm-ungranted = wasm "ungranted.wat" { } // {
    description = "Imports exo.fs_read without a filesystem grant";
    autostart = false;
    restart.policy = "never";
  };
  # The test writes /srv/wasm/fs.wat (tests/guest/wasm/fs.wat.in with @BASE@ = /srv/wasm) first.
  wasm-fs = {
    description = "Files through the import table: granted, ungranted, .. and symlink escapes";
    runtime = "wasm";
    wasm.module = "/srv/wasm/fs.wat";
    type = "oneshot";
    autostart = false;
    restart.policy = "never";
    capabilities.filesystem = { "/srv/wasm/ro" = "ro"; "/srv/wasm/rw" = "rw"; };
  };
  # A long-running module (ready once instantiated): its figures in exoctl status; the benchmark's.
  wasm-ticker = wasm "ticker.wat" { } // {
    description = "A WebAssembly service: a line and a 100 ms sleep, forever";
    autostart = false;
    readiness.kind = "notify";
  };
  # The benchmark's ordinary Python capsule: ready (sd_notify) as soon as it runs.
  bench-python = {
    description = "A Python capsule that is ready at once (tests/bench/wasm.py compares start-to-ready)";
    argv = [ paths.python3 "-c" "from exo_init.lib.notify import sd_notify; import time; sd_notify('READY=1'); time.sleep(1000)" ];
    env.PYTHONPATH = paths.exoInitLib;
    autostart = false;
    readiness.kind = "notify";
  };
  # A TCP service on the host's end of probe-veth's pair is what "reaches the other end" means.
  veth-peer = {
    description = "Listens on port 7 of every address, the host end of probe-veth's pair (10.250.7.1) included";
    argv = [ paths.python3 "/usr/lib/exosphere/test/echo.py" "7" ];
    autostart = false;
    capabilities.host = true;
  };
  # A second display client (tests/vm/test_desktop.py): a magenta view that logs the input it gets.
  viewer = {
    description = "A Wayland client filling its view with one colour, logging its keyboard and pointer events";
    argv = [ paths.python3 "/usr/lib/exosphere/test/viewer.py" ];
    autostart = false;
    after = [ "nexquelium" ]; # (started by tests/vm/test_desktop.py once the compositor is up)
    capabilities.display = true;
  };
  # tests/vm/test_promises.py: README's promises, one capsule (or pair) each.
  # Every quota besides cpu.max, memory.max and pids.max; the io.max lines name loop0 and loop1,
  # which the test sets up first (the loop module makes them).
  quotas-all = {
    description = "cpu.weight, memory.high, memory.swap.max, io.weight, io.max on two devices, memory.oom.group";
    argv = hog "idle";
    autostart = false;
    quotas = {
      cpu_weight = 42;
      memory_high = "40M";
      memory_swap_max = "8M";
      io_weight = 250;
      io_max = [ "7:0 rbps=2097152 wiops=120" "7:1 wbps=1048576" ];
      memory_oom_group = true;
    };
  };
  # A quota the loader takes and the kernel refuses: io.max of a block device that does not exist.
  quota-rejected = {
    description = "io.max for a device that does not exist (259:4000)";
    argv = hog "idle";
    autostart = false;
    quotas.io_max = [ "259:4000 rbps=1048576" ];
  };
  # `requires` at run time: needed is killed while both run; needy (requires) fails with it,
  # after-needed (ordering only) does not.
  needed = {
    description = "Required by needy; the test kills it";
    argv = hog "idle";
    autostart = false;
    restart.policy = "never";
  };
  needy = {
    description = "Requires needed";
    argv = hog "idle";
    autostart = false;
    requires = [ "needed" ];
  };
  after-needed = {
    description = "Starts after needed (ordering only)";
    argv = hog "idle";
    autostart = false;
    after = [ "needed" ];
  };
  # The Sentry's restart action (its policy above: pids-max -> restart).
  relaunch = {
    description = "Forks until pids.max; the sentry's policy restarts it";
    argv = hog "fork";
    autostart = false;
    quotas = { pids_max = 8; memory_max = "128M"; };
    restart.policy = "never";
  };
  # WATCHDOG=1: dog pings every 0.25 s (watchdog_sec 10: a loaded TCG guest stalls for seconds)
  # and stays; the quiet ones ping twice, then stop: aborted 2 s later and restarted. Each run lasts
  # more than 2 s, so reset_after = 2 resets the backoff every time (0.5 s each time) where
  # reset_after = 60 lets it double.
  dog = {
    description = "Sends WATCHDOG=1 every 0.25 s (watchdog_sec 10)";
    argv = hog "watchdog" ++ [ "0" ];
    autostart = false;
    readiness.kind = "notify";
    watchdog_sec = 10;
  };
  dog-quiet = quietDog 2;
  dog-quiet-noreset = quietDog 60;
}
