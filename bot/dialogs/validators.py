"""Slot parsers: turn what a labourer typed into a value, or raise Invalid.

Every parser takes the answer text and the SlotContext and returns a JSON-serialisable value (the
dialog state is stored as JSON). Numbers, money, durations, trades and places come from
bot.nlu.entities; dates (下个月, 3月份, 农历正月之后) are read here. A parser never raises anything
but Invalid: the engine treats any other exception as a bug, logs it and re-asks.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import pypinyin
from lunardate import LunarDate

from bot import pii
from bot.nlu.entities import (
    extract_entities,
    match_job_type,
    match_place,
    match_training_type,
    parse_count,
    parse_duration,
    parse_money,
    parse_number,
    pinyin_key,
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
    option_facts: dict[str, Any] = field(default_factory=dict)  # what the dialog knows of each option


_PUNCT = re.compile(r"[\s,，.。!！?？、;；:：~～…\"“”'‘’()（）【】\[\]]+")
_HAN = re.compile(r"^[\u4e00-\u9fff·]+$")
QUESTION_MARKERS = ("?", "？", "吗", "啥", "什么", "咋", "怎么", "如何", "哪个", "哪些", "多少", "么子", "区别", "不懂", "解释",
                    "好多钱", "要不要", "有没有", "没得", "能不能", "可不可以", "会不会")


def compact(text: str) -> str:
    return _PUNCT.sub("", text or "")


# A question asked the local way, with no question word: 要钱不, 有培训没, 收费不嘛 (a verb, then 不/没 to end)
_ASKED_X_NOT = re.compile(r"[\u4e00-\u9fff]{2}(?<!算了)[不没][哦啊呀嘛噻哈]?$")


def looks_like_question(text: str) -> bool:
    return any(marker in text for marker in QUESTION_MARKERS) or bool(_ASKED_X_NOT.search(compact(text)))


# 要名字干啥子嘛, 为啥要问这个, 要身份证做啥: why the question is asked (answered, then asked again)
_WHY = re.compile(r"^(?:你们?)?(?:问|要|拿)?(?:我的?)?[\u4e00-\u9fff]{0,5}?(?:干啥子?|干嘛|干什么|做啥子?|做什么|有啥子?用|有什么用|"
                  r"拿来做啥子?|拿来干啥子?|为啥子?|为什么|咋个要)(?:要问|要|问)?(?:这个|这些|我的?)?[\u4e00-\u9fff]{0,4}?[嘛哦呢啊呀噻]*$")
_ABOUT_ASKING = re.compile(r"问|要|拿|登记|填|这个|这些|留")
# 这个也要说啊, 必须填吗, 可以不说不: whether it must be answered
_MUST_I = re.compile(r"^(?:这个|这些|这|那个)?(?:也|都|还)?(?:要|必须|一定要|非要|非得|得)(?:说|填|讲|告诉|写)(?:吗|啊|哦|嘛|呀|不)?$"
                     r"|^(?:可以|能|能不能)不(?:说|填|讲|写)(?:吗|啊|哦|嘛|不)?$|^不(?:说|填)行不行$")
WHY_SHORTEST_ALONE = 4  # characters: 干啥子, 为啥 said alone ask why; longer, it must speak of the asking


def asks_why(text: str) -> bool:
    """Whether the message asks why we want to know (not why something happened: 为什么欠我工资)."""
    words = compact(text)
    if _MUST_I.match(words):
        return True
    return bool(_WHY.match(words)) and (len(words) <= WHY_SHORTEST_ALONE or bool(_ABOUT_ASKING.search(words)))


# What people say to take back what they just said, or to correct an earlier answer.
CORRECTION = re.compile(r"(不对|不是的|错了|打错|说错|写错|搞错|弄错|改成|改为|换成|改一下|更正|应该是|哦不|我是说"
                        r"|(?:电话|手机|号码)号?码?换了|新的是|新号码"
                        r"|(?:^|(?<=[，,\s]))不(?=[，,\s])|(?<=[，,\s])(?:哎|唉|算了)?还是)")
# "不是重庆" / "不要网络班": the value after it is the one *not* meant.
NEGATED = re.compile(r"(不是|不要|不想|不上|不去|不在)([\u4e00-\u9fffA-Za-z0-9]{1,8}?)(?=[，,。.!！\s]|$|是|要|想)")
# "我是恩阳的", "屋头在白衣镇", "家住驷马": where the person is from, not where they want to work.
HOMETOWN = re.compile(r"(我是|我们是|家在|家住|住在|屋头在|老家在?|老家是)([\u4e00-\u9fff]{2,8}?)(的人|人|的|，|,|\s|$)")


# "以前在东莞电子厂干了五年", "之前给人家当过保姆": what the person did, not what they want now.
PAST = re.compile(r"以前|之前|原来|早先|曾经|前几年|那几年|前些年|早些年|干过|做过|当过|学过|待过|呆过")
CLAUSES = re.compile(r"[，,。.!！?？;；\s]+")  # what separates the clauses of a message


def without_past(text: str) -> str:
    """The message without its clauses about the past (a wish extractor must not take an old job for it)."""
    return "，".join(c for c in CLAUSES.split(text or "") if c and not PAST.search(c))


def without_negated(text: str) -> str:
    """The message without the values it rules out: 不对，是成都，不是重庆 → 不对，是成都，."""
    return NEGATED.sub(" ", text or "")


_TAIL_LEAD = re.compile(r"^[了啦哦呀啊的，,。.、:：;；!！\s]*(应该是|就是|是)?")


def after_correction(text: str) -> str | None:
    """What follows the last correction word, its particles and 是 taken off (江口镇，哦不对，是驷马镇 → 驷马镇;
    名字打错了，是王晓明 → 王晓明), or None."""
    last = None
    for m in CORRECTION.finditer(text or ""):
        last = m
    return None if last is None else _TAIL_LEAD.sub("", text[last.end():], count=1)


def hometown_removed(text: str) -> str:
    return HOMETOWN.sub(" ", text or "")


# ---- identity -------------------------------------------------------------------------------

# Whom a proxy speaks for (帮我妈报个名: 她叫罗桂兰, 我老汉儿叫杜大明, 他叫雷大兵): the name that follows is theirs
RELATIVES = ("妈妈|老妈|妈|母亲|娘|爸爸|老爸|爸|老汉儿|老汉|父亲|爹|老婆|媳妇儿|媳妇|爱人|老公|男人|兄弟|哥哥|哥|姐姐|姐|弟弟|弟娃儿|"
             "弟|妹妹|妹|儿子|女儿|娃儿|婆婆|公公|爷爷|奶奶|外婆|外公|嫂子|侄儿|侄女|舅舅|姑姑|表哥|表姐|老人家|朋友|亲戚")
WHOSE = r"(?:我|她|他|俺|(?:我|她|他|俺)?的?(?:" + RELATIVES + r"))"
# 我叫, 我的名字是, 姓名, 她叫, 我妈妈的名字是: what comes before a name
_NAME_LEAD = re.compile(r"^(?:" + WHOSE + r"的?(?:名字|姓名)?(?:叫做|叫|是)|(?:我|她|他|俺)的?(?:" + RELATIVES + r")"
                        r"|(?:名字|姓名)(?:叫做|叫|是)?|叫做|叫|是)")
# 我叫李强，帮我妈报的，她叫罗桂兰: the one spoken for is the one registered
OTHER_NAMED = re.compile(r"(?:她|他|(?:我|她|他)?的?(?:" + RELATIVES + r"))的?(?:名字|姓名)?(?:叫做|叫|是)([\u4e00-\u9fff·]{2,4}?)"
                         r"(?=[，,。.!！\s]|$|[哈嘛噻哦呀啊呢的])")
# 帮我妈报个名, 替我儿子登记, 给我老汉儿报: the person speaks for someone else
FOR_SOMEONE = re.compile(r"(?:帮|替|给)(?:我|她|他)?的?(?:" + RELATIVES + r"|她|他)"
                         r"|(?:我|我屋头|屋头|我家|我们家)的?(?:" + RELATIVES + r")(?:想|要|准备|打算)")
_NOT_NAMES = ("不知道", "不晓得", "没有", "莫得", "不告诉", "保密", "你好", "您好", "好的")


# 我姓苟 叫苟德明, 免贵姓王，叫王德贵: the surname, then the full name
SURNAME_THEN_NAME = re.compile(r"(?:我|免贵)?姓([\u4e00-\u9fff])[，,\s]*(?:名字)?叫?\s*(\1[\u4e00-\u9fff]{1,3}?)(?=[，,。.!！\s]|$|[哈嘛噻哦呀啊呢的])")


_KIN_CALLED = re.compile(r"(大姐|大哥|大爷|大妈|大嫂|嬢嬢|孃孃|幺妹|老汉|老头|婆婆|师傅|老板)$")
_PARTICLE_END = re.compile(r"[哈嘛呢噻撒哦呀啊嘞]+$")  # 周国富噻: the particle is not part of the name
NAME_LONGEST = 4  # characters of a Han name without a middle dot (欧阳春花); 买买提·艾力 may be longer


def parse_name(text: str, ctx: SlotContext) -> str:
    """A person's name: 2–4 characters (longer with a middle dot), prefixes (我叫, 我是) and a trailing
    particle taken off; the first clause that is one (王小明，我是江口镇的). A question is never a name
    (你问我名字干啥)."""
    if looks_like_question(text or ""):
        raise Invalid()
    said = SURNAME_THEN_NAME.search(text or "")
    if said:
        return _name(said.group(2))
    other = OTHER_NAMED.search(text or "")
    if other:
        try:
            return _name(other.group(1))
        except Invalid:
            pass
    clauses = [c for c in CLAUSES.split(text or "") if c]
    try:
        return _name(text)
    except Invalid:
        if len(clauses) < 2:
            raise
    names = []
    for clause in clauses:
        try:
            names.append(_name(clause))
        except Invalid:
            continue
    if not names:
        raise Invalid()
    # 我是刘大姐 刘桂芝: what people call her is not her name, the name beside it is
    return next((n for n in names if not _KIN_CALLED.search(n)), names[0])


def _name(text: str) -> str:
    value = _PARTICLE_END.sub("", _NAME_LEAD.sub("", compact(text), count=1))
    longest = 10 if "·" in value else NAME_LONGEST
    if not _HAN.match(value) or not 2 <= len(value) <= longest or any(w in value for w in _NOT_NAMES) \
            or value[0] in "我你他她它这那":
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
    found = match_training_type(text, ctx.kb) or _by_its_parts(text, getattr(ctx.kb, "training_types", ()))
    if not found:
        raise Invalid()
    return found


# 家具厂, 在一个玩具厂里: a factory of a kind the catalogue lacks is factory work
_SOME_FACTORY = re.compile(r"^(在|是|进)?(一个|一家|个)?[\u4e00-\u9fff]{1,5}厂(里|头|上班|打工|做事|干活)?$")
FACTORY_WORK = "普工"
ANY_WORK = "不限"
_ANY_WORK = re.compile(r"(啥子?|什么|哪样)(活|工作)?都(行|可以|要得|得行|干|做)")


def parse_job_type(text: str, ctx: SlotContext) -> str:
    found = match_job_type(text, ctx.kb) or _by_its_parts(text, getattr(ctx.kb, "job_types", ()))
    if not found and _SOME_FACTORY.match(compact(text)) \
            and any(item.name == FACTORY_WORK for item in getattr(ctx.kb, "job_types", ())):
        found = FACTORY_WORK
    if not found and (any(w in compact(text) for w in NO_PREFERENCE) or _ANY_WORK.search(compact(text))):
        found = ANY_WORK  # 啥都行: any work
    if not found:
        raise Invalid()
    return found


PARTS_COVERED = 0.75  # of the answer's characters, said in the catalogue's words for that one trade


def _by_its_parts(text: str, items: Any) -> str | None:
    """A trade said in its parts, in another order (护理老人: 护理 of 养老护理, 老人 of 照顾老人): the one
    catalogue item whose words hold two or more of the answer's character pairs, covering most of it."""
    words = compact(text)
    if not _HAN.match(words or "-") or len(words) < 3:
        return None
    pairs = [(i, words[i:i + 2]) for i in range(len(words) - 1)]
    scored = []
    for item in items:
        said = " ".join((item.name, *item.aliases))
        held = [(i, pair) for i, pair in pairs if pair in said]
        covered = {i + k for i, _pair in held for k in (0, 1)}
        if len({pair for _i, pair in held}) >= 2 and len(covered) >= PARTS_COVERED * len(words):
            scored.append((len(covered), item.name))
    scored.sort(reverse=True)
    if scored and (len(scored) == 1 or scored[0][0] > scored[1][0]):
        return scored[0][1]
    return None


