"""Multi-turn slot-filling dialogs. The pipeline only calls the functions re-exported here.

- `continue_dialog(turn)`: the user has a dialog in progress; return its replies, or None when the
  message is a digression the router should answer instead.
- `after_digression(turn, replies)`: the router's answer to a digression, its menus dropped when the
  dialog's question has one, then the question asked again.
- `resume_prompt(turn)`: after a digression was answered, the line that brings the user back.
- `receive_media(turn)`: a photo outside a dialog, which a just-finished dialog may still want.
- `start(turn, name)`: open a dialog (intent handlers call this).
- `reopen(turn, name, slots, step=…)`: change a registered record: the dialog with its answers, asking
  only the slot named; `slot_named(turn, name, text)` finds that slot in what the person said.
- `check(dialogs, texts)`: refuse dialog definitions whose texts the knowledge lacks.
- `facts_said(turn, name, text)`: the slots of dialog `name` a message states (who the person is aside).

The engine is `bot.dialogs.engine`; the dialogs themselves are declared in `bot.dialogs.definitions`
(its `DIALOGS`), and bot.app.compose hands them to the pipeline.
"""

from __future__ import annotations

from bot.dialogs.engine import (
    after_digression,
    check,
    continue_dialog,
    current_prompt,
    facts_said,
    receive_media,
    reopen,
    resume_prompt,
    slot_named,
    start,
)

__all__ = ["after_digression", "check", "continue_dialog", "current_prompt", "facts_said", "receive_media", "reopen", "resume_prompt",
           "slot_named", "start"]
