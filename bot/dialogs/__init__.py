"""Multi-turn slot-filling dialogs. The engine (issue 3) plugs in here; the pipeline only calls these three.

- `continue_dialog(turn)`: the user has a dialog in progress; return its replies, or None when the
  message is a digression the router should answer instead.
- `resume_prompt(turn)`: after a digression was answered, the line that brings the user back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.channels.base import Reply
    from bot.conversation import Turn


def continue_dialog(turn: "Turn") -> "list[Reply] | None":
    return None


def resume_prompt(turn: "Turn") -> "Reply | None":
    return None
