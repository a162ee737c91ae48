"""Shared by every layer; imports nothing else from exo_init."""
