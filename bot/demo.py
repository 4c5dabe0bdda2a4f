"""Demo data for the embedded default: loaded into an empty database when GONGYOU_DEMO_DATA is on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.conversation import Services


def load_demo_data(services: "Services") -> None:
    """Idempotent: does nothing when the registry already has people."""
