"""Intent handlers: one module per intent (or per family), registered with @handles.

A handler takes the Turn and returns replies, or None to decline so the router's next candidate is tried
(first match wins; out_of_scope is the explicit fallback). Every intent of DESIGN.md must have a handler:
`load_handlers()` refuses to start otherwise.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.nlu.types import INTENTS

if TYPE_CHECKING:
    from bot.channels.base import Reply
    from bot.conversation import Turn

Handler = Callable[["Turn"], "list[Reply] | None"]

HANDLERS: dict[str, Handler] = {}

# Pseudo-intents reachable only from menus, never predicted by the router.
MENU_ACTIONS = (
    "policy_menu", "policy_topic", "policy_entry", "policy_detail", "welcome", "event_signup", "event_cancel",
)


def handles(*names: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        for name in names:
            if name not in INTENTS and name not in MENU_ACTIONS:
                raise ValueError(f"{func.__qualname__}: unknown intent {name!r}")
            if name in HANDLERS and HANDLERS[name] is not func:
                raise ValueError(f"intent {name!r} has two handlers: {HANDLERS[name].__qualname__}, {func.__qualname__}")
            HANDLERS[name] = func
        return func

    return register


def load_handlers() -> dict[str, Handler]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    missing = [name for name in (*INTENTS, *MENU_ACTIONS) if name not in HANDLERS]
    if missing:
        raise RuntimeError(f"no intent handler for {missing}")
    return HANDLERS
