# exo_init and exoctl, packaged from this repository's pyproject.toml.
#
#   pkgs.callPackage ./package.nix { }
#
# The source is only what the Python build needs (lib.fileset), so editing the Nix files, tests or
# docs does not rebuild the package. In a flake, only files tracked by git are visible: new Python
# packages must be `git add`ed before `nix build`.
{
  lib,
  python3Packages,
}:
let
  root = ../.;
  pyproject = lib.importTOML ../pyproject.toml;
in
python3Packages.buildPythonApplication {
  pname = "exo-init";
  inherit (pyproject.project) version;
  pyproject = true;

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../exo_init
      # Listed in [tool.setuptools] packages; may not exist yet while it is being written.
      (lib.fileset.maybeMissing ../corecaps)
      # [project] readme.
      (lib.fileset.maybeMissing ../README.md)
    ];
  };

  build-system = [ python3Packages.setuptools ];

  dependencies = [ python3Packages.psutil ];

  pythonImportsCheck = [
    "exo_init"
    "exo_init.pid1.manifest"
  ];

  meta = {
    description = pyproject.project.description;
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "exoctl";
  };
}