_TOWNSHIP_SAID = re.compile(r"([\u4e00-\u9fff]{1,4}?)(镇|乡|街道)")


def township_by_sound(text: str, kb: Any) -> dict[str, str | None] | None:
    """A township named by a homophone (增口镇 for 曾口镇, voice input): the one township of the region
    whose name sounds the same, sharing its last character (镇, 乡)."""
    said = compact(text)
    heard = [m.group(0) for m in _TOWNSHIP_SAID.finditer(said)]
    if not heard:
        return None
    found = []
    for county in (getattr(kb, "regions", None) or {}).get("counties") or []:
        for town in county.get("townships") or []:
            name = town["name"] if isinstance(town, dict) else str(town)
            if any(word[-1] == name[-1] and _sounds_like(word[-len(name):], name) for word in heard if len(word) >= len(name)):
                found.append({"county": county["name"], "township": name, "village": None})
    return found[0] if len(found) == 1 else None


def _readings(ch: str) -> set[str]:
    """The syllables a character may be read as, toneless, with the sounds people here run together
    (zh/z, ch/c, sh/s, n/l, -ng/-n, hu/f)."""
    folded = set()
    for syllable in (pypinyin.pinyin(ch, style=pypinyin.Style.NORMAL, heteronym=True) or [[ch]])[0]:
        for a, b in (("zh", "z"), ("ch", "c"), ("sh", "s")):
            if syllable.startswith(a):
                syllable = b + syllable[2:]
        syllable = ("l" + syllable[1:]) if syllable.startswith("n") else syllable
        syllable = ("f" + syllable[2:]) if syllable.startswith("hu") else syllable
        folded.add(syllable.removesuffix("g") if syllable.endswith(("ing", "eng", "ang", "ong")) else syllable)
    return folded


