"""Clients of the control API: the socket client, exoctl, the D-Bus interface."""
