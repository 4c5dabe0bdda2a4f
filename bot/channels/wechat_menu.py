"""The Official Account menu: read knowledge/wechat_menu.yaml, check WeChat's limits, create it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.knowledge import read_yaml
from bot.settings import Settings

MAX_BUTTONS, MAX_SUB_BUTTONS = 3, 5
MAX_NAME_BYTES, MAX_SUB_NAME_BYTES = 16, 60  # WeChat counts bytes: 4 / 8+ Chinese characters


def load_menu(path: Path) -> dict[str, Any]:
    menu = read_yaml(path) or {}
    buttons = menu.get("button") or []
    if not 1 <= len(buttons) <= MAX_BUTTONS:
        raise ValueError(f"{path}: 1 to {MAX_BUTTONS} top-level buttons")
    for button in buttons:
        _check(button, MAX_NAME_BYTES, path)
        subs = button.get("sub_button") or []
        if len(subs) > MAX_SUB_BUTTONS:
            raise ValueError(f"{path}: {button['name']} has more than {MAX_SUB_BUTTONS} sub-buttons")
        for sub in subs:
            _check(sub, MAX_SUB_NAME_BYTES, path)
            if "sub_button" in sub:
                raise ValueError(f"{path}: menus are two levels deep at most")
        if not subs and not (button.get("key") or button.get("url")):
            raise ValueError(f"{path}: {button['name']} needs a key, a url or sub-buttons")
    return {"button": buttons}


def _check(button: dict[str, Any], limit: int, path: Path) -> None:
    name = str(button.get("name", ""))
    if not name or len(name.encode("utf-8")) > limit:
        raise ValueError(f"{path}: button name {name!r} is empty or longer than {limit} bytes")


def create_menu(settings: Settings, path: Path | None = None) -> None:
    from bot.channels.wechat_api import WeChatApi
    from bot.db import make_engine, make_sessionmaker, migrate

    menu = load_menu(path or settings.knowledge_dir / "wechat_menu.yaml")
    if not (settings.wechat_appid and settings.wechat_secret):
        raise ValueError("set GONGYOU_WECHAT_APPID and GONGYOU_WECHAT_SECRET")
    engine = make_engine(settings.database_url)
    migrate(engine)  # the access token is shared through the database
    try:
        WeChatApi(settings, make_sessionmaker(engine)).create_menu(menu)
    finally:
        engine.dispose()