def _sounds_like(said: str, name: str) -> bool:
    return len(said) == len(name) and all(_readings(a) & _readings(b) for a, b in zip(said, name))


def parse_township(text: str, ctx: SlotContext) -> dict[str, str | None]:
    place = match_place(text, ctx.kb)
    if not place or not place.get("township"):
        place = township_by_sound(text, ctx.kb) or place
    if not place or not (place.get("township") or place.get("county")):
        raise Invalid()
    if not place.get("township"):
        raise Invalid("township_needed")
    return {"county": place["county"], "township": place["township"], "village": place.get("village")}


def parse_training_place(text: str, ctx: SlotContext) -> dict[str, str | None]:
    """Where a training should be: a township, or no preference (都行, 哪里都可以: stored empty)."""
    try:
        return parse_township(text, ctx)
    except Invalid:
        value = compact(text)
        if any(w in value for w in NO_PREFERENCE) or _ANYWHERE.search(value):
            return {"county": None, "township": None, "village": None}
        raise


def show_township(value: dict[str, str | None]) -> str:
    return "".join(v for v in (value.get("county"), value.get("township"), value.get("village")) if v) or "都可以"


_ORDINAL = re.compile(r"(?:第([一二两三四五六七八九十\d]{1,3})|倒数第([一二两三四五六七八九十\d]{1,2})|(最后|末尾|最末|倒数第一)|(头)|(中间))"
                      r"一?(?:那|这)?(?:个|场|期|项|种|条|班|次|号)?")


def ordinal(text: str, count: int) -> int | None:
    """The position (1 … count) an answer that is nothing but an ordinal points at in a list of `count`:
    第二个 → 2, 最后那个 → count, 倒数第二 → count - 1, 头一个 → 1, 中间那个 → the middle of three;
    None for anything else."""
    m = _ORDINAL.fullmatch(compact(text))
    if not m or count < 1:
        return None
    first, from_end, last, head, middle = m.groups()
    if middle:
        return (count + 1) // 2 if count % 2 and count > 1 else None
    if last or head:
        return count if last else 1
    number = parse_number(first or from_end)
    if number is None or not float(number).is_integer():
        return None
    at = int(number) if first else count + 1 - int(number)
    return at if 1 <= at <= count else None


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


NO_PREFERENCE = ("都可以", "都行", "随便", "无所谓", "不挑", "都要得", "哪里都行", "不限", "没要求", "都得行",
                 "你说呢", "你说嘛", "你帮我选", "帮我选", "你看呢", "你看嘛", "你定", "你们定", "你看着办", "听你的")  # left to us


_FORMAT_WORDS = {"农闲": "农闲班", "夜校": "农闲班", "流动": "流动班", "下乡": "流动班", "田间": "流动班", "小灶": "小灶班",
                 "网络": "网络班", "网上": "网络班", "手机上": "网络班", "视频": "网络班", "补习": "补习班", "补课": "补习班"}
# Asking what the options are (a question about something else is a digression the router answers).
_ABOUT_OPTIONS = ("区别", "哪种", "哪个好", "啥意思", "什么意思", "有哪些", "有啥班", "不懂", "解释", "是啥", "是什么", "咋选", "怎么选",
                  "你推荐", "推荐一个")


def format_named(text: str, ctx: SlotContext) -> str | None:
    """A training format named in `text`: its name, an alias, or a homophone typo (小造班 → 小灶班)."""
    value = compact(text)
    if not value:
        return None
    found = _option(text, ctx)
    if found and found not in ("都可以",):
        return found
    formats = tuple(getattr(ctx.kb, "formats", ()) or ())
    for item in formats:
        if item.name in value or any(alias in value for alias in item.aliases):
            return item.name
    for alias, name in _FORMAT_WORDS.items():
        if alias in value:
            return name
    near = _one_off(value, [item.name for item in formats])
    if near:
        return near
    keys = pinyin_key(value)
    for item in formats:
        for word in (item.name, item.name[:2]):
            key = pinyin_key(word)
            at = keys.find(key)
            # a homophone must share a character with the real word (小造 is 小灶, 造价 is not)
            if at >= 0 and any(a == b for a, b in zip(value[at:at + len(word)], word)):
                return item.name
    return None


