"""Text normalisation for colloquial, typo-ridden Sichuanese messages.

Two levels:
- `fold` maps one character to one character (full-width → half-width, traditional → simplified,
  lower case), so entity offsets found on the folded text are offsets into the original message.
- `Normalizer.normalize` then removes emoji, punctuation runs and fillers, fixes typos/homophones of
  domain words and rewrites dialect into standard Mandarin, for scoring.
The maps are data in knowledge/nlu/ so officials and linguists can extend them without code.
"""

from __future__ import annotations

import re
from operator import add
from pathlib import Path
from typing import Iterable

from bot.knowledge import read_yaml
from bot.nlu.entities import pinyin_key

MAX_SCORED_CHARS = 300  # a 10,000-character paste is scored on its beginning only
COMMON_WORD_MAX = 4  # longest common word looked for around a suspected typo

_PUNCT_RE = re.compile(r"[^\w\u4e00-\u9fff]+")
_REPEAT_RE = re.compile(r"(.)\1{3,}")


def leading_texts(pattern: str) -> set[str] | None:
    """Texts one of which every match of `pattern` starts with (after a ^), or None when the
    pattern does not say: 找|介绍 → {找, 介绍}; (欠|拖欠)(了)?我 → {欠, 拖欠}."""
    try:
        parsed = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an unexpected construct: no shortcut, the pattern runs
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    return _leading(list(parsed))


def _leading(items: list) -> set[str] | None:
    c = re._constants  # type: ignore[attr-defined]
    while items and items[0][0] is c.AT and items[0][1] is c.AT_BEGINNING:
        items = items[1:]
    if not items:
        return None
    op, arg = items[0]
    if op is c.LITERAL:
        run = ""
        for op, arg in items:
            if op is not c.LITERAL:
                break
            run += chr(arg)
        return {run}
    if op is c.SUBPATTERN:
        return _leading(list(arg[-1]))
    if op is c.BRANCH:
        out: set[str] = set()
        for branch in arg[1]:
            sub = _leading(list(branch))
            if sub is None:
                return None
            out |= sub
        return out
    if op is c.IN and all(o is c.LITERAL for o, _a in arg):
        return {chr(a) for _o, a in arg}
    if op in (c.MAX_REPEAT, c.MIN_REPEAT) and arg[0] >= 1:
        return _leading(list(arg[2]))
    return None


def required_text(pattern: str) -> str:
    """A piece of text every match of `pattern` contains (its longest run of plain characters at the
    top level), or "" when there is none: `needle in text` is a far cheaper test than a search."""
    try:
        parsed = re._parser.parse(pattern)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an unexpected construct: no shortcut, the pattern runs
        return ""
    if parsed.state.flags & re.IGNORECASE:
        return ""
    best = run = ""
    for op, arg in parsed:
        if op is re._constants.LITERAL:  # type: ignore[attr-defined]
            run += chr(arg)
            if len(run) > len(best):
                best = run
        else:
            run = ""
    return best


def _load_trad_simp(path: Path) -> dict[int, int]:
    table: dict[int, int] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                continue
            for pair in line.split():
                if len(pair) == 2 and pair[0] != pair[1]:
                    table[ord(pair[0])] = ord(pair[1])
    return table


def _fullwidth_table() -> dict[int, int]:
    table = {0x3000: 0x20}
    for code in range(0xFF01, 0xFF5F):
        table[code] = code - 0xFEE0
    return table


NEGATIONS = frozenset("没不别莫未")


