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
#   python3     the Python interpreter capsules written in Python run with
#   modprobe    kmod's modprobe
#   shell       an interactive bash
#   exoInitLib  the directory holding the exo_init package (for PYTHONPATH, when a capsule needs it)
#
# Capsule fields are the manifest's (see manifest.nix / exo_init/manifest.py); unset fields take
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

  capsules = paths: {
    # Load kernel modules, once, before anything that needs the devices.
    kmod = {
      description = "Load the kernel modules the base system needs";
      type = "oneshot";
      argv = [
        paths.modprobe
        "-a"
      ]
      ++ kernelModules;
      restart.policy = "never";
    };

    # The ACPI power button (QEMU system_powerdown, VirtualBox "ACPI Shutdown") -> poweroff.
    powerbutton = {
      description = "Power off when the ACPI power button is pressed";
      argv = [
        paths.python3
        "-m"
        "exo_init.powerbutton"
      ];
      env.PYTHONPATH = paths.exoInitLib;
      requires = [ "kmod" ];
      restart.policy = "on-failure";
    };

    # A root login shell on the system console. (To be replaced by a CoreCap shell.)
    console = {
      description = "Root login shell on the console";
      argv = [
        paths.shell
        "-l"
      ];
      console = true;
      after = [ "kmod" ];
      restart.policy = "always";
    };
  };
in
{
  inherit kernelModules requiredPaths;
  __functor = _self: paths: capsules (checkPaths paths);
}
