# The machine of the flake's checks.<system>.boot (a NixOS VM test, nixos-modules/boot-test.py):
# the Exosphere module plus a capsule that only sleeps, under limits the test reads back and trips.
#
# tests/vm/test_nixos_module.py evaluates this file too (with tests/nixos_stub.nix standing in for
# nixpkgs) and boots its capsules, with the module's, on the dev image: keep it to options the
# stand-in knows (services.exosphere.enable, .capsules, .rootShell; virtualisation.memorySize).
{ pkgs, ... }:
{
  services.exosphere.enable = true;
  # The unconfined root shell nixos-rebuild is run from (on tty2).
  services.exosphere.rootShell.enable = true;
  services.exosphere.capsules.quota-probe = {
    description = "Sleeps under quotas (boot test)";
    argv = [
      "${pkgs.coreutils}/bin/sleep"
      "infinity"
    ];
    after = [ "kmod" ];
    quotas = {
      cpu_max = "20%";
      memory_max = "64M";
      pids_max = 16;
    };
  };
  virtualisation.memorySize = 1024;
}
