"""The dev image: a Debian-built Exosphere OS image (builder, QEMU command lines, runner)."""