def _one_off(value: str, names: list[str]) -> str | None:
    """The one name of at least three characters that `value` spells with one character wrong and its last
    right (网路班 → 网络班, 小早班 → 小灶班): a slip of voice input or of the keyboard."""
    found = [n for n in names if len(n) >= 3 and len(value) == len(n) and value[-1] == n[-1]
             and sum(a != b for a, b in zip(value, n)) == 1]
    return found[0] if len(found) == 1 else None


def parse_format(text: str, ctx: SlotContext) -> str:
    """One of the five training formats, or 不限 (no preference)."""
    value = compact(text)
    found = format_named(without_negated(text), ctx)
    # 农闲班是啥意思, 哪种班好点嘛, 你说呢: asked about, not chosen (不晓得哪种好，都可以 is no preference)
    no_preference = any(w in value for w in NO_PREFERENCE)
    if any(w in value for w in _ABOUT_OPTIONS) and (looks_like_question(text) or not (found or no_preference)):
        raise Invalid("explain", counts=False)
    if found:
        return found
    if no_preference:
        return "不限"
    raise Invalid()


_SCOPE_WORDS = (
    ("省外", ("省外", "外省", "沿海", "出省", "外地")),
    ("省内", ("省内", "四川", "成都", "省里")),
    ("县内", ("县内", "县里", "县城")),  # before 市内: 平昌县城里 is the county town
    ("市内", ("市内", "市里", "巴中", "城里")),
    ("本地", ("本地", "附近", "家门口", "屋门口", "门口", "屋跟前", "家跟前", "屋头", "本乡", "本镇", "镇上", "就近", "离家近", "村里", "当地", "在家")),
)
_ANYWHERE = re.compile(r"哪里.{0,8}(去|就)哪里|哪里都|去哪都|哪儿都")


def destination(text: str, kb: Any) -> str | None:
    """The most specific work destination named: 广东东莞 → 东莞 (not the province); a place inside a city
    the list knows only as that city's alias is kept with it (福建晋江 → 泉州晋江, not 泉州 alone)."""
    place = match_place(text, kb) or {}
    named = place.get("destination") or place.get("province")
    if named and named == place.get("province"):
        narrower = (match_place((text or "").replace(named, " "), kb) or {}).get("destination")
        if narrower:
            named = narrower
    return _with_the_place_said(named, text, kb) if named else named


def _with_the_place_said(named: str, text: str, kb: Any) -> str:
    """泉州 found through its alias 晋江: the person named 晋江, a place of its own (not a typo of 泉州, which
    sounds the same, nor 泉州市): both are kept."""
    if named in (text or ""):
        return named
    for entry in (kb.regions or {}).get("destinations") or ():
        if entry.get("name") != named or entry.get("kind") != "city":
            continue
        said = [a for a in entry.get("aliases") or () if a in (text or "") and named[:2] not in a
                and pinyin_key(a) != pinyin_key(named)]
        if said:
            return named + max(said, key=len)
    return named


def parse_place_wish(text: str, ctx: SlotContext, strict: bool = False) -> dict[str, str | None]:
    """Where they would work: a scope (本地/县内/市内/省内/省外/不限) and, when named, the place.

    The person's hometown ("我是恩阳的") is not where they want to work. `strict` (an extractor over a
    message that answered something else): only a named destination or a scope word counts."""
    whole = compact(text)
    rest = hometown_removed(without_negated(text))
    value = compact(rest)
    named = destination(rest, ctx.kb)
    if named and any(named in words for _scope, words in _SCOPE_WORDS):
        named = None  # 省外 is a scope, not a place
    if named:
        place = match_place(named, ctx.kb) or {}
        home = "四川" in (place.get("province") or "") or named == "成都"
        return {"scope": "省内" if home else "省外", "place": named}
    for scope, words in _SCOPE_WORDS:
        if any(w in value for w in words):
            county = (match_place(rest, ctx.kb) or {}).get("county") if scope == "市内" else None
            if county:  # 巴中市平昌县: the county named is the narrower wish
                return {"scope": "县内", "place": county}
            return {"scope": scope, "place": "成都" if "成都" in value else None}
    if strict:
        raise Invalid()
    place = match_place(rest, ctx.kb) or match_place(text, ctx.kb) or {}
    if place.get("township"):
        return {"scope": "本地", "place": place["township"]}
    if place.get("county"):
        return {"scope": "县内", "place": place["county"]}
    if any(w in whole for w in NO_PREFERENCE) or _ANYWHERE.search(whole):
        return {"scope": "不限", "place": None}
    found = _option(text, ctx)
    if found:
        return {"scope": found, "place": None}
    raise Invalid()


def narrower_place(old: dict[str, str | None], new: dict[str, str | None], ctx: SlotContext) -> bool:
    """A place wish that names a place inside the one wished before (浙江 → 宁波), or a place where only a
    scope was given (省外 → 宁波, same scope)."""
    if not new.get("place") or new.get("place") == old.get("place") or new.get("scope") != old.get("scope"):
        return False
    if not old.get("place"):
        return True
    inside = match_place(new["place"], ctx.kb) or {}
    return old["place"] in (inside.get("province"), inside.get("county"))


def place_in_own_words(words: str) -> dict[str, str | None]:
    """A place the lists lack (绍兴), taken as said: no scope, for the staff to check."""
    return {"scope": None, "place": words[:16]}


def show_place_wish(value: dict[str, str | None]) -> str:
    if not value.get("scope"):
        return str(value.get("place") or "")
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


# "去年干到现在", "从三月份起就没给": a span told by its start; kept in the person's words.
_SINCE = re.compile(r"(去年|今年|前年|年初|年前|年后|过完年|过了年|开春|春节|\d+月|[一二三四五六七八九十]+月|上个月|上半年|下半年)"
                    r".{0,6}(到现在|到今天|到而今|到如今|至今|开始|起就|起到现在|以来)")


