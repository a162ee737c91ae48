"""Fixes for pywayland's server side, driving libwayland-server through pywayland's cffi `ffi`/`lib`.

pywayland is pinned to PYWAYLAND_VERSION (qemu/build.py `PYWAYLAND` and qemu/setup-host install
exactly that wheel). The image builder downloads it with pip (`--no-deps --only-binary=:all:`, the
manylinux wheel for CPython 3.11, which vendors libwayland-client/-server and libffi), caches it
under ~/.cache/exosphere/ and copies it into the image's /usr/lib/python3/dist-packages. The NixOS
module does not get the display capsules (nixos-modules/capsules.nix exports them as `display`,
added by render.nix only): nixpkgs' pywayland is another version.

Its client side works; its server side does not, as shipped, in 0.4.18 and 0.4.19:

1. `Resource.__init__` passes NULL as the `implementation` of `wl_resource_set_dispatcher`, and
   libwayland hands `implementation` (not `data`) to the dispatcher: every request fails with
   "from_handle() on NULL pointer". -> `adopt()` re-installs the dispatcher with the handle.
2. Request arguments are decoded with the client-side logic: a `new_id` is turned into a client
   proxy ("Cannot find display") and an `object` is looked up among client proxies. -> `decode()`
   gives a new_id as its integer id and an object as the live server `Resource`.
3. An array argument of an event cannot even be built (`ffi.new("void []")`: "array item of
   unknown size"), and were it allocated it would never be stored in the `wl_argument`, so
   libwayland would marshal a NULL array (xdg_toplevel.configure's `states`). -> `post_event()`.
4. Nothing keeps a `Resource` alive while its C object exists, and nothing clears `_ptr` when
   libwayland destroys it (a client disconnect): a collected handle or a dangling pointer later.
   -> `adopt()` keeps each adopted resource in `LIVE` until libwayland's destroy callback.
5. `EventLoop` has no `get_fd()` and the bindings lack `wl_event_loop_get_fd`, so the loop cannot
   be polled from another event loop (only `wl_display_run()`, which never returns).
   -> `event_loop_fd()` calls it in the very libwayland-server pywayland loaded, via ctypes.

Each fix is tested in tests/test_nexquelium.py by a test that fails without it; the tests show
each upstream bug as shipped and the fix working (fix 1: the same resource without and with
`adopt()`).
"""
from __future__ import annotations

import ctypes
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pywayland
from pywayland import ffi as _ffi
from pywayland import lib
from pywayland.protocol_core import ArgumentType, Message, Resource
from pywayland.server.eventloop import EventLoop

PYWAYLAND_VERSION = "0.4.19"
LIBWAYLAND_SERVER = "libwayland-server.so.0"  # its soname (a pywayland without the wheel's vendored copy links it)

R = TypeVar("R", bound=Resource[Any])
ffi: Any = _ffi  # (the stubs lack callback, memmove, ...)

# Fix 4: every adopted resource, by the address of its wl_resource, until libwayland destroys it.
LIVE: dict[int, Resource[Any]] = {}
# Called with the resource after its destructor ran (the compositor forgets surfaces there).
on_destroyed: list[Callable[[Resource[Any]], None]] = []


def address(ptr: Any) -> int:
    return int(ffi.cast("uintptr_t", ptr))


def decode(message: Message, args: Any) -> list[Any]:
    """Fix 2: a request's `union wl_argument[]` -> Python values, server-side.

    Upstream `Message.c_to_arguments` builds client proxies for new_id arguments (and fails with
    "Cannot find display" in a compositor) and looks objects up in the proxy registry. Here a
    new_id is the integer id the handler passes to `create()`, and an object is the adopted
    `Resource` (None for a null object)."""
    out: list[Any] = []
    for i, argument in enumerate(message.arguments):
        arg = args[i]
        kind = argument.argument_type
        if kind == ArgumentType.Int:
            out.append(arg.i)
        elif kind == ArgumentType.Uint:
            out.append(arg.u)
        elif kind == ArgumentType.NewId:
            out.append(arg.n)
        elif kind == ArgumentType.Fixed:
            out.append(lib.wl_fixed_to_double(arg.f))
        elif kind == ArgumentType.FileDescriptor:
            out.append(arg.h)
        elif kind == ArgumentType.String:
            out.append(None if arg.s == ffi.NULL else ffi.string(arg.s).decode())
        elif kind == ArgumentType.Object:
            out.append(None if arg.o == ffi.NULL else LIVE.get(address(arg.o)))
        else:  # ArgumentType.Array
            out.append(b"" if arg.a == ffi.NULL else ffi.buffer(arg.a.data, arg.a.size)[:])
    return out


def _dispatch(implementation: Any, target: Any, opcode: int, message: Any, args: Any) -> int:
    try:
        resource = ffi.from_handle(implementation)
        func = resource.dispatcher[opcode]
        if func is not None:
            func(resource, *decode(resource.dispatcher.messages[opcode], args))
    except Exception:
        traceback.print_exc(file=sys.stderr)
    return 0


