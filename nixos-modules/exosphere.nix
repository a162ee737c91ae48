# NixOS module: Exosphere OS, with exo_init as PID 1 instead of systemd.
#
#   services.exosphere.enable = true;
#   services.exosphere.capsules.web = {
#     argv = [ "${pkgs.python3}/bin/python3" "-m" "http.server" "8080" ];
#     readiness = { kind = "tcp"; port = 8080; };
#     quotas = { memory_max = "128M"; cpu_max = "50%"; };
#   };
#
# How PID 1 is replaced: with the scripted stage 1 (boot.initrd.systemd.enable = false), stage 1
# execs the system's `init` (stage-2-init.sh), which mounts the early filesystems, runs the
# activation script (users, /etc, /run/current-system, ...) and finally execs
# `boot.systemdExecutable`. Pointing that option at exo_init makes exo_init PID 1; nothing of
# systemd runs (no udevd, journald, getty, networkd, timers, systemd.services). Whatever the system
# needs at run time is a capsule. With systemd in stage 1 the switch to stage 2 is done by systemd
# itself and that option is not used, hence the assertion below.
#
# The capsule options mirror the manifest fields one to one (same snake_case names; see
# manifest.nix and exo_init/manifest.py). The manifest is rendered by manifest.nix, which validates
# it again, so a bad value fails the build with a message naming the capsule and the field.
{
  config,
  lib,
  options,
  pkgs,
  modulesPath,
  ...
}:
let
  cfg = config.services.exosphere;
  inherit (lib)
    literalExpression
    mkDefault
    mkEnableOption
    mkIf
    mkOption
    types
    ;

  defaultCapsules = import ./capsules.nix;
  qemu-common = import (modulesPath + "/../lib/qemu-common.nix") { inherit lib pkgs; };

  python = cfg.package.pythonModule or pkgs.python3;

  # Program paths for capsules.nix, as Nix store paths.
  paths = {
    python3 = "${python.withPackages (ps: [ ps.psutil ])}/bin/python3";
    modprobe = "${pkgs.kmod}/bin/modprobe";
    shell = "${pkgs.bashInteractive}/bin/bash";
    exoInitLib = "${cfg.package}/${python.sitePackages}";
  };

  # mkDefault on every leaf (lists are leaves), so a configuration can change one field of a
  # default capsule (`capsules.console.restart.policy = "never"`) without restating the others.
  mkDefaultLeaves = v: if builtins.isAttrs v && v != { } then lib.mapAttrs (_: mkDefaultLeaves) v else mkDefault v;

  # --- option types ------------------------------------------------------------------------------

  nonNegative = types.numbers.nonnegative;
  size = types.either types.str types.ints.unsigned;

  readinessOptions = {
    kind = mkOption {
      type = types.enum [
        "started"
        "notify"
        "fd"
        "file"
        "tcp"
      ];
      default = "started";
      description = ''
        When the capsule counts as ready (dependents start only then):
        `started` once the program was executed; `notify` on `READY=1` sent to
        `$NOTIFY_SOCKET` (sd_notify); `fd` when a newline is written to file descriptor
        {option}`fd` (s6 style); `file` once {option}`path` exists; `tcp` once
        {option}`host`:{option}`port` accepts connections. A oneshot capsule is ready when it
        exits 0 and takes only `started`.
      '';
    };
    fd = mkOption {
      type = types.ints.between 3 1023;
      default = 3;
      description = "The notification file descriptor for `kind = \"fd\"`.";
    };
    path = mkOption {
      type = types.str;
      default = "";
      description = "The absolute path whose existence means ready, for `kind = \"file\"`.";
    };
    host = mkOption {
      type = types.str;
      default = "127.0.0.1";
      description = "The address to connect to, for `kind = \"tcp\"`.";
    };
    port = mkOption {
      type = types.port;
      default = 0;
      description = "The TCP port to connect to, for `kind = \"tcp\"` (required then).";
    };
    timeout = mkOption {
      type = nonNegative;
      default = 30.0;
      description = "Seconds to wait for readiness before the start counts as failed.";
    };
  };

  restartOptions = {
    policy = mkOption {
      type = types.enum [
        "always"
        "on-failure"
        "never"
      ];
      default = "on-failure";
      description = "When to restart the capsule after its main process exits.";
    };
    delay = mkOption {
      type = nonNegative;
      default = 0.5;
      description = "The first restart delay in seconds; it doubles on each consecutive failure.";
    };
    max_delay = mkOption {
      type = nonNegative;
      default = 30.0;
      description = "The cap on the restart delay, in seconds (at least {option}`delay`).";
    };
    reset_after = mkOption {
      type = nonNegative;
      default = 30.0;
      description = "A run at least this many seconds long resets the backoff.";
    };
    limit_burst = mkOption {
      type = types.ints.between 1 1000;
      default = 5;
      description = "This many failed runs within {option}`limit_interval` mark the capsule failed.";
    };
    limit_interval = mkOption {
      type = nonNegative;
      default = 60.0;
      description = "The window, in seconds, for {option}`limit_burst`.";
    };
  };

  stopOptions = {
    signal = mkOption {
      type = types.either types.str types.ints.positive;
      default = "SIGTERM";
      example = "SIGINT";
      description = "The signal that asks the capsule to stop: a name (`SIGTERM`, `TERM`) or a number.";
    };
    timeout = mkOption {
      type = nonNegative;
      default = 10.0;
      description = "Seconds between the stop signal and SIGKILL to the capsule's whole cgroup.";
    };
  };

  quotaOptions = {
    cpu_max = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "20%";
      description = ''
        CPU bandwidth limit (cgroup `cpu.max`): a percentage of one CPU (`"20%"`, `"150%"`),
        `"max"`, or `"QUOTA PERIOD"` in microseconds. `null`: no limit.
      '';
    };
    cpu_weight = mkOption {
      type = types.nullOr (types.ints.between 1 10000);
      default = null;
      description = "Relative CPU share (cgroup `cpu.weight`, 1-10000, kernel default 100).";
    };
    memory_max = mkOption {
      type = types.nullOr size;
      default = null;
      example = "64M";
      description = "Hard memory limit (cgroup `memory.max`): bytes, a size such as `\"64M\"`, or `\"max\"`.";
    };
    memory_high = mkOption {
      type = types.nullOr size;
      default = null;
      description = "Memory throttling threshold (cgroup `memory.high`), same units as {option}`memory_max`.";
    };
    memory_swap_max = mkOption {
      type = types.nullOr size;
      default = null;
      description = "Swap limit (cgroup `memory.swap.max`), same units as {option}`memory_max`.";
    };
    pids_max = mkOption {
      type = types.nullOr (types.either (types.enum [ "max" ]) (types.ints.between 1 4194304));
      default = null;
      description = "Maximum number of processes and threads (cgroup `pids.max`).";
    };
    io_weight = mkOption {
      type = types.nullOr (types.ints.between 1 10000);
      default = null;
      description = "Relative I/O share (cgroup `io.weight`, 1-10000).";
    };
    io_max = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "8:0 rbps=1048576 wiops=120" ];
      description = "I/O limits per device (cgroup `io.max` lines: `MAJ:MIN key=value ...`).";
    };
    memory_oom_group = mkOption {
      type = types.nullOr types.bool;
      default = null;
      description = "Whether the OOM killer kills the whole capsule at once (cgroup `memory.oom.group`).";
    };
  };

  capsuleModule =
    { name, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Whether this capsule is part of the manifest. (Not a manifest field: a disabled
            capsule is left out, e.g. to drop one of the default capsules.)
          '';
        };
        argv = mkOption {
          type = types.nonEmptyListOf types.str;
          example = literalExpression ''[ "''${pkgs.coreutils}/bin/sleep" "infinity" ]'';
          description = "The command to run, with arguments; the first element is an absolute path.";
        };
        env = mkOption {
          type = types.attrsOf types.str;
          default = { };
          description = "Extra environment variables (exo_init sets PATH, HOME, USER, LANG, TERM and EXO_CAPSULE).";
        };
        user = mkOption {
          type = types.nonEmptyStr;
          default = "root";
          description = "The user the capsule runs as.";
        };
        group = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "The group the capsule runs as; `null`: the user's primary group.";
        };
        workdir = mkOption {
          type = types.str;
          default = "/";
          description = "The absolute working directory.";
        };
        type = mkOption {
          type = types.enum [
            "simple"
            "oneshot"
          ];
          default = "simple";
          description = "`simple`: a long-running process. `oneshot`: runs to completion; ready once it exited 0.";
        };
        autostart = mkOption {
          type = types.bool;
          default = true;
          description = "Whether exo_init starts the capsule at boot (otherwise only on `exoctl start ${name}`).";
        };
        after = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "Capsules this one starts after (ordering only; a missing one is ignored).";
        };
        requires = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "Capsules this one needs: it starts after they are ready and fails if they fail.";
        };
        readiness = mkOption {
          type = types.submodule { options = readinessOptions; };
          default = { };
          description = "How exo_init decides the capsule is ready.";
        };
        restart = mkOption {
          type = types.submodule { options = restartOptions; };
          default = { };
          description = "Restart policy and backoff.";
        };
        stop = mkOption {
          type = types.submodule { options = stopOptions; };
          default = { };
          description = "How the capsule is stopped.";
        };
        quotas = mkOption {
          type = types.submodule { options = quotaOptions; };
          default = { };
          description = "cgroup v2 resource limits for the capsule's cgroup.";
        };
        capabilities = mkOption {
          type = types.attrsOf types.anything;
          default = { };
          description = "Reserved for capability grants; must be empty for now.";
        };
        watchdog_sec = mkOption {
          type = nonNegative;
          default = 0;
          description = "If > 0, the capsule must send `WATCHDOG=1` (sd_notify) at least this often or it is restarted.";
        };
        console = mkOption {
          type = types.bool;
          default = false;
          description = "Whether the capsule gets the system console as its controlling terminal (stdin/stdout/stderr).";
        };
        description = mkOption {
          type = types.str;
          default = "";
          description = "A one-line description shown by `exoctl status`.";
        };
      };
    };

  # A capsule option value -> the manifest fields (drops `enable` and the module system's own attrs).
  toManifest = c: {
    inherit (c)
      argv
      env
      user
      group
      workdir
      type
      autostart
      after
      requires
      capabilities
      watchdog_sec
      console
      description
      ;
    readiness = lib.getAttrs (builtins.attrNames readinessOptions) c.readiness;
    restart = lib.getAttrs (builtins.attrNames restartOptions) c.restart;
    stop = lib.getAttrs (builtins.attrNames stopOptions) c.stop;
    quotas = lib.getAttrs (builtins.attrNames quotaOptions) c.quotas;
  };

  manifest = import ./manifest.nix {
    inherit (cfg) hostname;
    capsules = lib.mapAttrs (_: toManifest) (lib.filterAttrs (_: c: c.enable) cfg.capsules);
  };

  # --- NixOS test driver backdoor ----------------------------------------------------------------

  # nixos/modules/testing/test-instrumentation.nix starts the driver's root shell as the systemd
  # unit backdoor.service, which never runs here; this is the same script as a capsule. The driver
  # (nixos/lib/test-driver) talks to the guest over the virtconsole /dev/hvc0 and waits for the
  # line "Spawning backdoor root shell..."; nothing may be written to hvc0 after it.
  backdoor = (options ? testing.backdoor) && config.testing.backdoor;
  serial = "/dev/${qemu-common.qemuSerialDevice}";
  backdoorScript = pkgs.writeShellScript "exosphere-backdoor" ''
    export USER=root
    export HOME=/root
    export DISPLAY=:0.0

    if [[ -e /etc/profile ]]; then
        # shellcheck disable=SC1091
        source /etc/profile
    fi

    # Don't use a pager when executing backdoor actions.
    export PAGER=

    cd /tmp
    # virtio_console may still be probing when this capsule starts.
    while [[ ! -e /dev/hvc0 ]]; do sleep 0.1; done
    exec < /dev/hvc0 > /dev/hvc0
    while ! exec 2> ${serial}; do sleep 0.1; done
    echo "connecting to host..." >&2
    stty -F /dev/hvc0 raw -echo # prevent nl -> cr/nl conversion
    # The test driver waits for exactly this line; nothing may follow it on hvc0.
    echo "Spawning backdoor root shell..."
    # A file argument makes bash non-interactive (no job control on a non-controlling tty).
    PS1="" exec ${pkgs.bash}/bin/bash --norc /dev/hvc0
  '';

  # --- live switch -------------------------------------------------------------------------------

  exosphereSwitch = pkgs.writeShellScriptBin "exosphere-switch" ''
    set -euo pipefail
    export PATH=${
      lib.makeBinPath [
        pkgs.coreutils
        config.nix.package
        cfg.package
      ]
    }:$PATH
    profile=/nix/var/nix/profiles/system

    usage() {
        cat <<'EOF'
    usage: exosphere-switch SYSTEM       switch to SYSTEM (a NixOS system closure, e.g. ./result)
           exosphere-switch --rollback   switch back to the previous system generation

    Makes SYSTEM the current generation of the system profile, installs its boot entry
    (switch-to-configuration boot), runs its activation script and asks exo_init to move
    to its capsule manifest (exoctl switch), which restarts only the capsules that changed.
    EOF
    }

    case "''${1:-}" in
        -h | --help)
            usage
            exit 0
            ;;
        "")
            usage >&2
            exit 2
            ;;
        --rollback)
            nix-env -p "$profile" --rollback
            new=$(readlink -f "$profile")
            ;;
        *)
            new=$(readlink -f "$1")
            if [[ ! -x $new/activate || ! -e $new/etc/exosphere/manifest.json ]]; then
                echo "exosphere-switch: $1 is not an Exosphere NixOS system (no activate or etc/exosphere/manifest.json)" >&2
                exit 1
            fi
            nix-env -p "$profile" --set "$new"
            ;;
    esac

    echo "exosphere-switch: switching to $new" >&2
    "$new/bin/switch-to-configuration" boot
    "$new/activate"
    exoctl switch "$new/etc/exosphere/manifest.json"
  '';
