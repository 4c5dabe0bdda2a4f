"""Checks on text that every layer shares (HTTP fields, audience filters, imports)."""

from __future__ import annotations

import re

# Control characters other than tab and newlines: NUL cannot be stored in PostgreSQL text at all, and none
# of them belongs in a name, a title or an id.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_chars(value: str) -> bool:
    return _CONTROL.search(value) is not None


def mark_control_chars(value: str) -> str:
    """The text with each control character shown as "?" (for recording what a stranger typed)."""
    return _CONTROL.sub("?", value)
