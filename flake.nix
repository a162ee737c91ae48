# Exosphere OS as a NixOS flake: exo_init (a Python PID 1) supervising capsules under cgroup v2.
#
#   nix build .#iso          ISO image (BIOS + EFI, USB-bootable)      result/iso/*.iso
#   nix build .#ova          VirtualBox appliance (x86_64 only)        result/*.ova
#   nix run .#vm             QEMU VM on this terminal (serial console)
#   nix flake check          includes checks.<system>.boot (a NixOS VM test)
#   nix build .#packages.aarch64-linux.iso   the same for ARM64 (UEFI ISO; console on ttyAMA0)
#
# Systems: x86_64-linux and aarch64-linux (packages, apps, checks, devShells, formatter); the
# NixOS configurations are exosphere-{iso,ova,vm} (x86_64) and exosphere-{iso,vm}-aarch64.
#   nix develop              Python, pytest, ruff, mypy, QEMU, Nix
#
# The NixOS module is nixos-modules/exosphere.nix; the capsule manifest is rendered by the pure
# nixos-modules/manifest.nix, which the Debian dev image also uses (nixos-modules/render.nix).
#
# What was and was not verified (this flake was written on a machine with Nix 2.8, no network and
# no nixpkgs):
#   * Verified (tests/test_nix.py): every .nix file parses (nix-instantiate --parse); manifest.nix,
#     capsules.nix and render.nix evaluate (also in restricted mode; once by hand, also as a pure
#     flake output with `nix eval`), and the JSON they produce is accepted by
#     exo_init.pid1.manifest.parse_manifest, which agrees with manifest.nix on about 200 valid and
#     invalid capsules (both check by one table, exo_init/pid1/manifest_schema.json); invalid capsules
#     fail evaluation with a message naming the capsule and field; flake.lock carries the pin from
#     /work/shared/nixpkgs-pin.json (lock version 7); the outputs below have the expected names,
#     and nixos-modules/exosphere.nix and package.nix evaluate, both against a stub nixpkgs (a
#     stand-in lib/pkgs: capsule options mirror the manifest fields and loader defaults, the
#     rendered /etc/exosphere/manifest.json loads, PID 1 wiring, the backdoor and switch scripts
#     pass `bash -n`; every NixOS option the module sets is checked against the type nixpkgs
#     gives it, for either stage 1); every relative path literal exists.
#   * Booted on the Debian dev image (tests/vm/test_nixos_module.py): checks.boot's script
#     (nixos-modules/boot-test.py) against the manifest the module renders for its machine
#     (nixos-modules/boot-test.nix), store paths mapped onto Debian's programs, on a root made like
#     a fresh NixOS one, through the test driver's backdoor protocol.
#   * Checked by reading nixpkgs sources (nixos-25.11 era), not by evaluation: the option names
#     used (boot.systemdExecutable, boot.initrd.systemd.enable / services / storePaths, image.baseName,
#     isoImage.makeEfiBootable / makeUsbBootable, virtualbox.vmName / memorySize,
#     virtualisation.graphics / memorySize, testing.backdoor, system.build.isoImage /
#     virtualBoxOVA / vm), testers.runNixOSTest, buildPythonApplication's pyproject /
#     build-system / dependencies, lib.fileset.maybeMissing, the test driver's Machine API.
#   * Not verified: evaluating the NixOS configurations, building anything, running the VM test
#     under nixpkgs' driver, NixOS's own stage 1 and activation, nixos-rebuild, and the nixpkgs
#     narHash (it cannot be re-checked offline; `nix flake metadata` will).
#
# Flakes only see files tracked by git: `git add` new files before `nix build` / `nix flake check`.
{
  description = "Exosphere OS: a Python PID 1 (exo_init) that supervises capsules under cgroup v2";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      # builtins only (no lib.genAttrs): tests/test_nix.py evaluates the outputs against a stub nixpkgs.
      forAllSystems =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system;
          }) systems
        );
      # The serial console: the PC's 16550 or the ARM virt machine's PL011.
      serialConsole = system: if system == "aarch64-linux" then "ttyAMA0" else "ttyS0";
      # The configurations' names: exosphere-iso (x86_64), exosphere-iso-aarch64.
      suffix = system: if system == "x86_64-linux" then "" else "-aarch64";

      # Shared by every image.
      base =
        system:
        { lib, ... }:
        {
          imports = [ self.nixosModules.exosphere ];
          nixpkgs.hostPlatform = system;
          networking.hostName = "exosphere";
          services.exosphere.enable = true;
          system.stateVersion = "25.11";
          # No man/info pages: nothing in the image reads them.
          documentation.enable = lib.mkDefault false;
        };

      mkSystem = system: modules: lib.nixosSystem { modules = [ (base system) ] ++ modules; };

      isoFor =
        system:
        mkSystem system [
          (
            {
              config,
              lib,
              modulesPath,
              ...
            }:
            {
              imports = [ (modulesPath + "/installer/cd-dvd/iso-image.nix") ];
              # iso-image.nix sets image.baseName itself (at normal priority).
              image.baseName = lib.mkForce "exosphere-${config.system.nixos.label}-${system}";
              isoImage.makeEfiBootable = true;
              isoImage.makeUsbBootable = true;
              # Kernel messages on both; the last console= (the screen) is /dev/console.
              boot.kernelParams = [
                "console=${serialConsole system},115200"
                "console=tty0"
              ];
            }
          )
        ];

      vmFor =
        system:
        mkSystem system [
          (
            { modulesPath, ... }:
            {
              imports = [ (modulesPath + "/virtualisation/qemu-vm.nix") ];
              # Serial console on the terminal that runs the VM (qemu-vm.nix then makes the
              # platform's serial port, ttyS0 or ttyAMA0, the last console=, i.e. /dev/console).
              virtualisation.graphics = false;
              virtualisation.memorySize = 1024;
            }
          )
        ];
    in
    {
      nixosModules.exosphere = ./nixos-modules/exosphere.nix;
      nixosModules.default = self.nixosModules.exosphere;

      nixosConfigurations = {
        exosphere-iso = isoFor "x86_64-linux";
        exosphere-vm = vmFor "x86_64-linux";
        exosphere-iso-aarch64 = isoFor "aarch64-linux";
        exosphere-vm-aarch64 = vmFor "aarch64-linux";

        exosphere-ova = mkSystem "x86_64-linux" [
          (
            { config, modulesPath, ... }:
            {
              imports = [ (modulesPath + "/virtualisation/virtualbox-image.nix") ];
              image.baseName = "exosphere-${config.system.nixos.label}-x86_64-linux";
              # The configuration that is rebuilt and rolled back in place (README, "The Nix
              # flake"): installed on its disk with GRUB (virtualbox-image.nix), so
              # `nixos-rebuild boot` adds a boot entry it can really boot. It is run from the
              # unconfined root shell on tty2 (Alt+F2); the console shell is scoped.
              services.exosphere.rootShell.enable = true;
              virtualbox.vmName = "Exosphere OS";
              virtualbox.memorySize = 1024;
              boot.kernelParams = [
                "console=ttyS0,115200"
                "console=tty0"
              ];
            }
          )
        ];
      };

      packages = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          configs = self.nixosConfigurations;
        in
        {
          exo-init = pkgs.callPackage ./nixos-modules/package.nix { };
          iso = configs."exosphere-iso${suffix system}".config.system.build.isoImage;
          vm = configs."exosphere-vm${suffix system}".config.system.build.vm;
          default = self.packages.${system}.iso;
        }
        // (
          if system == "x86_64-linux" then
            { ova = configs.exosphere-ova.config.system.build.virtualBoxOVA; }
          else
            { }
        )
      );

      apps = forAllSystems (system: {
        vm = {
          type = "app";
          # qemu-vm.nix names the script run-${config.system.name}-vm; system.name is the host name.
          program = "${self.packages.${system}.vm}/bin/run-exosphere-vm";
          meta.description = "Boot Exosphere OS in QEMU on this terminal";
        };
        default = self.apps.${system}.vm;
      });

      checks = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        {
          exo-init = self.packages.${system}.exo-init;

          # Boot the module in a VM: exo_init is PID 1, the capsules come up, the driver's root
          # shell is unconfined, a quota is enforced by the kernel, and `exoctl poweroff` shuts the
          # machine down cleanly. tests/vm/test_nixos_module.py runs the same script and capsules
          # on the dev image (through a stand-in for the driver).
          boot = pkgs.testers.runNixOSTest {
            name = "exosphere-boot";
            globalTimeout = 900;
            nodes.machine = {
              imports = [
                self.nixosModules.exosphere
                ./nixos-modules/boot-test.nix
              ];
            };
            testScript = builtins.readFile ./nixos-modules/boot-test.py;
          };
        }
      );

      devShells = forAllSystems (
        system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
        in
        {
          default = pkgs.mkShell {
            packages = [
              (pkgs.python3.withPackages (
                ps: with ps; [
                  psutil
                  pytest
                  pexpect
                  mypy
                  types-psutil
                ]
              ))
              pkgs.ruff
              pkgs.nix
              pkgs.qemu
              pkgs.nixfmt
            ];
          };
        }
      );

      formatter = forAllSystems (system: nixpkgs.legacyPackages.${system}.nixfmt);
    };
}