def parse_period(text: str, ctx: SlotContext) -> dict[str, Any]:
    if _SINCE.search(compact(text)) and parse_duration(text) is None:
        return {"value": None, "unit": None, "text": compact(text)[:24]}
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
    if value.get("value") is None:
        return str(value.get("text") or "")
    return f"{value['value']}{_UNITS_CN.get(value['unit'], value['unit'])}"


_ONLY_ME = ("就我", "我一个", "只有我", "我自己", "我个人", "就一个", "自己一个")


_BARE_COUNT = re.compile(r"[0-9零〇一二两三四五六七八九十百千]+[来多几]?[个名位]")


def parse_workers(text: str, ctx: SlotContext) -> int:
    counted_first = [e.value for e in extract_entities(text, ctx.kb) if e.type == "count"]
    bare = _BARE_COUNT.search(compact(text))
    more = (counted_first and counted_first[0] > 1) or (bare and (parse_count(bare.group(0)) or 0) > 1)
    if any(w in compact(text) for w in _ONLY_ME) and not more:
        return 1  # 就我和我兄弟两个 is two
    value = compact(text)
    # a head count said as such (我们有8个人, 十来个), or a bare number; 找个人问一下 is not one person
    counted = [e.value for e in extract_entities(text, ctx.kb) if e.type == "count"]
    if counted:
        value = counted[0]
    elif m := re.fullmatch(r"[0-9零〇一二两三四五六七八九十百千几来多]+[个名位]?(人|工友)?", value) or _BARE_COUNT.search(value):
        value = parse_count(m.group(0))
    else:
        value = None
    if value is None:
        raise Invalid()
    if not 1 <= value <= 100_000:
        raise Invalid("out_of_range")
    return int(value)


def show_workers(value: int) -> str:
    return f"{value}人"


# ---- yes / no, categories, free text ------------------------------------------------------------

_NO = ("不愿意", "不想", "不要", "不用", "不需要", "不必", "没必要", "不行", "不可以", "不得行", "不干", "不去", "不考虑",
       "不能", "不了", "算了", "免了", "莫得兴趣", "没兴趣", "算球", "算逑", "要不得", "莫来", "懒得", "不来", "否", "不")
_YES_DESPITE_NO = ("没问题", "没得问题", "莫得问题", "不错")
SHORT_NO = 4  # characters: a reply this short that starts with 不/没 is a no
_YES = ("愿意", "可以", "行", "要得", "好", "中", "想", "要", "能", "是", "对", "干", "考虑", "没问题", "ok", "OK", "嗯")


_NUMBER_GIVEN = re.compile(r"\d{5,}")


# 看情况, 说不准, 到时候再说: neither yes nor no (stored empty: undecided)
_MAYBE = ("看情况", "说不准", "说不好", "不一定", "到时候再说", "到时候看", "再说", "看嘛", "不好说")


def parse_yes_no(text: str, ctx: SlotContext) -> bool | None:
    value = compact(text)
    if any(w in value for w in _MAYBE) and not _option(text, ctx):
        return None
    if _NUMBER_GIVEN.search(pii.fold_full_width(value)):
        raise Invalid()  # 新的是138…: a number given, not a yes
    found = _option(text, ctx)
    if found:
        value = found
    if not value or (not found and looks_like_question(text) and len(value) > 3):
        raise Invalid()  # 公益性岗位一个月好多钱: a question about it, answered, then asked again
    if any(w in value for w in _YES_DESPITE_NO):
        return True
    if any(value.startswith(w) or w in value for w in _NO[:-1]) or value in ("不", "否", "no", "No", "NO"):
        return False
    if len(value) <= SHORT_NO and value.startswith(("不", "没", "莫")):  # 不愿以 / 不原意: voice input's 不愿意
        return False
    if any(w in value for w in _YES) or any(w in value for w in NO_PREFERENCE):
        return True
    raise Invalid()


def show_yes_no(value: bool | None) -> str:
    return "看情况" if value is None else ("愿意" if value else "不愿意")


_CATEGORY_WORDS = (
    ("工伤", ("工伤", "受伤", "摔", "砸", "伤了", "骨折", "断了", "残", "出事", "事故", "伤", "压了", "压断", "压到", "夹了", "夹到",
            "割了", "烫了", "烧伤", "住院", "医药费")),
    ("欠薪", ("欠薪", "欠", "工资", "工钱", "拖欠", "不给钱", "没给", "不给", "一分钱", "没发", "不发", "结账", "讨薪", "血汗钱",
            "不开钱", "拖了", "拖着", "压着", "拖工资", "拖工钱", "扣工资", "扣钱", "压工资", "差我", "还差", "少给", "没结清", "跑了", "跑路", "工资压", "工钱压", "压着不给", "结不到", "结不了", "拿不到钱", "要不到钱", "讨不到")),
    ("未签合同", ("合同", "协议")),
    ("社保", ("社保", "保险", "养老", "医保")),
    ("中介收费", ("中介", "介绍费", "押金", "收费", "黑中介", "骗")),
    ("其他", ("其他", "其它", "别的", "开除", "辞退", "炒鱿鱼", "不要我了")),
)
# Words that name the subject and no grievance (工资五千往上 is a wish): never enough for the extractor.
NEUTRAL_CATEGORY_WORDS = ("工资", "工钱", "结账", "养老", "保险")
# Words that say only that something was withheld, whatever it was (中介收了钱也没给介绍 is the agent's fee):
# they count for less than a word that names the problem.
_WEAK_CATEGORY_WORDS = ("没给", "不给", "没发", "不发", "欠", "伤", "骗", "跑了", "跑路")


def parse_category(text: str, ctx: SlotContext) -> str:
    """The problem: an option, else the category whose words say the most (a word naming it, 介绍费 or
    合同, outweighs one saying only that something was not given); of two saying as much, the one said first
    (一直不签合同 还乱扣钱: the contract)."""
    found = _option(text, ctx)
    if found:
        return found
    value = compact(text)
    scores = []
    for rank, (category, words) in enumerate(_CATEGORY_WORDS):
        said = [w for w in words if w in value]
        score = sum(1 if w in _WEAK_CATEGORY_WORDS else len(w) for w in said)
        if score:
            scores.append((-score, min(value.index(w) for w in said), rank, category))
    if not scores:
        raise Invalid()
    return min(scores)[3]


