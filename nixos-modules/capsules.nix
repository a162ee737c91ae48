# The default Exosphere capsule set, declared once and used by both image builds:
#
#   * the Debian dev image (render.nix passes Debian paths: /usr/bin/python3, /usr/sbin/modprobe, ...)
#   * NixOS (exosphere.nix passes Nix store paths)
#
# Usage:
#
#   (import ./capsules.nix) paths   # -> { kmod = { ... }; console = { ... }; }
#   (import ./capsules.nix).kernelModules
#
# The file is an attribute set with `__functor`, so it can be called like the function
# `paths: { NAME = capsule; }` (the same shape as an extra capsules file) and still export
# `kernelModules`.
#
# `paths` must provide absolute program paths (builtins only here, so checked by hand):
#   python3     the Python interpreter capsules written in Python run with (with psutil, pyroute2,
#               pydbus and PyGObject: the network and dbus-bridge capsules import them)
#   modprobe    kmod's modprobe
#   shell       an interactive bash
#   exoInitLib  the directory holding the exo_init package (for PYTHONPATH, when a capsule needs it)
#   dbusDaemon  dbus-daemon (the system bus)
#   dbusConfig  the system bus's configuration file (it includes the packages' system.d policies)
#   udhcpc      busybox's DHCP client (the network capsule runs it)
# and may provide:
#   crushPrograms  the directory of CRUSH programs compiled at image build (NAME.casm, from
#                  corecaps/crush/NAME.py): with it, the set has the crush-hello capsule
#
# Capsules are isolated unless they say otherwise (see `capabilities` in exo_init/pid1/manifest.py): the
# ones below that touch the machine itself (modules, devices, the network, the bus daemon) declare
# `capabilities.host = true`, and say why.
#
# Capsule fields are the manifest's (see manifest.nix / exo_init/pid1/manifest.py); unset fields take
# the loader defaults.
let
  # Modules the supervisor loads early, in one `modprobe -a` run: the virtio devices a VM has
  # (the PCI transport, console for hvc0, network, disk, entropy), the root filesystem, and the
  # input-event and ACPI button drivers (power button).
  kernelModules = [
    "virtio_pci"
    "virtio_console"
    "virtio_net"
    "virtio_blk"
    "virtio_rng"
    "ext4"
    "evdev"
    "button"
  ];

  requiredPaths = [
    "python3"
    "modprobe"
    "shell"
    "exoInitLib"
    "dbusDaemon"
    "dbusConfig"
    "udhcpc"
  ];

  checkPaths =
    paths:
    let
      bad = builtins.filter (
        n: !(paths ? ${n}) || !(builtins.isString paths.${n}) || builtins.substring 0 1 paths.${n} != "/"
      ) requiredPaths;
    in
    if !(builtins.isAttrs paths) then
      throw "exosphere: capsules.nix: expected an attribute set of program paths"
    else if bad != [ ] then
      throw "exosphere: capsules.nix: paths.${builtins.head bad} must be an absolute path (a string); required: ${builtins.concatStringsSep ", " requiredPaths}"
    else
      paths;

  capsules =
    paths:
    base paths
    // (
      if paths ? crushPrograms then
        {
          # Stage 2 of the seeds: a Hello World CRUSH capsule, the first capsule exo_init starts (its
          # name sorts before every capsule that can start at once), printing on the console. No
          # grants: the program declares no capability. A oneshot: it prints and ends.
          crush-hello = {
            description = "Hello World, from a CRUSH program (compiled at image build)";
            runtime = "crush";
            crush = {
              program = "${paths.crushPrograms}/hello.casm";
              gas = 100000;
              arena = "1M";
            };
            type = "oneshot";
            console = true;
            restart.policy = "never";
          };
        }
      else
        { }
    );

  base = paths: {
    # Load kernel modules, once, before anything that needs the devices.
    # There is no udev: this oneshot loads the drivers of the devices present (coldplug from
    # sysfs modaliases: VirtualBox's AHCI, e1000, VMSVGA, ...) and the modules named here.
    kmod = {
      capabilities.host = true;
      description = "Load the drivers for the devices present and the modules the base system needs";
      type = "oneshot";
      argv = [
        paths.python3
        "-m"
        "exo_init.system.coldplug"
      ]
      ++ kernelModules;
      env = {
        PYTHONPATH = paths.exoInitLib;
        MODPROBE = paths.modprobe;
      };
      restart.policy = "never";
    };

    # The ACPI power button (QEMU system_powerdown, VirtualBox "ACPI Shutdown") -> poweroff.
    powerbutton = {
      capabilities.host = true;
      description = "Power off when the ACPI power button is pressed";
      argv = [
        paths.python3
        "-m"
        "exo_init.system.powerbutton"
      ];
      env.PYTHONPATH = paths.exoInitLib;
      requires = [ "kmod" ];
      # Ready once the button's event device is open: a press after "boot complete" is seen.
      readiness.kind = "notify";
      restart.policy = "on-failure";
    };

    # The D-Bus system bus. exo_init.system.sysbus makes /run/dbus and the machine id, then execs
    # dbus-daemon, which prints its address on fd 3 once it listens (readiness).
    dbus = {
      capabilities.host = true;
      description = "D-Bus system bus";
      argv = [
        paths.python3
        "-m"
        "exo_init.system.sysbus"
        paths.dbusDaemon
        "--config-file=${paths.dbusConfig}"
        "--nofork"
        "--nopidfile"
        "--print-address=3"
      ];
      env.PYTHONPATH = paths.exoInitLib;
      readiness = {
        kind = "fd";
        fd = 3;
      };
      restart.policy = "always";
    };

    # org.exosphere.Core1 on the system bus, forwarded to exo_init's private control socket
    # (exoctl uses it, falling back to the socket when it is not there). Exits when the bus goes
    # away; restarted once the bus is back.
    # Scoped: it sees the system bus, exo_init's control socket and the capsule logs (read-only),
    # and nothing else of the machine. It runs as root (without any Linux capability) because
    # exo_init allows the mutating calls it forwards only from uid 0; it checks each D-Bus caller
    # itself.
    dbus-bridge = {
      description = "org.exosphere.Core1 D-Bus API";
      user = "root";
      capabilities = {
        bus = true;
        control = true;
        logs = true; # FollowLogs tails the capsule log files
      };
      argv = [
        paths.python3
        "-m"
        "exo_init.system.dbus_bridge"
      ];
      env.PYTHONPATH = paths.exoInitLib;
      requires = [ "dbus" ];
      readiness.kind = "notify";
      restart = {
        policy = "always";
        limit_burst = 10;
      };
    };

    # lo and the first ethernet link: DHCP by default (udhcpc, as this capsule's child; pyroute2
    # applies the lease), and /etc/resolv.conf. For a static address set, in the capsule's env:
    #   EXO_NET_ADDRESS = "192.168.1.10/24"; EXO_NET_GATEWAY = "192.168.1.1";
    #   EXO_NET_DNS = "192.168.1.1 9.9.9.9"; (EXO_NET_SEARCH = "example.org";)
    # and EXO_NET_INTERFACE = "eth1" to pick the link. Its status text is the link's address.
    network = {
      capabilities.host = true;
      description = "Network: lo and the first ethernet link (DHCP or static)";
      argv = [
        paths.python3
        "-m"
        "exo_init.system.network"
        "--udhcpc"
        paths.udhcpc
      ];
      env.PYTHONPATH = paths.exoInitLib;
      after = [ "kmod" ];
      readiness = {
        kind = "notify";
        timeout = 60;
      };
      restart.policy = "always";
    };

    # The login shell on the system console: the CoreCaps shell (corecaps/sh.py), scoped. It is
    # the administrator's (uid 0, so exoctl may start, stop and power off through the control
    # socket) but holds no Linux capability and sees the machine only through its grants: the
    # system's programs, /etc and /var/log read-only, a private /tmp, its own processes.
    console = {
      description = "Exosphere shell (CoreCaps) on the console";
      argv = [
        paths.python3
        "-m"
        "corecaps.sh"
      ];
      env.PYTHONPATH = paths.exoInitLib;
      user = "root";
      capabilities = {
        control = true;
        filesystem = {
          "/etc" = "ro";
          "/var/log" = "ro";
        };
      };
      console = true;
      after = [ "kmod" ];
      restart.policy = "always";
      # A hangup is what ends a terminal session.
      stop.signal = "SIGHUP";
    };
  };
  # The Sentry agent (exo_init/system/sentry.py), not in the default set: render.nix adds it to the dev
  # image, exosphere.nix when services.exosphere.sentry.enable is set. `policy` is the sentry's
  # own configuration (see the module docstring): which action for which anomaly of which capsule.
  sentry = paths: policy: {
    # It watches every capsule's cgroup files and may roll back generations.
    capabilities.host = true;
    description = "Sentry: watches capsules (OOM, pids.max, throttling, pressure, crash loops) and acts";
    argv = [
      paths.python3
      "-m"
      "exo_init.system.sentry"
    ];
    env = {
      PYTHONPATH = paths.exoInitLib;
      EXO_SENTRY_POLICY = builtins.toJSON policy;
    };
    readiness.kind = "notify";
    restart = {
      policy = "always";
      limit_burst = 1000;
    };
  };
  # The display (exo_init/system/nexquelium, exo_init/system/dashboard), not in the default set: render.nix adds
  # it to the dev image, whose builder installs the pinned pywayland wheel the compositor's fixes
  # are written against (exo_init/system/nexquelium/wlfix.py). Both need pywayland and pycairo in
  # `paths.python3`. Both are scoped (their grants are below).
  display = paths: {
    nexquelium = {
      description = "Nexquelium: the Wayland compositor (pywayland), on /dev/fb0";
      argv = [
        paths.python3
        "-m"
        "exo_init.system.nexquelium"
        "--socket"
        "/run/exosphere/wayland/wayland-0"
      ];
      env.PYTHONPATH = paths.exoInitLib;
      # The framebuffer exists once kmod has loaded the DRM driver (coldplug).
      requires = [ "kmod" ];
      # Its world: the framebuffer, the VT it switches to graphics mode (root owns both device
      # nodes; KDSETMODE on a VT that is not its terminal needs CAP_SYS_TTY_CONFIG), the input
      # devices (the /dev/input directory, so devices plugged in later appear in it; no other
      # capsule gets them: keyboard and pointer reach clients only through the compositor), the
      # directory it puts the Wayland socket in and the one where exo_init says which capsule
      # each display client's uid is. Nothing else of the machine.
      user = "root";
      capabilities = {
        devices = [
          "/dev/fb0"
          "/dev/tty1"
          "/dev/input"
        ];
        filesystem = {
          "/run/exosphere/wayland" = "rw";
          # exo_init's {uid: capsule} of the display capsules: the names in the view bar
          "/run/exosphere/display" = "ro";
        };
        caps = [ "CAP_SYS_TTY_CONFIG" ];
      };
      # Ready once the socket listens and the first frame is on the output. (Its start-up, the
      # Python imports above all, took over 30 s under TCG on a loaded host: 90 s to get there.)
      readiness = {
        kind = "notify";
        timeout = 90;
      };
      restart.policy = "always";
      # A lower CPU weight than the default 100: at boot, the other capsules go first.
      quotas = {
        cpu_weight = 50;
        memory_max = "192M";
      };
    };
    dashboard = {
      description = "Sentry dashboard: capsules, CPU and memory, events (a Wayland client)";
      argv = [
        paths.python3
        "-m"
        "exo_init.system.dashboard"
      ];
      env.PYTHONPATH = paths.exoInitLib;
      requires = [ "nexquelium" ];
      # The Wayland socket (WAYLAND_DISPLAY is set by exo_init), exo_init's control socket (it
      # reads status, events and logs; of the mutating operations only the five it offers a
      # person, through `manage`: PID 1 records each call in the event log), the font
      # configuration, and the capsules' cgroup files read-only (it reads the CPU and memory
      # figures of the rows on screen itself: asked of PID 1 every second, they were most of PID
      # 1's work). An unprivileged dynamic uid, no network.
      capabilities = {
        display = true;
        control = true;
        manage = [
          "start"
          "stop"
          "restart"
          "freeze"
          "thaw"
        ];
        filesystem."/etc/fonts" = "ro";
        filesystem."/sys/fs/cgroup/capsules" = "ro";
      };
      readiness.kind = "notify"; # ready once its first frame is committed
      restart.policy = "always";
      quotas = {
        cpu_weight = 50;
        memory_max = "128M";
      };
    };
  };
in
{
  inherit kernelModules requiredPaths sentry display;
  __functor = _self: paths: capsules (checkPaths paths);
}
