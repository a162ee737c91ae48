# Render the capsule manifest for the Debian dev image (no nixpkgs, no network: builtins only).
#
#   nix-instantiate --eval --strict --json nixos-modules/render.nix > manifest.json
#   nix-instantiate --eval --strict --json nixos-modules/render.nix \
#       --arg extra '[ /abs/path/more-capsules.nix ]' --argstr hostname devbox
#
# prints the manifest JSON that exo_init reads from /etc/exosphere/manifest.json.
#
# The capsules are the default set (capsules.nix) with Debian program paths, merged with each file
# in `extra`. An extra file evaluates to a function `paths: { NAME = capsule; }` (or to a plain
# attribute set of capsules) and receives the same `paths` as the defaults:
#
#   paths: {
#     web = { argv = [ paths.python3 "-m" "http.server" "8080" ]; restart.policy = "always"; };
#     console = null;   # drop a default capsule
#   }
#
# An extra capsule with the name of a default one replaces it whole; setting it to null removes it.
# Two extra files declaring the same capsule is an error (which one should win is not obvious).
#
# Works with Nix 2.8 offline, and under --option restrict-eval true as long as this directory and
# the extra files are on the search path, e.g. `-I /path/to/repo -I /path/to/more-capsules.nix`
# (nothing here reads the environment, the clock, the network or <nixpkgs>).
#
# Why this file is an attribute set and not a plain function: `nix-instantiate --eval` calls the
# file's value with the --arg/--argstr arguments only when at least one is given; with none it
# prints the value as is, and a function cannot be printed. So the value is both:
#   * `__functor`: callable, so `--arg extra ...` (and `import ./render.nix { ... }`) render with
#     arguments, and
#   * `outPath`: the manifest with the default arguments, which is what `--json` and
#     `builtins.toJSON` print for an attribute set that has an outPath.
let
  render =
    {
      extra ? [ ],
      hostname ? "exosphere",
      sentry ? true, # include the Sentry agent capsule
      sentryPolicy ? { }, # its policy (exo_init/system/sentry.py)
      display ? true, # the Nexquelium compositor and the Sentry dashboard (capsules.nix `display`)
    }:
    let
      # Where things live on the Debian dev image.
      paths = {
        python3 = "/usr/bin/python3";
        modprobe = "/usr/sbin/modprobe";
        shell = "/bin/bash";
        exoInitLib = "/usr/lib/exosphere";
        dbusDaemon = "/usr/bin/dbus-daemon";
        dbusConfig = "/usr/share/dbus-1/system.conf";
        udhcpc = "/sbin/udhcpc";
        crushPrograms = "/usr/share/exosphere/crush"; # qemu/build.py compiles corecaps/crush/*.py there
      };

      capsulesNix = import ./capsules.nix;
      defaults =
        capsulesNix paths
        // (if sentry then { sentry = capsulesNix.sentry paths sentryPolicy; } else { })
        // (if display then capsulesNix.display paths else { });

      # One extra file -> its capsules, with a clear error if it is not the expected shape.
      load =
        file:
        let
          value = import file;
          capsules = if builtins.isFunction value || value ? __functor then value paths else value;
        in
        if builtins.isAttrs capsules && !(capsules ? outPath) then
          capsules
        else
          throw "exosphere: ${toString file}: must evaluate to `paths: { NAME = capsule; ... }` (or an attribute set of capsules)";

      files = if builtins.isList extra then extra else [ extra ];

      # Merge the extra files over the defaults, remembering which file declared what.
      merged = builtins.foldl' (
        acc: file:
        let
          capsules = load file;
          clash = builtins.filter (name: acc.from ? ${name}) (builtins.attrNames capsules);
          name = builtins.head clash;
        in
        if clash != [ ] then
          throw "exosphere: capsule \"${name}\" is declared by both ${acc.from.${name}} and ${toString file}"
        else
          {
            capsules = acc.capsules // capsules;
            from = acc.from // builtins.mapAttrs (_: _: toString file) capsules;
          }
      ) {
        capsules = defaults;
        from = { };
      } files;
    in
    import ./manifest.nix {
      inherit hostname;
      inherit (merged) capsules;
    };
in
{
  outPath = render { };
  __functor = _self: render;
}