def parse_text(text: str, ctx: SlotContext) -> str:
    """A short free answer (employer, site, what happened): kept as written, bounded, with any ID number or
    phone in it masked (the dialog's state holds it until the row is written)."""
    value = " ".join((text or "").split())
    if len(compact(value)) < 2 or re.fullmatch(r"[\d\s]+", value):
        raise Invalid()
    return pii.redact(value)[:500]


_DONE = ("好了", "发完", "没有", "没得", "莫得", "没了", "完了", "就这些", "就这样", "跳过", "不发", "没照片", "结束", "可以了", "OK", "ok",
         "不用", "不需要", "不要", "算了", "没拍", "没留")


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
_NOW = ("随时", "马上", "现在", "立刻", "立即", "今天", "都可以", "都行", "啥时候都", "随便", "哪天都", "越快越好", "尽快",
        "这哈", "这会儿", "这阵", "立马", "眼下", "说走就走", "喊走就走", "随喊随到", "一哈儿就")


# 腊月底, 正月中旬, 3月下旬, 冬月初: the day of the month such words start from
_MONTH_PART = re.compile(r"份?(上旬|中旬|下旬|月初|初|月中|中|底|末|尾)")
_PART_DAY = {"上旬": 1, "月初": 1, "初": 1, "中旬": 11, "月中": 11, "中": 11, "下旬": 21, "底": 25, "末": 25, "尾": 25}


def _part_of_month(value: str, at: int) -> int:
    m = _MONTH_PART.match(value, at)
    return _PART_DAY[m.group(1)] if m else 1


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


# Said when nothing is fixed yet: accepted as an answer ("not fixed"), stored as said, no date.
_UNKNOWN = ("不晓得", "不知道", "不清楚", "说不准", "说不好", "说不清", "不一定", "不确定", "没定", "没想好", "到时候", "再说",
            "看情况", "看时间", "看安排", "待定", "还不晓得", "不好说", "看嘛", "到时看")
_DAY_PARTS = ("晚上", "夜里", "夜间", "白天", "早上", "上午", "下午", "中午", "周末", "星期天", "星期六", "礼拜天", "礼拜六",
              "赶场天", "逢场", "下雨天", "天阴")
_VAGUE = ("过段时间", "过一阵", "过些时候", "过几天", "以后", "年前", "忙完", "闲了")
# (words, month, day, lunar): seasons and festivals as people say them
_SEASON_WORDS = (
    (("开春", "春天", "春季", "入春", "春耕后"), 3, 1, False),
    (("入夏", "夏天", "夏季"), 7, 1, False),
    (("暑假",), 7, 10, False),
    (("入秋", "秋天", "秋季"), 9, 1, False),
    (("入冬", "冬天", "冬季", "冬闲"), 11, 1, False),
    (("寒假",), 1, 15, False),
    (("元宵", "正月十五"), 1, 15, True),
    (("端午",), 5, 5, True),
    (("中秋",), 8, 15, True),
    (("国庆节", "国庆后", "国庆过后", "国庆以后", "国庆之后", "国庆前", "过了国庆", "过完国庆", "国庆过了"), 10, 1, False),  # 贺国庆 is a name
    (("五一", "劳动节"), 5, 1, False),
    (("清明",), 4, 5, False),
    (("春节", "过年"), 1, 1, True),
    (("下半年",), 7, 1, False),
    (("上半年",), 1, 1, False),
)


# Days known by name, read before any month (七月半 is not July, 二月二 not February): festivals and the solar
# terms people plan by. (words, month, day, lunar)
_NAMED_DAYS = (
    (("二月二", "龙抬头"), 2, 2, True), (("七月半", "中元"), 7, 15, True), (("重阳",), 9, 9, True),
    (("腊八",), 12, 8, True), (("小年",), 12, 23, True), (("元旦",), 1, 1, False),
    (("立春",), 2, 4, False), (("惊蛰",), 3, 6, False), (("谷雨",), 4, 20, False), (("立夏",), 5, 6, False),
    (("芒种",), 6, 6, False), (("夏至",), 6, 21, False), (("立秋",), 8, 8, False), (("白露",), 9, 8, False),
    (("秋分",), 9, 23, False), (("霜降",), 10, 23, False), (("立冬",), 11, 7, False), (("冬至",), 12, 22, False),
)
# 大年初八, 初十以后: a day of the lunar month said alone (大年: of the first month)
_LUNAR_DAY = re.compile(r"(?<![月])(大年)?初([一二三四五六七八九十]{1,2})")


def _next_lunar_day(today: date, day: int) -> date:
    """The next solar date that is day `day` of a lunar month (初十 said on the 26th: the next month's)."""
    lunar = LunarDate.from_solar_date(today.year, today.month, today.day)
    year, month = lunar.year, lunar.month
    for _ in range(3):
        try:
            found = LunarDate(year, month, day).to_solar_date()
        except ValueError:
            found = None
        if found is not None and found >= today:
            return found
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return today


# The farm year as people here reckon it: after transplanting the rice (June), the wheat harvest (June), the maize
# (September), the sweet potatoes (November)
_FARM_CALENDAR = ((("栽完秧", "栽了秧", "插完秧", "插了秧", "栽秧后", "插秧后", "栽秧子过后"), 6),
                  (("收完麦", "割完麦", "收了麦"), 6), (("掰完苞谷", "收完苞谷", "掰了苞谷", "收完玉米"), 9),
                  (("挖完红苕", "挖了红苕", "收完红苕"), 11))

_NUMERAL_CHARS = "0123456789零〇一二两三四五六七八九十百千万"


def _numeral_around(value: str, words: tuple[str, ...]) -> bool:
    """五一 inside 三千五一个月 is money, not the May holiday."""
    for word in words:
        at = value.find(word)
        if at >= 0 and word[0] in _NUMERAL_CHARS:
            before = value[at - 1:at]
            after = value[at + len(word):at + len(word) + 1]
            return bool((before and before in _NUMERAL_CHARS) or (after and after in _NUMERAL_CHARS + "个"))
    return False