in
{
  options.services.exosphere = {
    enable = mkEnableOption "Exosphere OS: exo_init as PID 1, supervising capsules under cgroup v2";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./nixos-modules/package.nix { }";
      description = "The exo_init package (provides `exo_init` and `exoctl`).";
    };

    hostname = mkOption {
      type = types.str;
      default = if config.networking.hostName != "" then config.networking.hostName else "exosphere";
      defaultText = literalExpression ''if config.networking.hostName != "" then config.networking.hostName else "exosphere"'';
      description = "The host name exo_init sets (manifest `hostname`).";
    };

    capsules = mkOption {
      type = types.attrsOf (types.submodule capsuleModule);
      default = { };
      description = ''
        The capsules (services) exo_init supervises, by name (1-64 of `a-z 0-9 _ . -`).
        The defaults from capsules.nix (`kmod`, `console`) are included with default priority:
        change single fields, or set `enable = false` to drop one.
      '';
    };

    manifest = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      description = "The rendered manifest, as written to /etc/exosphere/manifest.json.";
    };

    sentry = {
      enable = mkEnableOption "the Sentry capsule (watches capsules and reports anomalies; not implemented yet)";
      dsnFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "A file holding the Sentry DSN (kept out of the Nix store).";
      };
    };

    dashboard = {
      enable = mkEnableOption "the web dashboard capsule (not implemented yet)";
      address = mkOption {
        type = types.str;
        default = "127.0.0.1";
        description = "The address the dashboard listens on.";
      };
      port = mkOption {
        type = types.port;
        default = 8080;
        description = "The TCP port the dashboard listens on.";
      };
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !config.boot.initrd.systemd.enable;
        message = ''
          services.exosphere needs the scripted stage 1 (boot.initrd.systemd.enable = false):
          it becomes PID 1 through boot.systemdExecutable, which only stage-2-init.sh execs.
        '';
      }
    ];

    # nixos-25.11 still defaults to the scripted stage 1; later releases switch to systemd in
    # stage 1 by default. Ask for the scripted one above default priority, below a plain
    # definition (which then trips the assertion above, with its explanation).
    boot.initrd.systemd.enable = lib.mkOverride 900 false;

    warnings =
      lib.optional cfg.sentry.enable "services.exosphere.sentry is not implemented yet; it has no effect."
      ++ lib.optional cfg.dashboard.enable "services.exosphere.dashboard is not implemented yet; it has no effect.";

    # PID 1.
    boot.systemdExecutable = "${cfg.package}/bin/exo_init";

    services.exosphere.capsules = lib.mkMerge [
      (lib.mapAttrs (_: mkDefaultLeaves) (defaultCapsules paths))
      (mkIf backdoor {
        backdoor = {
          description = "NixOS test driver root shell on /dev/hvc0";
          argv = [ "${backdoorScript}" ];
          env.PATH = "${
            lib.makeBinPath [
              pkgs.coreutils
              pkgs.bash
            ]
          }:/run/current-system/sw/bin";
          restart.policy = "on-failure";
          # What backdoor.service uses (KillSignal=SIGHUP): bash exits on hangup.
          stop.signal = "SIGHUP";
        };
      })
    ];

    services.exosphere.manifest = manifest;
    environment.etc."exosphere/manifest.json".text = builtins.toJSON manifest;

    environment.systemPackages = [
      cfg.package
      exosphereSwitch
    ];
  };
}
