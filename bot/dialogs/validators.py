"""Slot parsers: turn what a labourer typed into a value, or raise Invalid.

Every parser takes the answer text and the SlotContext and returns a JSON-serialisable value (the
dialog state is stored as JSON). Numbers, money, durations, trades and places come from
bot.nlu.entities; dates (下个月, 3月份, 农历正月之后) are read here. A parser never raises anything
but Invalid: the engine treats any other exception as a bug, logs it and re-asks.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from lunardate import LunarDate

from bot import pii
from bot.nlu.entities import (
    match_job_type,
    match_place,
    match_training_type,
    parse_count,
    parse_duration,
    parse_money,
    parse_number,
)


class Invalid(ValueError):
    """The answer does not fit the slot.

    `key` names a more specific re-ask text of the slot (e.g. "township_needed"); `counts` is False for
    answers that are not failures, such as a request to explain the options.
    """

    def __init__(self, key: str | None = None, *, counts: bool = True) -> None:
        super().__init__(key or "reask")
        self.key = key
        self.counts = counts


@dataclass(frozen=True)
class SlotContext:
    kb: Any  # KnowledgeBase (catalogues, regions)
    data_key: str  # GONGYOU_DATA_KEY: ID numbers and phones are protected even inside dialog state
    today: date  # in the service's time zone
    options: tuple[str, ...] = ()  # the slot's numbered options, when it has any


_PUNCT = re.compile(r"[\s,，.。!！?？、;；:：~～…\"“”'‘’()（）【】\[\]]+")
_HAN = re.compile(r"^[\u4e00-\u9fff·]+$")
QUESTION_MARKERS = ("?", "？", "吗", "啥", "什么", "咋", "怎么", "如何", "哪个", "哪些", "多少", "么子", "区别", "不懂", "解释")


def compact(text: str) -> str:
    return _PUNCT.sub("", text or "")


def looks_like_question(text: str) -> bool:
    return any(marker in text for marker in QUESTION_MARKERS)


# ---- identity -------------------------------------------------------------------------------

_NAME_PREFIXES = ("我的名字叫", "我的名字是", "名字叫", "名字是", "姓名是", "姓名", "名字", "我叫", "我是", "叫")
_NOT_NAMES = ("不知道", "不晓得", "没有", "莫得", "不告诉", "保密", "你好", "您好", "好的")


def parse_name(text: str, ctx: SlotContext) -> str:
    value = compact(text)
    for prefix in _NAME_PREFIXES:
        if value.startswith(prefix):
            value = value[len(prefix):]
            break
    value = value.removesuffix("哈").removesuffix("嘛").removesuffix("呢")
    if not _HAN.match(value) or not 2 <= len(value) <= 10 or any(w in value for w in _NOT_NAMES):
        raise Invalid()
    return value


def _protected(kind: str, value: str, ctx: SlotContext) -> dict[str, str]:
    if kind == "id":
        p = pii.protect_id_number(value, ctx.data_key)
    else:
        p = pii.protect_phone(value, ctx.data_key)
    return {"kind": kind, "enc": p.encrypted.decode("ascii"), "hash": p.lookup_hash, "masked": p.masked}


def reveal(value: dict[str, str], data_key: str) -> str:
    """The clear value of a protected slot, for the code that writes it to the registry."""
    return pii.decrypt(value["enc"].encode("ascii"), data_key)


_ID_RE = re.compile(r"\d{17}[\dXx]")
_PHONE_RE = re.compile(r"(?:\+?86|0086)?[\s-]?1[\d\s-]{10,13}")


def parse_id_number(text: str, ctx: SlotContext) -> dict[str, str]:
    value = pii.fold_full_width(text or "").replace(" ", "")
    match = _ID_RE.search(value)
    if not match:
        raise Invalid("id_length" if re.search(r"\d{10,}", value) else None)
    try:
        return _protected("id", match.group(0), ctx)
    except pii.InvalidPersonalData as exc:
        raise Invalid("id_checksum") from exc


def parse_phone(text: str, ctx: SlotContext) -> dict[str, str]:
    value = pii.fold_full_width(text or "")
    match = _PHONE_RE.search(value)
    if not match:
        raise Invalid()
    try:
        return _protected("phone", match.group(0), ctx)
    except pii.InvalidPersonalData as exc:
        raise Invalid("phone_invalid") from exc


def parse_id_or_phone(text: str, ctx: SlotContext) -> dict[str, str]:
    """An ID number, or a mobile number for those who do not have theirs at hand."""
    digits = re.sub(r"[^\dXx]", "", pii.fold_full_width(text or ""))
    if len(digits) >= 15 and not digits.startswith(("86", "0086")):
        return parse_id_number(text, ctx)
    return parse_phone(text, ctx)


def show_protected(value: dict[str, str]) -> str:
    return value["masked"]


# ---- catalogues and places --------------------------------------------------------------------


def parse_training_type(text: str, ctx: SlotContext) -> str:
    found = match_training_type(text, ctx.kb)
    if not found:
        raise Invalid()
    return found


def parse_job_type(text: str, ctx: SlotContext) -> str:
    found = match_job_type(text, ctx.kb)
    if not found:
        raise Invalid()
    return found


def parse_township(text: str, ctx: SlotContext) -> dict[str, str | None]:
    place = match_place(text, ctx.kb)
    if not place or not (place.get("township") or place.get("county")):
        raise Invalid()
    if not place.get("township"):
        raise Invalid("township_needed")
    return {"county": place["county"], "township": place["township"], "village": place.get("village")}


def show_township(value: dict[str, str | None]) -> str:
    return "".join(v for v in (value.get("county"), value.get("township"), value.get("village")) if v)


def _option(text: str, ctx: SlotContext) -> str | None:
    """The option named in the answer (the engine has already turned a digit into its label)."""
    value = compact(text)
    heads = {option.split("（")[0]: option for option in ctx.options}
    for head, option in heads.items():
        if value in (option, head):
            return head
    # longest first, so 不愿意 is not read as 愿意
    for head in sorted(heads, key=len, reverse=True):
        if len(head) >= 2 and head in value:
            return head
    return None


NO_PREFERENCE = ("都可以", "都行", "随便", "无所谓", "不挑", "都要得", "哪里都行", "不限", "没要求", "都得行")


def parse_format(text: str, ctx: SlotContext) -> str:
    """One of the five training formats, or 不限 (no preference)."""
    value = compact(text)
    if looks_like_question(text) and not _option(text, ctx):
        raise Invalid("explain", counts=False)
    if any(w in value for w in NO_PREFERENCE):
        return "不限"
    found = _option(text, ctx)
    if found:
        return found
    for item in getattr(ctx.kb, "formats", ()) or ():
        if item.name in value or any(alias in value for alias in item.aliases):
            return item.name
    aliases = {"农闲": "农闲班", "夜校": "农闲班", "流动": "流动班", "下乡": "流动班", "田间": "流动班", "小灶": "小灶班",
               "网络": "网络班", "网上": "网络班", "手机上": "网络班", "视频": "网络班", "补习": "补习班", "补课": "补习班"}
    for alias, name in aliases.items():
        if alias in value:
            return name
    raise Invalid()


_SCOPE_WORDS = (
    ("省外", ("省外", "外省", "沿海", "出省", "外地")),
    ("省内", ("省内", "四川", "成都", "省里")),
    ("市内", ("市内", "市里", "巴中", "城里")),
    ("县内", ("县内", "县里", "县城")),
    ("本地", ("本地", "附近", "家门口", "屋头", "本乡", "本镇", "就近", "离家近", "村里", "当地")),
)


def parse_place_wish(text: str, ctx: SlotContext) -> dict[str, str | None]:
    """Where they would work: a scope (本地/县内/市内/省内/省外/不限) and, when named, the place."""
    value = compact(text)
    place = match_place(text, ctx.kb) or {}
    named = place.get("destination") or place.get("province")
    if named:
        home = "四川" in (place.get("province") or "") or named == "成都"
        return {"scope": "省内" if home else "省外", "place": place.get("destination") or place.get("province")}
    if place.get("township"):
        return {"scope": "本地", "place": place["township"]}
    if place.get("county"):
        return {"scope": "县内", "place": place["county"]}
    for scope, words in _SCOPE_WORDS:
        if any(w in value for w in words):
            return {"scope": scope, "place": "成都" if "成都" in value else None}
    if any(w in value for w in NO_PREFERENCE):
        return {"scope": "不限", "place": None}
    found = _option(text, ctx)
    if found:
        return {"scope": found, "place": None}
    raise Invalid()


def show_place_wish(value: dict[str, str | None]) -> str:
    return f"{value['scope']}（{value['place']}）" if value.get("place") else str(value["scope"])


# ---- numbers ----------------------------------------------------------------------------------

_PER_MONTH = re.compile(r"(每个?月|一个?月|一月|月薪|每月|底薪|工资|以上|起步|左右|最少|最低|至少|要|得|有)")


def parse_monthly_pay(text: str, ctx: SlotContext) -> int:
    daily = "天" in (text or "")
    value = parse_money(text)
    if value is None:
        value = parse_money(_PER_MONTH.sub(" ", re.sub(r"[一每]天", " ", text or "")))
    if value is None:
        raise Invalid()
    if daily and value < 1000:  # a day rate: 200一天 ≈ 26 working days a month
        value *= 26
    if not 300 <= value <= 100_000:
        raise Invalid("out_of_range")
    return int(value)


def parse_amount(text: str, ctx: SlotContext) -> int:
    value = parse_money(text)
    if value is None:
        raise Invalid()
    if not 1 <= value <= 100_000_000:
        raise Invalid("out_of_range")
    return int(value)


def show_money(value: int) -> str:
    return f"{value}元"


_UNITS_CN = {"year": "年", "month": "个月", "week": "周", "day": "天", "hour": "小时", "minute": "分钟"}


def parse_period(text: str, ctx: SlotContext) -> dict[str, Any]:
    value = parse_duration(text)
    if value is None:
        number = parse_number(text)
        if number is None or not 0 < number <= 120:
            raise Invalid()
        value = {"value": int(number) if float(number).is_integer() else number, "unit": "month"}
    if value["value"] <= 0:
        raise Invalid()
    return value


def show_period(value: dict[str, Any]) -> str:
    return f"{value['value']}{_UNITS_CN.get(value['unit'], value['unit'])}"


_ONLY_ME = ("就我", "我一个", "只有我", "我自己", "我个人", "就一个", "自己一个")


def parse_workers(text: str, ctx: SlotContext) -> int:
    if any(w in compact(text) for w in _ONLY_ME):
        return 1
    value = parse_count(text)
    if value is None:
        raise Invalid()
    if not 1 <= value <= 100_000:
        raise Invalid("out_of_range")
    return int(value)


def show_workers(value: int) -> str:
    return f"{value}人"


# ---- yes / no, categories, free text ------------------------------------------------------------

_NO = ("不愿意", "不想", "不要", "不行", "不可以", "不得行", "不干", "不去", "不考虑", "不能", "算了吧", "莫得兴趣", "没兴趣", "否", "不")
_YES = ("愿意", "可以", "行", "要得", "好", "中", "想", "要", "能", "是", "对", "干", "考虑", "没问题", "ok", "OK", "嗯")


def parse_yes_no(text: str, ctx: SlotContext) -> bool:
    value = compact(text)
    found = _option(text, ctx)
    if found:
        value = found
    if not value:
        raise Invalid()
    if any(value.startswith(w) or w in value for w in _NO[:-1]) or value in ("不", "否", "no", "No", "NO"):
        return False
    if any(w in value for w in _YES) or any(w in value for w in NO_PREFERENCE):
        return True
    raise Invalid()


def show_yes_no(value: bool) -> str:
    return "愿意" if value else "不愿意"


_CATEGORY_WORDS = (
    ("工伤", ("工伤", "受伤", "摔", "砸", "伤了", "骨折", "断了", "残", "出事", "事故", "伤")),
    ("欠薪", ("欠薪", "欠", "工资", "工钱", "拖欠", "不给钱", "没发", "不发", "结账", "讨薪", "血汗钱", "不开钱")),
    ("未签合同", ("合同", "协议")),
    ("社保", ("社保", "保险", "养老", "医保")),
    ("中介收费", ("中介", "介绍费", "押金", "收费", "黑中介", "骗")),
    ("其他", ("其他", "其它", "别的")),
)


def parse_category(text: str, ctx: SlotContext) -> str:
    found = _option(text, ctx)
    if found:
        return found
    value = compact(text)
    for category, words in _CATEGORY_WORDS:
        if any(w in value for w in words):
            return category
    raise Invalid()


def parse_text(text: str, ctx: SlotContext) -> str:
    """A short free answer (employer, site, what happened): kept as written, bounded, with any ID number or
    phone in it masked (the dialog's state holds it until the row is written)."""
    value = " ".join((text or "").split())
    if len(compact(value)) < 2 or re.fullmatch(r"[\d\s]+", value):
        raise Invalid()
    return pii.redact(value)[:500]


_DONE = ("好了", "发完", "没有", "没得", "莫得", "没了", "完了", "就这些", "就这样", "跳过", "不发", "没照片", "结束", "可以了", "OK", "ok")


def parse_evidence_done(text: str, ctx: SlotContext) -> bool:
    """The evidence step ends with 好了/没有; the photos themselves arrive as image messages."""
    if any(w in compact(text) for w in _DONE):
        return True
    raise Invalid()


# ---- dates ------------------------------------------------------------------------------------

_NUM = r"[0-9零〇一二两三四五六七八九十]+"
_LUNAR_MONTHS = {"正": 1, "腊": 12, "冬": 11}
_SEASONS = {"春": (3, "春天"), "夏": (6, "夏天"), "秋": (9, "秋天"), "冬": (12, "冬天")}
_LUNAR_RE = re.compile(r"(农历|阴历)?(正|腊|冬|" + _NUM + r")月(?:初?(" + _NUM + r")[号日]?)?")
_NOW = ("随时", "马上", "现在", "立刻", "立即", "今天", "都可以", "都行", "啥时候都", "随便", "哪天都", "越快越好", "尽快")


def _int(token: str) -> int | None:
    number = parse_number(token)
    return int(number) if number is not None and float(number).is_integer() else None


def _next_month_start(today: date, months: int = 1) -> date:
    month = today.month - 1 + months
    return date(today.year + month // 12, month % 12 + 1, 1)


def _upcoming(today: date, month: int, day: int = 1, year: int | None = None) -> date | None:
    day = min(day, calendar.monthrange(year or today.year, month)[1])
    if year is not None:
        return date(year, month, day)
    candidate = date(today.year, month, day)
    if candidate < today and month != today.month:
        candidate = date(today.year + 1, month, min(day, calendar.monthrange(today.year + 1, month)[1]))
    return candidate


def _lunar(today: date, month: int, day: int = 1) -> date:
    """The next solar date of lunar month/day (农历正月 → the coming Spring Festival)."""
    this_year = LunarDate.from_solar_date(today.year, today.month, today.day).year
    for year in (this_year, this_year + 1):
        solar = LunarDate(year, month, day).to_solar_date()
        if solar >= today:
            return solar
    return LunarDate(this_year + 1, month, day).to_solar_date()


def parse_when(text: str, ctx: SlotContext) -> dict[str, Any]:
    """When they are free / can start: {"text": as said, "date": ISO date or None (e.g. 农闲时)}."""
    value = compact(text)
    today = ctx.today
    said = value[:32]
    if not value:
        raise Invalid()
    year = today.year + 1 if "明年" in value else (today.year if "今年" in value else None)
    if m := _LUNAR_RE.search(value):
        lunar_calendar, month_token, day_token = m.groups()
        month = _LUNAR_MONTHS.get(month_token) or _int(month_token)
        day = _int(day_token) if day_token else 1
        if (lunar_calendar or month_token in _LUNAR_MONTHS) and month and 1 <= month <= 12 and day and 1 <= day <= 30:
            return {"text": said, "date": _lunar(today, month, day).isoformat()}
    if any(w in value for w in ("过完年", "过了年", "年后", "春节后", "过年后", "开年", "春节过后", "过年以后")):
        return {"text": said, "date": _lunar(today, 1, 8).isoformat()}
    if m := re.search(r"(" + _NUM + r")月(?:份)?(?:(" + _NUM + r")[号日])?", value):
        month, day = _int(m.group(1)), (_int(m.group(2)) if m.group(2) else 1)
        if month and 1 <= month <= 12 and day and 1 <= day <= 31:
            found = _upcoming(today, month, day, year)
            if found:
                return {"text": said, "date": found.isoformat()}
    if m := re.search(r"(" + _NUM + r"|半)(个)?(天|周|星期|礼拜|月)(以?后|之后|过后|后)", value):
        span = parse_duration(m.group(0)) or {"value": _int(m.group(1)) or 0, "unit": "day"}
        days = {"day": 1, "week": 7, "month": 30, "year": 365, "hour": 0, "minute": 0}[span["unit"]] * span["value"]
        return {"text": said, "date": (today + timedelta(days=int(days))).isoformat()}
    if m := re.search(r"(" + _NUM + r")[号日]", value):
        day = _int(m.group(1))
        if day and 1 <= day <= 31:
            month_start = today.replace(day=1) if day >= today.day else _next_month_start(today)
            day = min(day, calendar.monthrange(month_start.year, month_start.month)[1])
            return {"text": said, "date": month_start.replace(day=day).isoformat()}
    relative = (
        ("明天", today + timedelta(days=1)),
        ("后天", today + timedelta(days=2)),
        ("下下个月", _next_month_start(today, 2)),
        ("下个月", _next_month_start(today)),
        ("下月", _next_month_start(today)),
        ("下周", today + timedelta(days=7 - today.weekday())),
        ("下个星期", today + timedelta(days=7 - today.weekday())),
        ("下个礼拜", today + timedelta(days=7 - today.weekday())),
        ("月底", _next_month_start(today) - timedelta(days=1)),
        ("年底", date(today.year, 12, 1)),
        ("这几天", today),
        ("这周", today),
    )
    for word, when in relative:
        if word in value:
            return {"text": said, "date": when.isoformat()}
    if any(w in value for w in _NOW):
        return {"text": said, "date": today.isoformat()}
    if any(w in value for w in ("秋收", "收了谷子", "收完谷子", "打完谷子")):
        return {"text": said, "date": _upcoming(today, 10).isoformat()}
    for key, (month, _name) in _SEASONS.items():
        if key + "天" in value or key + "季" in value:
            return {"text": said, "date": _upcoming(today, month, 1, year).isoformat()}
    if any(w in value for w in ("农闲", "不忙", "闲的时候", "空闲", "有空", "闲下来")):
        return {"text": said, "date": None}
    raise Invalid()


def show_when(value: dict[str, Any]) -> str:
    if not value.get("date"):
        return value["text"]
    when = date.fromisoformat(value["date"])
    return f"{value['text']}（{when.year}年{when.month}月{when.day}日起）"