def _destroyed(res_ptr: Any) -> None:
    resource = LIVE.pop(address(res_ptr), None)
    if resource is None:
        return
    try:
        destructor: Any = getattr(resource.dispatcher, "destructor", None)
        if destructor is not None:
            destructor(resource)
        for callback in on_destroyed:
            callback(resource)
    except Exception:
        traceback.print_exc(file=sys.stderr)
    finally:
        resource._ptr = None  # the C object is gone: pywayland's ensure_valid now refuses calls


_DISPATCH = ffi.callback("wl_dispatcher_func_t", _dispatch)
_DESTROY = ffi.callback("wl_resource_destroy_func_t", _destroyed)


def adopt(resource: R) -> R:
    """Fixes 1 and 4: route requests to `resource` (the handle as `implementation`, which is what
    libwayland passes to the dispatcher; upstream passes NULL) and keep it alive in `LIVE` until
    libwayland destroys the C object (a destroy request or the client's disconnect)."""
    ptr = resource._ptr
    if ptr is None:
        raise ValueError("resource has no C object")
    lib.wl_resource_set_dispatcher(ptr, _DISPATCH, resource._handle, resource._handle, _DESTROY)
    LIVE[address(ptr)] = resource
    return resource


def create(resource_class: type[R], client: Any, version: int, new_id: int) -> R:
    """A server resource for a request's new_id (`client` is the wl_client pointer)."""
    return adopt(resource_class(client, version, new_id))


def client_of(resource: Resource[Any]) -> Any:
    if resource._ptr is None:
        raise ValueError("resource destroyed")
    return lib.wl_resource_get_client(resource._ptr)


def post_event(resource: Resource[Any], opcode: int, *args: Any) -> None:
    """Fix 3: post an event, with array arguments (bytes) that reach libwayland.

    Upstream `Message.arguments_to_c` fails on an array (`ffi.new("void []")`: "array item of
    unknown size") and, were it to allocate one, never stores it in the argument (`.a` stays
    NULL): xdg_toplevel.configure's `states` cannot be sent. The `union wl_argument[]` is built
    here, with every string and array kept alive for the call. (Server events with a new_id, such
    as wl_data_device.data_offer, are not supported.)"""
    if resource._ptr is None:
        return  # destroyed (the client went away)
    message = resource.interface.events[opcode]
    if len(args) != len(message.arguments):
        raise TypeError(f"{message.name}: {len(message.arguments)} arguments expected, got {len(args)}")
    argv = ffi.new("union wl_argument []", max(1, len(args)))
    keep: list[Any] = []
    for i, (argument, value) in enumerate(zip(message.arguments, args, strict=True)):
        kind = argument.argument_type
        if kind == ArgumentType.Int:
            argv[i].i = value
        elif kind == ArgumentType.Uint:
            argv[i].u = value
        elif kind == ArgumentType.Fixed:
            argv[i].f = lib.wl_fixed_from_double(float(value))
        elif kind == ArgumentType.FileDescriptor:
            argv[i].h = value
        elif kind == ArgumentType.String:
            text = ffi.new("char[]", value.encode()) if value is not None else ffi.NULL
            keep.append(text)
            argv[i].s = text
        elif kind == ArgumentType.Object:
            argv[i].o = ffi.cast("struct wl_object *", value._ptr) if value is not None else ffi.NULL
        elif kind == ArgumentType.Array:
            data = bytes(value)
            array = ffi.new("struct wl_array *")
            buf = ffi.new("char[]", max(1, len(data)))
            ffi.memmove(buf, data, len(data))
            array.size = array.alloc = len(data)
            array.data = buf
            keep += [array, buf]
            argv[i].a = array
        else:
            raise TypeError(f"{message.name}: events with a new_id are not supported")
    lib.wl_resource_post_event_array(resource._ptr, opcode, argv)
    del keep


def destroy(resource: Resource[Any]) -> None:
    """Destroy a resource from the server side (wl_callback after done, a destroy request)."""
    if resource._ptr is not None:
        lib.wl_resource_destroy(resource._ptr)


def _libwayland_server() -> ctypes.CDLL:
    """The libwayland-server pywayland's extension is linked to: the wheel's vendored copy
    (pywayland.libs/), else the system's by its soname, as the extension names it (the arm64 image's
    pywayland, built by qemu/cross.py, links Debian's; that image has no ld.so.cache for
    find_library to read)."""
    vendored = sorted((Path(pywayland.__file__).resolve().parent.parent / "pywayland.libs")
                      .glob("libwayland-server*.so*"))
    return ctypes.CDLL(str(vendored[0]) if vendored else LIBWAYLAND_SERVER)


def event_loop_fd(loop: EventLoop) -> int:
    """Fix 5: the epoll fd of a wl_event_loop (`wl_event_loop_get_fd`, missing from the bindings),
    to poll it in our own selectors loop and then `dispatch(0)`."""
    if loop._ptr is None:
        raise ValueError("event loop destroyed")
    get_fd = _libwayland_server().wl_event_loop_get_fd
    get_fd.argtypes = [ctypes.c_void_p]
    get_fd.restype = ctypes.c_int
    fd = int(get_fd(address(loop._ptr)))
    if fd < 0:
        raise OSError("wl_event_loop_get_fd failed")
    return fd