def _seasonal(today: date, month: int, day: int, lunar: bool, year: int | None) -> date:
    if lunar:
        found = _lunar(today, month, day)
        return LunarDate(LunarDate.from_solar_date(today.year, today.month, today.day).year + 1, month, day).to_solar_date() \
            if year and found.year < year else found
    return _upcoming(today, month, day, year) or today


_RANGE = re.compile(r"(.+?)(?:到|至|~|～|—|-)(.+)")
_MONTH_ONLY = re.compile(r"(" + _NUM + r")月(?:份)?$|(正|腊|冬)月(?:间|份)?$")


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


_SPANS = ((("开春", "春天", "春季", "入春"), 3), (("夏天", "夏季", "入夏"), 3), (("秋天", "秋季", "入秋"), 3),
          (("冬天", "冬季", "入冬", "冬闲"), 4), (("暑假",), 2), (("寒假",), 1))  # season words, and how many months


def _season_end(begin: date, length: int) -> date:
    month = begin.month - 1 + length - 1
    return _month_end(date(begin.year + month // 12, month % 12 + 1, 1))


def _season_now(value: str, today: date, month: int, day: int) -> date | None:
    """The first day of the season the words name when today is in it (冬天 said in December), else None."""
    length = next((n for words, n in _SPANS if any(w in value for w in words)), None)
    if length is None:
        return None
    for year in (today.year, today.year - 1):
        begin = date(year, month, day)
        if begin <= today <= _season_end(begin, length):
            return begin
    return None


def _until(value: str, start: dict[str, Any], today: date) -> str | None:
    """The last day the words cover, when they cover a span: a season (开春 → end of May), a month
    (3月份 → 31 March), 下个月."""
    if not start.get("date"):
        return None
    begin = date.fromisoformat(start["date"])
    for words, length in _SPANS:
        if any(w in value for w in words):
            if start.get("season_start"):  # in the season now: it ends where the season does
                begin = date.fromisoformat(start["season_start"])
            return _season_end(begin, length).isoformat()
    month_only = _MONTH_ONLY.search(value)
    if month_only and month_only.group(2):  # 冬月间, 腊月: a lunar month, about 29 days from its first
        return (begin + timedelta(days=28)).isoformat()
    if month_only or value.endswith(("下个月", "下月", "下下个月")):
        return _month_end(begin).isoformat()
    return None


# Voice input's 月 after a count or 上/下 (下个越, 三个悦): the month, not 越快越好
_MONTH_TYPO = re.compile(r"(?<=[个上下这本两三四五六七八九十\d])[越悦阅钥]")


_LEADING_IS = re.compile(r"^(?:应该是|就是|是)(?=[\u4e00-\u9fff\d])")
# 年前, 过年前, 春节之前 (not 去年前, nor 春节前后, which is around it)
_BEFORE_NEW_YEAR = re.compile(r"(?<![去前明今])年前(?!后)|过年前|过年之前|春节之?前(?!后)")


def parse_when(text: str, ctx: SlotContext, strict: bool = False) -> dict[str, Any]:
    """When they are free / can start: {"text": as said, "date": the first day or None, "until": the last
    day when the words name a span (3月到5月, 开春, 下个月), else None}.

    A range is read as its two ends; anything else by _parse_when."""
    text = _LEADING_IS.sub("", _MONTH_TYPO.sub("月", text or "").strip())  # 是腊月 (不是下个月 是腊月): said as 腊月
    value = compact(text)
    if m := _RANGE.fullmatch(value):
        try:
            first = _parse_when(m.group(1), ctx, strict=True)
            last = _parse_when(m.group(2), ctx, strict=True)
            if first.get("date") and last.get("date") and last["date"] < first["date"]:
                # 十月到腊月 said in December: the 腊月 after that October
                last = _parse_when(m.group(2), replace(ctx, today=date.fromisoformat(first["date"])), strict=True)
        except Invalid:
            pass
        else:
            if first.get("date") and last.get("date") and last["date"] >= first["date"]:
                end = _until(m.group(2), last, ctx.today) or last["date"]
                return {"text": value[:32], "date": first["date"], "until": end}
    # 宁波 下个月就走: the words kept are the clause that says when, not the whole answer
    clauses = [c for c in CLAUSES.split(text) if compact(c)]
    for clause in clauses if len(clauses) > 1 else ():
        try:
            found = _parse_when(clause, ctx, strict=True)
        except Invalid:
            continue
        text = clause
        break
    else:
        found = _parse_when(text, ctx, strict=strict)
    until = _until(compact(text), found, ctx.today)
    found.pop("season_start", None)
    return {**found, "until": until}


def _parse_when(text: str, ctx: SlotContext, strict: bool = False) -> dict[str, Any]:
    """When they are free / can start: {"text": as said, "date": ISO date or None}.

    None for what names no day (晚上, 农闲时, 到时候再说: "not fixed"). `strict` (an extractor over a
    message that answered something else): only a real time expression, not 都可以/不晓得."""
    value = compact(text)
    today = ctx.today
    said = value[:32]
    if strict:  # 农闲班 / 晚上上课 name a training format, not a time
        value = re.sub(r"[\u4e00-\u9fff]{1,3}班|晚上上课|夜校", "", value)
    if not value:
        raise Invalid()
    year = today.year + 1 if "明年" in value else (today.year if "今年" in value else None)
    for words, month, day, lunar in _NAMED_DAYS:
        if any(w in value for w in words):
            return {"text": said, "date": _seasonal(today, month, day, lunar, year).isoformat()}
    if (m := _LUNAR_DAY.search(value)) and not _LUNAR_RE.search(value):
        day = _int(m.group(2))
        if day and 1 <= day <= 30:
            found = _lunar(today, 1, day) if m.group(1) else _next_lunar_day(today, day)
            return {"text": said, "date": found.isoformat()}
    if m := _LUNAR_RE.search(value):
        lunar_calendar, month_token, day_token = m.groups()
        month = _LUNAR_MONTHS.get(month_token) or _int(month_token)
        day = _int(day_token) if day_token else _part_of_month(value, m.end())
        if (lunar_calendar or month_token in _LUNAR_MONTHS) and month and 1 <= month <= 12 and day and 1 <= day <= 30:
            return {"text": said, "date": _lunar(today, month, day).isoformat()}
    if any(w in value for w in ("过完年", "过了年", "年后", "春节后", "过年后", "开年", "春节过后", "过年以后", "正月间")):
        return {"text": said, "date": _lunar(today, 1, 8).isoformat()}
    if _BEFORE_NEW_YEAR.search(value):  # 年前: free from now until the Spring Festival
        return {"text": said, "date": today.isoformat()}
    if m := re.search(r"(" + _NUM + r")月(?:份)?(?:(" + _NUM + r")[号日])?", value):
        month, day = _int(m.group(1)), (_int(m.group(2)) if m.group(2) else _part_of_month(value, m.end()))
        if month and 1 <= month <= 12 and day and 1 <= day <= 31:
            found = _upcoming(today, month, day, year)
            if found:
                return {"text": said, "date": found.isoformat()}
    if m := re.search(r"过(" + _NUM + r"|半)个?(天|周|星期|礼拜|月)", value):
        value = value.replace(m.group(0), m.group(0)[1:] + "后")
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
        ("下月", _next_month_start(today) if "一下月" not in value or value.count("下月") > 1 else None),
        ("下周", today + timedelta(days=7 - today.weekday())),
        ("下个星期", today + timedelta(days=7 - today.weekday())),
        ("下个礼拜", today + timedelta(days=7 - today.weekday())),
        ("过了这个月", _next_month_start(today)),
        ("这个月过了", _next_month_start(today)),
        ("月底", _next_month_start(today) - timedelta(days=1)),
        ("年底", date(today.year, 12, 1) if today.month < 12 else today),
        ("这几天", today),
        ("这周", today),
    )
    for word, when in relative:
        if word in value and when is not None:
            return {"text": said, "date": when.isoformat()}
    if any(w in value for w in ("秋收", "收了谷子", "收完谷子", "打完谷子")):
        return {"text": said, "date": _upcoming(today, 10).isoformat()}
    for words, month in _FARM_CALENDAR:
        if any(w in value for w in words):
            return {"text": said, "date": _upcoming(today, month).isoformat()}
    for words, month, day, lunar in _SEASON_WORDS:
        if any(w in value for w in words) and not _numeral_around(value, words):
            current = None if (lunar or year) else _season_now(value, today, month, day)
            if current is not None:  # 冬天有空, said in winter: from today to the end of this winter
                return {"text": said, "date": today.isoformat(), "season_start": current.isoformat()}
            return {"text": said, "date": _seasonal(today, month, day, lunar, year).isoformat()}
    if any(w in value for w in ("农闲", "不忙", "闲的时候", "闲下来", "空闲")) or any(w in value for w in _DAY_PARTS):
        return {"text": said, "date": None}
    if "明年" in value:
        return {"text": said, "date": date(today.year + 1, 1, 1).isoformat()}
    if "后年" in value and "年后" not in value:
        return {"text": said, "date": date(today.year + 2, 1, 1).isoformat()}
    if strict:
        raise Invalid()
    if any(w in value for w in _NOW):
        return {"text": said, "date": today.isoformat()}
    if any(w in value for w in _VAGUE) or any(w in value for w in _UNKNOWN) or "有空" in value:
        return {"text": said, "date": None}
    raise Invalid()


# Said of the past (啥时候出去的？): 去年, 前年, 上个月, 两年前
_PAST_WORDS = (("前年", lambda t: date(t.year - 2, 1, 1)), ("去年", lambda t: date(t.year - 1, 1, 1)),
               ("上个月", lambda t: _next_month_start(t, -1)), ("上月", lambda t: _next_month_start(t, -1)),
               ("年初", lambda t: date(t.year, 1, 1)), ("今年", lambda t: date(t.year, 1, 1)))
_AGO = re.compile(r"(" + _NUM + r"|半|几)(个)?(年|月|天|周|星期)(以前|之前|前)")


def parse_since(text: str, ctx: SlotContext) -> dict[str, Any]:
    """Since when (啥时候出去的): the same words as parse_when, read as the latest such day not after today
    (3月份 said in December is this March; 去年 is 1 January of last year, 去年冬月间 last year's 冬月)."""
    value = compact(text)
    today = ctx.today
    if m := _AGO.search(value):
        number = {"半": 0.5, "几": 3}.get(m.group(1)) or _int(m.group(1)) or 1
        days = {"年": 365, "月": 30, "天": 1, "周": 7, "星期": 7}[m.group(3)] * number
        return {"text": value[:32], "date": (today - timedelta(days=int(days))).isoformat(), "until": None}
    past = next(((word, day) for word, day in _PAST_WORDS if word in value), None)
    rest = value.replace(past[0], "") if past else value
    try:
        found = parse_when(rest, ctx) if compact(re.sub(r"(去的|出来的|出去的|走的|来的|开始)", "", rest)) else None
    except Invalid:
        found = None
    if found is None or not found.get("date"):
        if past is not None:
            return {"text": value[:32], "date": past[1](today).isoformat(), "until": None}
        if found is None:
            raise Invalid()
        return {**found, "text": value[:32]}
    when = date.fromisoformat(found["date"])
    years_back = {"去年": 1, "前年": 2}.get(past[0] if past else "", 0)
    if years_back:
        when = _same_day(when, today.year - years_back)
    while when > today:
        when = _same_day(when, when.year - 1)
    return {"text": value[:32], "date": when.isoformat(), "until": None}


def _same_day(day: date, year: int) -> date:
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def show_when(value: dict[str, Any]) -> str:
    if not value.get("date"):
        return value["text"]
    when = date.fromisoformat(value["date"])
    if value.get("until"):
        until = date.fromisoformat(value["until"])
        return f"{value['text']}（{when.year}年{when.month}月{when.day}日—{until.month}月{until.day}日）"
    return f"{value['text']}（{when.year}年{when.month}月{when.day}日起）"
