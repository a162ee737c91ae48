"""Nexquelium: a small Wayland compositor written with pywayland (no wlroots).

wl_compositor, wl_shm (in Python: the pool fd is mmapped here), xdg_wm_base toplevels, wl_output
and wl_seat; frames go to /dev/fb0 or, offscreen, to PNG files. `wlfix` carries the fixes the
pinned pywayland (PYWAYLAND_VERSION) needs for its server side to work at all.
"""
