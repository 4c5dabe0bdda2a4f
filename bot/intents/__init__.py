"""Intent handlers: one module per intent (or per family), each declaring `HANDLERS` (intent name →
handler). bot.app.compose lists the modules; `merge_handlers` checks the result once at start-up.

A handler takes the Turn and returns replies, or None to decline so the router's next candidate is tried
(first match wins; out_of_scope is the explicit fallback). Every intent of DESIGN.md and every menu action
must have exactly one handler: start-up fails, naming what is missing, rather than a chat dropping it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from bot.nlu.types import INTENTS

if TYPE_CHECKING:
    from bot.channels.base import Reply
    from bot.conversation import Turn

Handler = Callable[["Turn"], "list[Reply] | None"]

# Pseudo-intents reachable only from menus, never predicted by the router.
MENU_ACTIONS = (
    "policy_menu", "policy_topic", "policy_entry", "policy_detail", "welcome", "event_signup", "event_cancel",
)


def merge_handlers(declared: Iterable[Mapping[str, Handler]]) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {}
    for table in declared:
        for name, func in table.items():
            if name not in INTENTS and name not in MENU_ACTIONS:
                raise ValueError(f"{func.__qualname__}: unknown intent {name!r}")
            if name in handlers and handlers[name] is not func:
                raise ValueError(f"intent {name!r} has two handlers: {handlers[name].__qualname__}, {func.__qualname__}")
            handlers[name] = func
    missing = [name for name in (*INTENTS, *MENU_ACTIONS) if name not in handlers]
    if missing:
        raise RuntimeError(f"no intent handler for {missing}: is an intent module missing from bot.app.compose?")
    return handlers
