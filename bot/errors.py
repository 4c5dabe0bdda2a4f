"""Errors business code raises; the HTTP layer (bot/api, bot/console) decides what each one answers."""

from __future__ import annotations


class NotFound(LookupError):
    """No such row — or one outside the caller's area, which must look exactly the same."""


class Forbidden(PermissionError):
    """The caller's role may not do this (a 403; existence of the row is already known to be in scope)."""


class Conflict(ValueError):
    """The request is well formed but clashes with what is stored (a taken username, a used key)."""


class Invalid(ValueError):
    """The request breaks a business rule the field types cannot express (a 422 with the reason)."""
