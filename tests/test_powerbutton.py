"""The power-button capsule's device discovery, on a sysfs tree made like the kernel's."""

from __future__ import annotations

from pathlib import Path

from exo_init.system.powerbutton import KEY_POWER, find_power_buttons, sends_key

# /sys/class/input/eventN/device/capabilities/key as the kernel prints it (64-bit words, most
# significant first): QEMU virt's gpio-keys sends only KEY_POWER (116: bit 52 of the second word).
GPIO_POWER = "10000000000000 0\n"


def make_event(sysfs: Path, event: str, name: str, keys: str) -> None:
    device = sysfs / event / "device"
    (device / "capabilities").mkdir(parents=True)
    (device / "name").write_text(name + "\n")
    (device / "capabilities" / "key").write_text(keys)


def test_sends_key_reads_the_bitmap_words_from_the_end() -> None:
    assert sends_key(GPIO_POWER, KEY_POWER)
    assert not sends_key(GPIO_POWER, KEY_POWER - 1) and not sends_key(GPIO_POWER, KEY_POWER + 64)
    assert sends_key("1", 0) and not sends_key("0", 0) and not sends_key("", KEY_POWER)


def test_acpi_button_and_gpio_power_key_are_found_other_devices_not(tmp_path: Path) -> None:
    make_event(tmp_path, "event0", "Power Button", "10000000000000 0\n")
    make_event(tmp_path, "event1", "gpio-keys", GPIO_POWER)
    make_event(tmp_path, "event2", "gpio-keys", "100\n")               # a GPIO key that is not power
    make_event(tmp_path, "event3", "AT Translated Set 2 keyboard", GPIO_POWER)  # a keyboard's power key
    (tmp_path / "event4").mkdir()                                      # vanished while listing
    assert find_power_buttons(tmp_path) == [Path("/dev/input/event0"), Path("/dev/input/event1")]
