"""Slot extractors: find a slot's value anywhere in a message, whatever question it answered.

A parser (bot.dialogs.validators) reads the answer to the question asked, and may be generous ("要" to
"愿意吗？" is yes). An extractor runs over every message of a dialog, the opening included, for every
slot, so it must be strict: it returns a value only when the message unmistakably states one (money is
read as pay only with a money shape, a place as a work place only when it is not the person's hometown).
It returns `Found(value, spans)`: the value and the parts of the text that said it, so the engine can tell
a message that is only this fact ("欠了我三千五") from a free-text answer that merely mentions it.

Dialogs declare which extractor each slot uses (bot.dialogs.definitions); the engine knows none of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.dialogs import validators as v
from bot.nlu.entities import extract_entities, match_place, match_training_type, pinyin_key


@dataclass(frozen=True)
class Found:
    value: Any
    spans: tuple[str, ...] = ()


Extractor = Callable[[str, v.SlotContext], "Found | None"]

CORRECTION = v.CORRECTION
without_negated = v.without_negated
without_past = v.without_past
after_correction = v.after_correction
hometown_removed = v.hometown_removed


def _entities(text: str, ctx: v.SlotContext, kind: str) -> list[Any]:
    return [e for e in extract_entities(text, ctx.kb) if e.type == kind]


# ---- catalogues ------------------------------------------------------------------------------------


def training_type(text: str, ctx: v.SlotContext) -> Found | None:
    found = match_training_type(without_past(text), ctx.kb)
    return Found(found) if found else None


# Words for working at all, which the catalogue's homophone matching may take for a trade (打工 ≈ 大工).
_WORKING = ("打工", "务工", "上班", "做工", "干活", "工作", "找工", "活路")


def job_type(text: str, ctx: v.SlotContext) -> Found | None:
    for entity in _entities(without_negated(without_past(text)), ctx, "job_type"):
        if entity.text not in _WORKING:
            return Found(entity.value, (entity.text,))
    return None


# 在佛山的家具厂上班: a factory of a kind the catalogue lacks, said as where one works
_AT_A_FACTORY = re.compile(r"(?:在|进)[\u4e00-\u9fff]{0,10}?([\u4e00-\u9fff]{1,4}厂)(?:里|头|上)?(?:上班|打工|做事|干活|做工)")


def job_now(text: str, ctx: v.SlotContext) -> Found | None:
    """The work someone does now: a trade named, or factory work (在义乌的袜子厂上班)."""
    found = job_type(text, ctx)
    if found is not None:
        return found
    for m in _AT_A_FACTORY.finditer(without_negated(text or "")):
        try:
            return Found(v.parse_job_type(m.group(1), ctx), (m.group(0),))
        except v.Invalid:
            continue
    return None


def training_format(text: str, ctx: v.SlotContext) -> Found | None:
    """A format named, not in the words that named the trade (学做短视频 is the trade, not the 网络班) nor in
    those that said when one is free (冬天农闲的时候有空 is a time, not the 农闲班)."""
    said = without_negated(text)
    for entity in _entities(said, ctx, "training_type"):
        said = said.replace(entity.text, " ")
    found_when = when(said, ctx)
    if found_when is not None:
        said = said.replace(found_when.spans[0], " ")
    found = v.format_named(said, ctx)
    return Found(found) if found else None


# 老板拖工资, 压我们工钱, 扣了我的钱: pay held back, said with the pay itself
_PAY_HELD = re.compile(r"(拖|压|扣|欠|克扣|少给)(了|着)?(我|我们|他|他们)?的?(工资|工钱|钱)")


def pay_held(text: str) -> bool:
    return bool(_PAY_HELD.search(v.compact(text or "")))


def category(text: str, ctx: v.SlotContext) -> Found | None:
    """The problem, only when a grievance is said (欠, 没给, 受伤, 合同 …): 工资五千往上 is a wish, not 欠薪."""
    words = v.compact(text)
    if _PAY_HELD.search(words):
        try:
            return Found(v.parse_category(words, ctx))
        except v.Invalid:
            return Found("欠薪")
    for neutral in v.NEUTRAL_CATEGORY_WORDS:
        words = words.replace(neutral, " ")
    try:
        v.parse_category(words, v.SlotContext(ctx.kb, ctx.data_key, ctx.today))
        return Found(v.parse_category(text, ctx))
    except v.Invalid:
        return None


# ---- places ----------------------------------------------------------------------------------------

def township(text: str, ctx: v.SlotContext) -> Found | None:
    """Where a training should be: a township named anywhere (the person's own counts) — in its own characters,
    or by sound only when said with 镇/乡 (增口镇): 没得身份证 sounds like 得胜 but names no place."""
    said = without_negated(text)
    place = match_place(said, ctx.kb, by_sound=False) or {}
    if not place.get("township"):
        place = v.township_by_sound(said, ctx.kb) or {}
    if place.get("township"):
        return Found({"county": place["county"], "township": place["township"], "village": place.get("village")})
    return None


# 我屋头老汉, 屋头有事: the household, not a wish to work at home
_HOUSEHOLD = re.compile(r"屋头(?=老汉|老人|的|人|娃|老婆|媳妇|男人|婆娘|有事|忙|走不开)")


def place_wish(text: str, ctx: v.SlotContext) -> Found | None:
    """Where they want to work, only when said as such (a city, a scope word), never the hometown."""
    rest = _HOUSEHOLD.sub(" ", hometown_removed(without_negated(without_past(text))))
    try:
        value = v.parse_place_wish(rest, ctx, strict=True)
    except v.Invalid:
        return None
    return Found(value)


def work_place(text: str, ctx: v.SlotContext) -> Found | None:
    """Where someone works away: a named city or province."""
    named = v.destination(without_negated(text), ctx.kb)
    return Found(named) if named else None


# 在重庆工地上干活, 活是在成都干的, 在广东惠州电子厂干了半年: where the work was, said with the work
_WORKED_AT = re.compile(r"在([\u4e00-\u9fff]{2,16}?)的?(工地|工厂|厂|项目|小区|矿)?[上里头]?(?:干活|干|做活|做事|做工|打工|上班|务工)")


def site(text: str, ctx: v.SlotContext) -> Found | None:
    """Where the work was done, only when said as the place of the work and a known place (在厂里干活 is not)."""
    for m in _WORKED_AT.finditer(without_negated(text or "")):
        if match_place(m.group(1), ctx.kb):
            return Found(m.group(1) + (m.group(2) or ""), (m.group(0),))
    return None


# ---- numbers ---------------------------------------------------------------------------------------


def pay(text: str, ctx: v.SlotContext) -> Found | None:
    for entity in _entities(text, ctx, "money"):
        if 300 <= entity.value <= 100_000:
            try:
                return Found(v.parse_monthly_pay(text, ctx), (entity.text,))
            except v.Invalid:
                return None
    return None


def amount(text: str, ctx: v.SlotContext) -> Found | None:
    for entity in _entities(text, ctx, "money"):
        if 1 <= entity.value <= 100_000_000:
            return Found(int(entity.value), (entity.text,))
    return None


# Said in the clause of a period that is the one owed (最后两个月工资没给), not how long the work lasted
_OWED = re.compile(r"欠|没给|不给|没发|不发|没结|不结|拖|没拿|没开|不开|工资|工钱")


def period(text: str, ctx: v.SlotContext) -> Found | None:
    """How long pay is owed: of several periods (干了半年，最后两个月工资没给), the one said with what is owed."""
    found = []
    for clause in v.CLAUSES.split(text or ""):
        for entity in _entities(clause, ctx, "duration"):
            if entity.value["unit"] in ("day", "week", "month", "year") and entity.value["value"] > 0:
                found.append((not _OWED.search(clause), len(found), entity))
    if not found:
        return None
    entity = min(found, key=lambda f: f[:2])[2]
    return Found(entity.value, (entity.text,))


def workers(text: str, ctx: v.SlotContext) -> Found | None:
    for entity in _entities(text, ctx, "count"):
        if 1 <= entity.value <= 100_000:
            return Found(int(entity.value), (entity.text,))
    return None


# ---- time ------------------------------------------------------------------------------------------


def when(text: str, ctx: v.SlotContext) -> Found | None:
    """A time expression in any clause; the person's words kept are that clause (冬天有空), not the message."""
    for clause in v.CLAUSES.split(text or ""):
        try:
            return Found(v.parse_when(clause, ctx, strict=True), (clause,))
        except v.Invalid:
            continue
    return None


# ---- who -------------------------------------------------------------------------------------------

_NAME_SAID = re.compile(r"(?:" + v.WHOSE + r"的?(?:名字)?叫|我的名字是|名字叫|名字是|姓名是|姓名|(?:^|(?<=[，,。\s]))叫)[:：\s]*"
                        r"([\u4e00-\u9fff·]{2,4}?)"
                        r"(?=[，,。.!！\s]|$|身份证|电话|手机|号码|想|要|今年|家|住|在|是)")


def name(text: str, ctx: v.SlotContext) -> Found | None:
    m = v.OTHER_NAMED.search(text or "")  # 我叫李强 … 她叫罗桂兰: the one spoken for
    if m:
        try:
            return Found(v.parse_name(m.group(1), ctx), (m.group(0),))
        except v.Invalid:
            pass
    m = v.SURNAME_THEN_NAME.search(text or "")
    if m:
        try:
            return Found(v.parse_name(m.group(2), ctx), (m.group(0),))
        except v.Invalid:
            pass
    m = _NAME_SAID.search(text or "")
    if not m:
        return None
    try:
        return Found(v.parse_name(m.group(1), ctx), (m.group(0),))
    except v.Invalid:
        return None


_LONG_DIGITS = re.compile(r"\d[\d\s-]{9,}[\dXx]")


def identity(text: str, ctx: v.SlotContext) -> Found | None:
    folded = v.pii.fold_full_width(text or "")
    m = _LONG_DIGITS.search(folded)
    if not m:
        return None
    try:
        return Found(v.parse_id_or_phone(folded, ctx), (m.group(0),))
    except v.Invalid:
        return None


def phone(text: str, ctx: v.SlotContext) -> Found | None:
    found = identity(text, ctx)
    return found if found is not None and found.value["kind"] == "phone" else None


# ---- employers ---------------------------------------------------------------------------------------

# 东莞鸿运五金厂, 宏达建筑劳务公司, 张老板的装修队: a name before a word for a business
_BUSINESS = re.compile(r"([\u4e00-\u9fff]{2,14})(有限公司|公司|集团|工厂|厂|项目部|工程队|施工队|装修队|建筑队|劳务队|包工队|"
                       r"中介|酒店|饭店|餐馆|超市|物业|项目)")
# What a business is called by that says nothing of which one (一个电子厂, 那家公司)
_GENERIC = re.compile(r"^(在|是|我在|我们在|给|帮|去|到|的|了)+|一个|一家|那个|这个|那家|这家|某个|个|家|我们|他们|我的|他的|"
                      r"电子|五金|服装|制衣|鞋|玩具|家具|建筑|劳务|装修|装饰|工程|建设|物流|快递|餐饮|食品|纺织|塑料|机械|"
                      r"电器|印刷|包装|汽车|钢铁|水泥|砖|砂石|化工|科技|实业|贸易|人力资源|小区|工地|大|小")
# 张老板的装修队, 王包工头, 一个姓王的包工头, 姓孙的中介: a boss named by the surname
_BOSS = re.compile(r"(?:姓([\u4e00-\u9fff])的?|([\u4e00-\u9fff]))(老板|包工头|工头|老总|经理|中介|班长)"
                   r"(的[\u4e00-\u9fff]{0,4}?(?:队|厂|公司|工地))?")
# 诉老板 (投诉老板欠钱) is no one: a boss is named by a common surname
SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪"
            "范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤苟蒲鲜冉牟")
