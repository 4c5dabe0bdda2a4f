"""Entities in labourers' messages: numbers, money, durations, head counts, trades, places.

Everything here takes plain text (as written, or folded by `normalize.fold`, which keeps offsets)
and is cheap enough to run on every message. Colloquial amounts are read as their lower bound
(十几个人 → 10, 五六千 → 5000): a dialog can confirm, and an understated figure is the safe error.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from dataclasses import dataclass
from functools import lru_cache
from operator import add
from pathlib import Path
from typing import Any, Iterable

from bot.nlu.types import Entity

# --------------------------------------------------------------------------------------------
# numbers

_CN = "零〇一二两三四五六七八九十百千万亿"
_CN_DIGIT = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
# A number span: Arabic or Chinese numerals, with the colloquial approximations 几/来/多 inside
# (十几, 二十来, 一千多) and k/w suffixes (3.5k, 2w). "半" only as in 一年半 / 三千五 is handled by cn2an.
_NUM_RE = re.compile(
    r"(?:\d+(?:\.\d+)?|[" + _CN + r"几])(?:\d+(?:\.\d+)?|[" + _CN + r"几来])*(?:[kKwW](?![a-zA-Z]))?"
)
_NUMERAL_RE = re.compile(r"[\d" + _CN + r"几半]")
_PAIR_RE = re.compile(r"([一二两三四五六七八九])([二三四五六七八九])")


def _approx_to_exact(span: str) -> str:
    """十几 → 十, 二三十 → 二十, 五六千 → 五千, 几千 → 两千: the lower bound of a rough figure."""
    s = span
    if s.startswith("几"):
        s = "两" + s[1:]
    s = s.replace("几", "").replace("来", "")

    def pair(m: re.Match[str]) -> str:
        a, b = _CN_DIGIT[m.group(1)], _CN_DIGIT[m.group(2)]
        return m.group(1) if b == a + 1 else m.group(0)

    return _PAIR_RE.sub(pair, s)


_UNIT = {"十": 10, "百": 100, "千": 1000}
_BIG_UNIT = {"万": 10_000, "亿": 100_000_000}
_DIGITS_RE = re.compile(r"\d+(?:\.\d+)?")


def _read_numeral(s: str) -> float | None:
    """Chinese numerals with Arabic digits mixed in (三千五, 3千5, 1.5万, 一百零五, 二零一九);
    None for what it cannot read, which cn2an then tries."""
    if not s:
        return None
    if _DIGITS_RE.fullmatch(s):
        return float(s)
    if all(c in _CN_DIGIT for c in s):  # 二零一九, 一三五: read digit by digit
        return float("".join(str(_CN_DIGIT[c]) for c in s))
    total = section = 0.0
    number: float | None = None
    last_unit = 0  # the unit just written, for 三千五 = 3500 and 两万五 = 25000
    small_bound = big_bound = math.inf  # units fall within a section, sections fall (一万二千, not 二千一万)
    zero = False
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        m = _DIGITS_RE.match(s, i)
        if m:
            if number is not None:
                return None
            number = float(m.group(0))
            i = m.end()
            continue
        if c in "零〇":
            if not (0 < i < n - 1 and (s[i - 1] in _UNIT or s[i - 1] in _BIG_UNIT) and s[i + 1] not in "零〇"):
                return None
            zero = True  # 一百零五: the next figure is in units
        elif c in _CN_DIGIT:
            if number is not None:
                return None
            number = float(_CN_DIGIT[c])
        elif c in _UNIT:
            unit = _UNIT[c]
            if unit >= small_bound or number == 0:
                return None
            if number is None and not (c == "十" and section == 0 and total == 0):
                return None
            small_bound = unit
            section += (1.0 if number is None else number) * unit
            number, last_unit, zero = None, unit, False
        elif c in _BIG_UNIT:
            big = _BIG_UNIT[c]
            section += number or 0.0
            if section == 0 or big >= big_bound:
                return None
            big_bound, small_bound = big, math.inf
            total += section * big
            section, number, last_unit, zero = 0.0, None, big, False
        else:
            return None
        i += 1
    if number is not None:
        if number == 0:
            return None
        if last_unit >= 100 and not zero and float(number).is_integer() and number < 10:
            number *= last_unit / 10  # 三千五, 两万五: the figure after a unit counts in the next unit down
        section += number
    return total + section


@lru_cache(maxsize=4096)
def _value(span: str) -> float | None:
    s = _approx_to_exact(span)
    if not s:
        return None
    s = s.replace("k", "千").replace("K", "千").replace("w", "万").replace("W", "万")
    value = _read_numeral(s)
    if value is not None:
        return value
    import cn2an  # only for the odd forms read above does not: it costs 0.2 s of start-up

    try:
        value = cn2an.cn2an(s, "smart")
    except Exception:  # cn2an raises ValueError and friends for anything it cannot read
        # a run of digits like 一三五 or mixed junk: read digit by digit only if all are digits
        if all(c in _CN_DIGIT for c in s):
            return float("".join(str(_CN_DIGIT[c]) for c in s))
        return None
    return float(value)


# 百把人, 万把块, 千把块: about a hundred / ten thousand / a thousand (read as 一百, 一万, 一千: same length, same offsets)
_ROUGH_RE = re.compile(r"(?<![\d" + _CN + r"])([百千万])把")


def _number_spans(text: str) -> Iterable[tuple[int, int, float]]:
    text = _ROUGH_RE.sub(lambda m: "一" + m.group(1), text)
    for m in _NUM_RE.finditer(text):
        span, end = m.group(0), m.end()
        if span in ("几", "来") or span.startswith("来"):
            continue
        # 一万二一个月, 三千五一个月, 五千一个月: the last 一 counts the month (十一个月 is eleven)
        if len(span) > 1 and span[-1] in _CN_DIGIT and text[end:end + 1] == "个" \
                and (_read_numeral(_approx_to_exact(span)) is None or span[-2:] in ("百一", "千一", "万一")) \
                and _read_numeral(_approx_to_exact(span[:-1])) is not None:
            span, end = span[:-1], end - 1
        value = _value(span)
        if value is not None:
            yield m.start(), end, value


def parse_number(text: str) -> float | None:
    """The first number in `text`: 三千五 → 3500, 3千5 → 3500, 3.5k → 3500, 两万 → 20000, 五六千 → 5000."""
    if not text:
        return None
    for _start, _end, value in _number_spans(text):
        return value
    return None


# --------------------------------------------------------------------------------------------
# money, durations, counts

_MONEY_UNIT_RE = re.compile(r"\s*多?(块钱|块|元钱|元|圆|文钱)")
_MONEY_CONTEXT = ("工资", "工钱", "钱", "欠", "薪", "报酬", "补贴", "路费", "收入", "月薪", "日薪", "给了", "拿了")
_DURATION_RE = re.compile(r"\s*(个)?(多)?(月|天|日|年|周|星期|礼拜|小时|钟头)(多|半)?")
_DURATION_UNIT = {"月": "month", "天": "day", "日": "day", "年": "year", "周": "week", "星期": "week",
                  "礼拜": "week", "小时": "hour", "钟头": "hour"}
_HALF_RE = re.compile(r"(大)?半(个)?(年|月|天|小时|钟头)")
_COUNT_RE = re.compile(
    r"\s*(个|名|位|号)?(多)?(人|工友|兄弟伙|兄弟|老乡|劳动力|贫困户|伙计|工人|民工|师傅|娃儿|孩子|家)"
)
_DATE_AFTER_RE = re.compile(r"[\d一二三四五六七八九十]+[号日]")


@dataclass(frozen=True)
class _Found:
    value: Any
    start: int
    end: int


def _money_spans(text: str, *, bare: bool, numbers: Iterable[tuple[int, int, float]] | None = None) -> list[_Found]:
    found = []
    for start, end, value in _number_spans(text) if numbers is None else numbers:
        span = text[start:end]
        unit = _MONEY_UNIT_RE.match(text, end)
        big = any(c in span for c in "万千kKwW百")
        after = text[end:end + 3]
        if unit:
            found.append(_Found(int(round(value)), start, unit.end()))
        elif _DURATION_RE.match(text, end) or _COUNT_RE.match(text, end) or (after[:1] and after[:1] in "个号岁斤亩次"):
            continue
        elif big and any(k in text[max(0, start - 8):start] for k in _MONEY_CONTEXT):
            found.append(_Found(int(round(value)), start, end))
        elif bare:
            found.append(_Found(int(round(value)), start, end))
        elif big and value >= 100 and not re.match(r"\s*(米|公里|斤|亩|平)", after):
            found.append(_Found(int(round(value)), start, end))
    return found


def parse_money(text: str) -> int | None:
    """Yuan: 两万块 → 20000, 3500元 → 3500, 3.5k → 3500, 三千五 (a bare amount, as a slot answer) → 3500."""
    if not text:
        return None
    found = _money_spans(text, bare=False) or _money_spans(text, bare=True)
    return found[0].value if found else None


def _duration_spans(text: str, numbers: Iterable[tuple[int, int, float]] | None = None) -> list[_Found]:
    found: list[_Found] = []
    for m in _HALF_RE.finditer(text):
        unit = m.group(3)
        if unit == "年":
            found.append(_Found({"value": 6, "unit": "month"}, m.start(), m.end()))
        elif unit == "月":
            found.append(_Found({"value": 15, "unit": "day"}, m.start(), m.end()))
        elif unit == "天":
            found.append(_Found({"value": 12, "unit": "hour"}, m.start(), m.end()))
        else:
            found.append(_Found({"value": 30, "unit": "minute"}, m.start(), m.end()))
    for start, end, value in _number_spans(text) if numbers is None else numbers:
        m = _DURATION_RE.match(text, end)
        if not m:
            continue
        unit_cn = m.group(3)
        unit = _DURATION_UNIT[unit_cn]
        if unit_cn in ("年", "月", "日") and not m.group(1):
            # 2019年 / 3月5号 / 5日 are dates, not durations
            if unit_cn == "年" and value >= 1900:
                continue
            if unit_cn == "月" and _DATE_AFTER_RE.match(text, m.end()):
                continue
            if unit_cn == "日":
                continue
        if m.group(4) == "半":
            if unit == "year":
                value, unit = value * 12 + 6, "month"
            else:
                value += 0.5
        if any(f.start <= start < f.end for f in found):
            continue
        v: float | int = int(value) if float(value).is_integer() else value
        found.append(_Found({"value": v, "unit": unit}, start, m.end()))
    found.sort(key=lambda f: f.start)
    return found


def parse_duration(text: str) -> dict | None:
    """{"value": 3, "unit": "month"} for 三个月; 半年 → 6 months; 一年多 → 1 year; 十来天 → 10 days."""
    if not text:
        return None
    found = _duration_spans(text)
    return found[0].value if found else None


def _count_spans(text: str, *, bare: bool, numbers: Iterable[tuple[int, int, float]] | None = None) -> list[_Found]:
    found = []
    for start, end, value in _number_spans(text) if numbers is None else numbers:
        m = _COUNT_RE.match(text, end)
        if m:
            found.append(_Found(int(value), start, m.end()))
        elif bare and not _DURATION_RE.match(text, end) and not _MONEY_UNIT_RE.match(text, end):
            tail = re.match(r"\s*(个|名|位)?", text[end:])
            found.append(_Found(int(value), start, end + (tail.end() if tail else 0)))
    return found


def parse_count(text: str) -> int | None:
    """How many people: 十几个人 → 10, 二三十个工友 → 20, a bare 十几个 (slot answer) → 10."""
    if not text:
        return None
    found = _count_spans(text, bare=False) or _count_spans(text, bare=True)
    return found[0].value if found else None


# --------------------------------------------------------------------------------------------
# gazetteers: catalogue names and aliases, places

_PINYIN_FUZZ = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("ing", "in"), ("eng", "en"))


_PINYIN_VERSION = "1"  # bump when the folding above changes: the cached table is rebuilt
_PINYIN: dict[str, str] = {}  # character → folded syllable
# ord(character) → one character standing for its syllable, so a message's pinyin key is one
# str.translate; the stand-ins are supplementary private-use characters, which no message holds
_KEY_TABLE: dict[int, str] = {}
_KEY_BASE = 0xF0000


_cache_dir: Path | None = None


def use_cache_dir(path: Path) -> None:
    """Where this process caches start-up work; bot.app.compose sets it from GONGYOU_CACHE_DIR."""
    global _cache_dir
    _cache_dir = Path(path)


def cache_dir() -> Path:
    """Where start-up work is cached (the pinyin table, the router's model, jieba's dictionary):
    GONGYOU_CACHE_DIR, else the folder settings chose (bot.settings resolved_cache_dir), else a per-user
    folder — never the shared /tmp: loading a pickle someone else can write would run their code.
    Created 0700."""
    configured = os.environ.get("GONGYOU_CACHE_DIR")
    path = Path(configured) if configured else (_cache_dir or Path.home() / ".cache" / "gongyou")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        pass
    return path


def _private(*paths: Path) -> bool:
    """Ours alone: each owned by this user and writable by nobody else."""
    try:
        return all(p.stat().st_uid == os.getuid() and not p.stat().st_mode & 0o022 for p in paths)
    except OSError:
        return False


def load_cached(name: str) -> Any:
    """A pickle this package wrote into cache_dir(), or None when it is missing, unreadable or could have
    been written by someone else."""
    folder = cache_dir()
    path = folder / name
    if not _private(folder, path):
        return None
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301 - our own private file, named by the hash of its sources
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None


def save_cached(name: str, payload: Any) -> None:
    """Write atomically (other processes may be reading); a read-only disk only costs the next start."""
    folder = cache_dir()
    if not _private(folder):
        return
    path = folder / name
    try:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass


def _load_pinyin() -> None:
    """The folded syllable of every CJK unified ideograph, from the cache or (once) from pypinyin,
    which costs 0.3 s to import and is then kept out of the process."""
    from importlib.metadata import version

    name = f"gongyou-pinyin-{_PINYIN_VERSION}-{version('pypinyin')}.pickle"
    table = load_cached(name)
    if table is None:
        table = {chr(c): _fold_pinyin(chr(c)) for c in range(0x4E00, 0xA000)}
        save_cached(name, table)
    syllables: dict[str, str] = {}
    keys = {}
    for ch, py in table.items():
        code = syllables.get(py)
        if code is None:
            code = syllables[py] = chr(_KEY_BASE + len(syllables))
        keys[ord(ch)] = code
    _PINYIN.update(table)
    _KEY_TABLE.update(keys)


def char_pinyin(ch: str) -> str:
    """Toneless pinyin of one character, folded for Sichuanese/IME confusions (zh=z, in=ing, l=n, hu=fu)."""
    if not _PINYIN:
        _load_pinyin()
    return _PINYIN.get(ch, ch)


def _fold_pinyin(ch: str) -> str:
    from pypinyin import Style, lazy_pinyin

    py = lazy_pinyin(ch, style=Style.NORMAL)[0]
    for a, b in _PINYIN_FUZZ:
        py = py.replace(a, b)
    if py.startswith("l"):
        py = "n" + py[1:]
    if py.startswith("hu"):
        py = "f" + py[1:]
    return py


def pinyin_key(text: str) -> str:
    """One character per character of `text`, equal where the syllables are (扶平 and 扶贫 agree)."""
    if not _KEY_TABLE:
        _load_pinyin()
    return text.translate(_KEY_TABLE)


def literal_trie(words: Iterable[str]) -> str:
    """A regex matching the longest of `words` at a position, like their alternation longest first
    (电焊工|电焊|电工), written as a trie: 电(?:焊(?:工|)|工). The regex engine tries a flat
    alternation's branches one by one at every position where one can start; the trie decides on
    the first character, so a message costs about half as many instructions."""
    trie: dict[str, dict] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here

    def pattern(node: dict[str, dict]) -> str:
        # longer words first: the end of a word is the last alternative
        alts = [re.escape(ch) + pattern(sub) for ch, sub in node.items() if ch]
        if "" in node:
            alts.append("")
        if len(alts) == 1:
            return alts[0]
        return "(?:" + "|".join(alts) + ")"

    return pattern(trie) if trie else "(?!)"


def _char_class(chars: Iterable[str]) -> re.Pattern[str]:
    chars = sorted(set(chars))
    return re.compile("[" + "".join(re.escape(c) for c in chars) + "]" if chars else "(?!)")


class Gazetteer:
    """Surface forms → payload, matched longest-first (one regex alternation, longest surfaces first),
    then by pinyin (homophone typos like 电汗 for 电焊), then by rapidfuzz for longer names."""

    def __init__(self, items: Iterable[tuple[str, Any]], *, pinyin: bool = True, fuzzy: bool = True):
        self.surfaces: dict[str, Any] = {}
        for surface, payload in items:
            surface = surface.strip()
            if surface and surface not in self.surfaces:
                self.surfaces[surface] = payload
        self.lengths = sorted({len(s) for s in self.surfaces}, reverse=True)
        self.pinyin: dict[str, tuple[str, Any]] = {}
        if pinyin:
            for s, p in self.surfaces.items():
                if len(s) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in s):
                    self.pinyin.setdefault(pinyin_key(s), (s, p))
        # the lengths of the pinyin keys starting with each syllable: most positions of a message start none
        py_first: dict[str, set[int]] = {}
        for key in self.pinyin:
            py_first.setdefault(key[0], set()).add(len(key))
        self.py_first = {syl: sorted(ls, reverse=True) for syl, ls in py_first.items()}
        # every surface in one regex that takes the longest surface starting at a position, then
        # goes on after it (what find_all promises), written as a trie (see literal_trie)
        self.surface_re = re.compile(literal_trie(self.surfaces))
        # the first two syllables of every pinyin key (all have two or more): where none of them
        # starts, no homophone can
        self.py_pairs = frozenset(key[:2] for key in self.pinyin)
        self.fuzzy = fuzzy
        self.long_surfaces = [s for s in self.surfaces if len(s) >= 3]

    def find_all(self, text: str) -> list[tuple[int, int, str, Any]]:
        """Non-overlapping exact matches, longest first at each position: (start, end, surface, payload)."""
        surfaces = self.surfaces
        return [(m.start(), m.end(), m.group(), surfaces[m.group()]) for m in self.surface_re.finditer(text)]

    def find_pinyin(self, text: str, keys: str | None = None) -> list[tuple[int, int, str, Any]]:
        """Homophones of the surfaces: only positions whose syllable starts one are tried."""
        if not self.pinyin:
            return []
        if keys is None:
            keys = pinyin_key(text)
        pairs = self.py_pairs
        starts = [i for i, pair in enumerate(map(add, keys, keys[1:])) if pair in pairs]
        if not starts:
            return []
        out = []
        pos, n = 0, len(text)
        py_first, pinyin = self.py_first, self.pinyin
        for i in starts:
            if i < pos:
                continue
            for length in py_first[keys[i]]:
                if i + length <= n:
                    hit = pinyin.get(keys[i:i + length])
                    # a homophone must share at least one character with the real word
                    if hit and any(a == b for a, b in zip(text[i:i + length], hit[0])):
                        out.append((i, i + length, hit[0], hit[1]))
                        pos = i + length
                        break
        return out

    def best(self, text: str) -> tuple[int, int, str, Any] | None:
        hits = self.find_all(text)
        if hits:
            return max(hits, key=lambda h: h[1] - h[0])
        hits = self.find_pinyin(text)
        if hits:
            return max(hits, key=lambda h: h[1] - h[0])
        if self.fuzzy and len(text) <= 40:
            from rapidfuzz import fuzz

            best = None
            for s in self.long_surfaces:
                score = fuzz.partial_ratio(s, text, score_cutoff=85)
                if score and (best is None or score > best[0] or (score == best[0] and len(s) > len(best[1]))):
                    best = (score, s)
            if best:
                al = fuzz.partial_ratio_alignment(best[1], text)
                return al.dest_start, al.dest_end, best[1], self.surfaces[best[1]]
        return None


_INDEX: dict[int, tuple[Any, dict[str, Gazetteer]]] = {}


def _catalogue_gazetteer(items: Iterable[Any]) -> Gazetteer:
    pairs = []
    for item in items:
        pairs.append((item.name, item.name))
        for alias in item.aliases:
            pairs.append((alias, item.name))
    return Gazetteer(pairs)


_PLACE_SUFFIXES = ("街道办事处", "街道", "镇", "乡", "村", "社区", "区", "县", "市", "省")


def _strip_suffix(name: str) -> str:
    for suffix in _PLACE_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def _place_gazetteer(regions: dict[str, Any]) -> Gazetteer:
    pairs: list[tuple[str, dict[str, Any]]] = []
    city = regions.get("city")
    for county in regions.get("counties") or []:
        cname = county["name"]
        cpay = {"county": cname, "township": None, "village": None, "destination": None, "province": None}
        for s in (cname, _strip_suffix(cname), *(county.get("aliases") or ())):
            pairs.append((s, cpay))
        for town in county.get("townships") or []:
            tname = town["name"]
            tpay = dict(cpay, township=tname)
            for s in (tname, _strip_suffix(tname), *(town.get("aliases") or ())):
                pairs.append((s, tpay))
            for village in town.get("villages") or []:
                vname = village if isinstance(village, str) else village["name"]
                valiases = () if isinstance(village, str) else tuple(village.get("aliases") or ())
                vpay = dict(tpay, village=vname)
                # a village's bare name (without 村) is too often an ordinary word; keep the full name
                for s in (vname, *valiases):
                    pairs.append((s, vpay))
    provinces: dict[str, dict[str, Any]] = {}
    for dest in regions.get("destinations") or []:
        dpay = {"county": None, "township": None, "village": None, "destination": dest["name"],
                "province": dest.get("province")}
        for s in (dest["name"], _strip_suffix(dest["name"]), *(dest.get("aliases") or ())):
            pairs.append((s, dpay))
        prov = dest.get("province")
        if prov:
            ppay = {"county": None, "township": None, "village": None, "destination": None, "province": prov}
            provinces.setdefault(prov, ppay)
            provinces.setdefault(_strip_suffix(prov), ppay)
    pairs.extend(provinces.items())
    if city:
        pairs.append((city, {"county": None, "township": None, "village": None, "destination": None,
                             "province": None, "city": city}))
    # Short bare names are only kept when they are at least two characters long.
    return Gazetteer([(s, p) for s, p in pairs if len(s) >= 2], fuzzy=False)


def _index(kb: Any) -> dict[str, Gazetteer]:
    cached = _INDEX.get(id(kb))
    if cached is not None and cached[0] is kb:
        return cached[1]
    idx = {
        "training_type": _catalogue_gazetteer(getattr(kb, "training_types", ()) or ()),
        "job_type": _catalogue_gazetteer(getattr(kb, "job_types", ()) or ()),
        "place": _place_gazetteer(getattr(kb, "regions", None) or {}),
    }
    _INDEX[id(kb)] = (kb, idx)
    return idx


def match_training_type(text: str, kb: Any) -> str | None:
    """Catalogue name of the trade to learn: 电焊 → 焊工 (aliases, homophones, small typos)."""
    hit = _index(kb)["training_type"].best(text or "")
    return hit[3] if hit else None


def match_job_type(text: str, kb: Any) -> str | None:
    """Catalogue name of the kind of work: 挖机 → 挖掘机操作."""
    hit = _index(kb)["job_type"].best(text or "")
    return hit[3] if hit else None


def _merge_places(hits: list[tuple[int, int, str, Any]]) -> dict[str, Any] | None:
    if not hits:
        return None
    merged: dict[str, Any] = {"county": None, "township": None, "village": None, "destination": None,
                              "province": None}
    # the most specific home place wins; a destination fills its own fields
    home = sorted((h for h in hits if not h[3].get("destination") and not h[3].get("province")),
                  key=lambda h: (h[3].get("village") is not None, h[3].get("township") is not None), reverse=True)
    if home:
        for k in ("county", "township", "village"):
            merged[k] = home[0][3].get(k)
    for h in hits:
        if h[3].get("destination"):
            merged["destination"] = h[3]["destination"]
            merged["province"] = h[3].get("province")
            break
    else:
        for h in hits:
            if h[3].get("province"):
                merged["province"] = h[3]["province"]
                break
    if not any(merged.values()):
        return None
    return merged


def match_place(text: str, kb: Any, *, by_sound: bool = True) -> dict[str, Any] | None:
    """{"county", "township", "village", "destination", "province"} (None where not said). `by_sound`: a name
    heard alike counts when none is written (False: only names in their own characters)."""
    gaz = _index(kb)["place"]
    hits = gaz.find_all(text or "") or (gaz.find_pinyin(text or "") if by_sound else [])
    return _merge_places(hits)


def extract_entities(text: str, kb: Any) -> list[Entity]:
    """All entities in `text`, offsets into `text`: training_type, job_type, place, money, duration, count."""
    if not text:
        return []
    out: list[Entity] = []
    idx = _index(kb)
    taken: list[tuple[int, int]] = []
    keys = None
    for type_ in ("training_type", "job_type"):
        gaz = idx[type_]
        hits = gaz.find_all(text)
        if not hits:
            if keys is None:
                keys = pinyin_key(text)
            hits = gaz.find_pinyin(text, keys)
        for start, end, _s, payload in hits:
            out.append(Entity(type_, payload, text[start:end], start, end))
    place_hits = idx["place"].find_all(text)
    if place_hits:
        merged = _merge_places(place_hits)
        if merged:
            start, end = place_hits[0][0], place_hits[-1][1]
            out.append(Entity("place", merged, text[start:end], start, end))
    if not _NUMERAL_RE.search(text):
        # no numeral, no amount, duration or head count (most messages)
        out.sort(key=lambda e: e.start)
        return out
    numbers = list(_number_spans(text))
    for f in _duration_spans(text, numbers):
        out.append(Entity("duration", f.value, text[f.start:f.end], f.start, f.end))
        taken.append((f.start, f.end))
    for f in _count_spans(text, bare=False, numbers=numbers):
        if not any(a <= f.start < b for a, b in taken):
            out.append(Entity("count", f.value, text[f.start:f.end], f.start, f.end))
            taken.append((f.start, f.end))
    for f in _money_spans(text, bare=False, numbers=numbers):
        if not any(a <= f.start < b for a, b in taken):
            out.append(Entity("money", f.value, text[f.start:f.end], f.start, f.end))
    out.sort(key=lambda e: e.start)
    return out
