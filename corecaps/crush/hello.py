# The first capsule exo_init starts (crush-hello, nixos-modules/capsules.nix): a CRUSH program in
# the Python subset, compiled to CASM when the image is built (qemu/build.py), run by the CRUSH VM
# (exo_init/runtimes/crush.py) on the console. It declares no capability: it can only print.
print("Hello, World! from a CRUSH capsule: Python source -> CAST -> CASM -> a gas-metered VM")