_BOSS_SURNAMED = re.compile(r"(老板|包工头|工头|老总|经理|中介)姓([\u4e00-\u9fff])")
_PLACE_WORDS = re.compile(r"(省|市|县|区|镇)")
# a kind of business misheard or mistyped (中戒公司 for 中介公司) is still only a kind
_GENERIC_SOUNDS = frozenset(pinyin_key(w) for w in ("中介", "劳务", "建筑", "装修", "电子", "服装", "工程", "物流", "公司", "工厂"))


# What comes before a business's name in a sentence (去年在广东惠州电子厂干了半年): the name follows the last one.
_BEFORE_BUSINESS = re.compile(r"^.*(?:在|给|帮|到|去|是)")
# A business word after a verb (包进厂, 回厂, 开厂) or a pointer back (没得这个厂) is a deed or a kind, not a name
_NOT_A_NAME = re.compile(r"(进|回|出|离|开|办|建|找|换|这个|那个|这家|那家|哪个|哪家)$")


def _without_place(text: str, ctx: v.SlotContext) -> str:
    """`text` without the place it names (its words, 晋江 for 泉州, and the place's own names) nor 省/市/县."""
    own = text
    for entity in _entities(text, ctx, "place"):
        own = own.replace(entity.text, "")
    own = _PLACE_WORDS.sub("", own)
    place = match_place(text, ctx.kb) or {}
    for name in (place.get("destination"), place.get("province"), place.get("county"), place.get("township")):
        if name:
            own = own.replace(name, "").replace(name[:-1] if len(name) > 2 else name, "")
    return own