class Normalizer:
    def __init__(self, nlu_dir: Path, domain_words: Iterable[str] = ()):
        self.fold_table = _fullwidth_table() | _load_trad_simp(nlu_dir / "trad_simp.txt")
        for c in range(ord("A"), ord("Z") + 1):
            self.fold_table[c] = c + 32
        dialect = read_yaml(nlu_dir / "dialect.yaml") or {}
        homo = read_yaml(nlu_dir / "homophones.yaml") or {}
        self.homophones = {k: v for k, v in homo.items() if k != v}
        self.dialect = dict(dialect.get("replace") or {})
        # (pattern, replacement, text every match contains): most messages skip most patterns
        self.patterns = [(re.compile(p), r, required_text(p)) for p, r in dialect.get("patterns") or ()]
        fillers = [
            line.strip() for line in (nlu_dir / "fillers.txt").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        self.filler_re = re.compile("|".join(map(re.escape, sorted(fillers, key=len, reverse=True))))
        self.homo_re = self._alternation(self.homophones)
        self.dialect_re = self._alternation(self.dialect)
        # pinyin index of domain words: a homophone typo of one (扶平 for 扶贫) is rewritten to it
        self.domain: dict[str, str] = {}
        self.domain_lengths: list[int] = []
        self.known_words: set[str] = set()
        typos = set(self.homophones)
        for w in domain_words:
            if w in typos:
                continue
            if 2 <= len(w) <= 6 and all("\u4e00" <= c <= "\u9fff" for c in w):
                self.domain.setdefault(pinyin_key(w), w)
                self.known_words.add(w)
        self.domain_lengths = sorted({len(k) for k in self.domain}, reverse=True)
        # per first syllable, the lengths of the domain words starting with it (longest first)
        first: dict[str, set[int]] = {}
        for key in self.domain:
            first.setdefault(key[0], set()).add(len(key))
        self.domain_first = {syl: sorted(ls, reverse=True) for syl, ls in first.items()}
        # the first two syllables of every domain word (all have two or more): where none of them
        # starts, no domain word can
        self.domain_pairs = frozenset(key[:2] for key in self.domain)
        self.common_words: set[str] | frozenset[str] = frozenset()

    @staticmethod
    def _alternation(mapping: dict[str, str]) -> re.Pattern[str] | None:
        if not mapping:
            return None
        return re.compile("|".join(map(re.escape, sorted(mapping, key=len, reverse=True))))

    def fold(self, text: str) -> str:
        """One-to-one character folding; keeps offsets."""
        return text.translate(self.fold_table)

    def fix_homophones(self, text: str) -> str:
        if self.homo_re is not None:
            text = self.homo_re.sub(lambda m: self.homophones[m.group(0)], text)
        if not self.domain:
            return text
        keys = pinyin_key(text)
        pairs = self.domain_pairs
        # only positions where the first two syllables of a domain word stand are tried
        starts = [i for i, pair in enumerate(map(add, keys, keys[1:])) if pair in pairs]
        if not starts:
            return text
        out: list[str] = []
        pos = scan = 0  # copied up to / looked at up to
        n = len(text)
        first, domain = self.domain_first, self.domain
        for i in starts:
            if i < scan:
                continue
            for length in first[keys[i]]:
                if i + length > n:
                    continue
                word = domain.get(keys[i:i + length])
                if word is None:
                    continue
                surface = text[i:i + length]
                if surface[0] in NEGATIONS and word[0] not in NEGATIONS:
                    # 没发 is "not paid", never a typo of 美发: a negation is left alone
                    scan = i + length
                    break
                if surface == word or surface in self.known_words:
                    scan = i + length
                    break
                same = sum(a == b for a, b in zip(surface, word))
                # a real word that merely sounds alike (事业 / 失业), or a span cutting through one
                # (找工|作: 找 + 工作, not a typo of 招工), is left alone
                if same * 2 >= length and surface not in self.common_words and not self._crosses_word(
                    text, i, i + length
                ):
                    out.append(text[pos:i])
                    out.append(word)
                    pos = scan = i + length
                    break
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)

    def _crosses_word(self, text: str, i: int, j: int) -> bool:
        """Whether a common word overlaps text[i:j] and reaches outside it."""
        common = self.common_words
        n = len(text)
        for s in range(max(0, i - COMMON_WORD_MAX + 1), j):
            for e in range(max(s + 2, i + 1), min(n, s + COMMON_WORD_MAX) + 1):
                if (s < i or e > j) and text[s:e] in common:
                    return True
        return False

    def normalize(self, text: str, *, folded: bool = False) -> str:
        text = text[:MAX_SCORED_CHARS]
        if not folded:
            text = self.fold(text)
        text = _PUNCT_RE.sub(" ", text)
        if _REPEAT_RE.search(text) is not None:  # a search is cheaper than a sub with a template
            text = _REPEAT_RE.sub(r"\1\1", text)
        text = self.fix_homophones(text)
        if self.dialect_re is not None:
            text = self.dialect_re.sub(lambda m: self.dialect[m.group(0)], text)
        for pattern, repl, needle in self.patterns:
            if needle in text:
                text = pattern.sub(repl, text)
        stripped = self.filler_re.sub(" ", text)
        if stripped.strip():
            text = stripped
        return " ".join(text.split())
