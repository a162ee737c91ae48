"""The control API's one error: a name (`NoSuchCapsule`, `AccessDenied`, `BadRequest`, ...) and a
message. PID 1 raises it in the server and the generation switcher and sends both parts in the
reply (`{"ok": false, "error": NAME, "message": ...}`); the clients raise it again from that reply,
and exoctl maps the name to its exit code."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