def employer(text: str, ctx: v.SlotContext) -> Found | None:
    """The business or boss named (宏达建筑劳务公司, 张老板的装修队), never a mere kind of one (一个电子厂), nor
    a place and a kind (福建晋江的鞋厂 is where and what, not who)."""
    said = text or ""
    for m in _BUSINESS.finditer(said):
        if _NOT_A_NAME.search(m.group(1)):
            continue
        head = _BEFORE_BUSINESS.sub("", m.group(1)) or m.group(1)
        whole = head + m.group(2)
        where, of, kind = head.rpartition("的")
        if of and where and not _without_place(where, ctx):  # 浙江义乌的袜子厂: where, then what kind
            continue
        own = _GENERIC.sub("", _without_place(head, ctx))
        if len(own) >= 2 and pinyin_key(own) not in _GENERIC_SOUNDS:
            return Found(v.pii.redact(whole)[:64], (m.group(0),))
    for m in _BOSS.finditer(said):
        if (m.group(1) or m.group(2)) in SURNAMES:
            return Found(m.group(0), (m.group(0),))
    for m in _BOSS_SURNAMED.finditer(said):  # 老板姓陈, 包工头姓杨
        if m.group(2) in SURNAMES:
            return Found(m.group(0), (m.group(0),))
    return None


# ---- the residue test --------------------------------------------------------------------------------

_FILLER = re.compile(r"(欠了?我们?|欠了|欠|一共|总共|大概|差不多|左右|块钱|块|元|钱|我们|工资|要|有|了|的|是|个人|个|人|啊|哦|嘛|呢|吧|哈|就"
                     r"|被|多|还|都|我)")


def only_this(text: str, *found: Found) -> bool:
    """Whether the message says nothing but the facts found (欠了我三千五 is an amount, not a work place;
    我们八个人一共被欠了六万多 is a head count and an amount, not an employer)."""
    rest = text or ""
    if not found or not all(f.spans for f in found):
        return False
    for f in found:
        for span in f.spans:
            rest = rest.replace(span, " ")
    return len(_FILLER.sub("", v.compact(rest))) < 2
