"""The intent router: normalise, segment, retrieve, add cues, decide.

Scoring is nearest-neighbour retrieval over everything the router learns from — every policy entry's
questions and title (each entry knows its topic) and the intent examples of knowledge/nlu/intents.yaml —
with TF-IDF weighted character n-grams and jieba words, through an inverted index so a message costs
a few hundred dictionary operations. Weighted cue patterns (knowledge/nlu/cues.yaml) then encode the
labelling conventions that similarity alone gets wrong (a labourer's own wage arrears is a complaint,
a general "who do I ask about arrears" is a policy question). Low scores become `out_of_scope`:
the bot says it did not understand rather than answering a guess.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge import KnowledgeBase
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import MAX_SCORED_CHARS, Normalizer
from bot.nlu.types import INTENTS, Candidate, Parse

NLU_DIR = "nlu"
OUT_OF_SCOPE = "out_of_scope"

# Decision constants, set by measurement on the dev set (benchmarks/nlu.py, python -m bot.nlu.evaluate).
MIN_SCORE = 0.30  # below this the best candidate is not trusted
TIE_MARGIN = 0.04  # best two closer than this → ask which one
STOP_CHARS = set("的了吗么呢吧啊呀哦嘛不没是我你他她它们这那个一有在要想就也都还和跟与及把被给")


@dataclass(frozen=True)
class _Label:
    intent: str
    topic: str | None = None
    entry_id: str | None = None


@dataclass(frozen=True)
class _Cue:
    intent: str
    pattern: re.Pattern[str]
    weight: float
    unless: re.Pattern[str] | None
    topic: str | None
    unless_domain: bool = False


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader, the C one when available


class Router:
    def __init__(self, knowledge_dir: Path, kb: KnowledgeBase | None = None):
        from bot.knowledge import load_knowledge

        self.knowledge_dir = Path(knowledge_dir)
        self.kb = kb or load_knowledge(self.knowledge_dir)
        nlu_dir = self.knowledge_dir / NLU_DIR
        self.tokenizer = _make_tokenizer(nlu_dir, self.kb)
        domain = set(self._domain_words(nlu_dir))
        self.domain_re = re.compile("|".join(map(re.escape, sorted((w for w in domain if len(w) >= 2), key=len, reverse=True))) or "(?!)")
        self.normalizer = Normalizer(nlu_dir, domain)
        self.normalizer.common_words = _CommonWords(self.tokenizer, domain)
        self.exact: dict[str, str] = {}
        intents_doc = _read_yaml(nlu_dir / "intents.yaml") or {}
        for intent, phrases in (intents_doc.get("exact") or {}).items():
            for p in phrases:
                self.exact[self._exact_key(str(p))] = intent
        self.cues = [
            _Cue(
                intent=c["intent"],
                pattern=re.compile(c["pattern"]),
                weight=float(c["weight"]),
                unless=re.compile(c["unless"]) if c.get("unless") else None,
                topic=c.get("topic"),
                unless_domain=bool(c.get("unless_domain")),
            )
            for c in (_read_yaml(nlu_dir / "cues.yaml") or [])
        ]
        docs: list[tuple[str, _Label]] = []
        for entry in self.kb.entries.values():
            label = _Label("policy_question", entry.topic, entry.id)
            docs.append((entry.title, label))
            docs.extend((q, label) for q in entry.questions)
        for intent, examples in (intents_doc.get("examples") or {}).items():
            if intent not in INTENTS:
                raise ValueError(f"intents.yaml: unknown intent {intent!r}")
            docs.extend((str(e), _Label(intent)) for e in examples)
        self._build_index(docs)

    # ---------------------------------------------------------------- building

    def _domain_words(self, nlu_dir: Path) -> list[str]:
        words = []
        path = nlu_dir / "userdict.txt"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.startswith("#"):
                    words.append(line.split()[0])
        for item in (*self.kb.training_types, *self.kb.job_types, *self.kb.formats):
            words.append(item.name)
            words.extend(item.aliases)
        return words

    def _features(self, text: str, tokens: list[str] | None = None) -> dict[str, float]:
        feats: dict[str, float] = defaultdict(float)
        for chunk in text.split():
            for i, ch in enumerate(chunk):
                if ch not in STOP_CHARS:
                    feats[ch] += 0.5
                if i + 1 < len(chunk):
                    feats[chunk[i:i + 2]] += 1.0
        for tok in tokens if tokens is not None else self.tokenizer.lcut(text, HMM=False):
            if len(tok) >= 2 and not tok.isspace():
                feats["w:" + tok] += 1.0
        return feats

    def _build_index(self, docs: list[tuple[str, _Label]]) -> None:
        self.labels: list[_Label] = []
        raw: list[dict[str, float]] = []
        df: dict[str, int] = defaultdict(int)
        seen: set[tuple[str, _Label]] = set()
        for text, label in docs:
            norm = self.normalizer.normalize(text)
            if not norm or (norm, label) in seen:
                continue
            seen.add((norm, label))
            f = self._features(norm)
            raw.append(f)
            self.labels.append(label)
            for k in f:
                df[k] += 1
        n = len(raw) or 1
        # features in more than a tenth of the documents say little and cost the most to score
        common = {k for k, v in df.items() if v > max(20, n // 10)}
        for f in raw:
            for k in common & f.keys():
                del f[k]
        self.idf = {k: math.log((n + 1) / (v + 1)) + 1.0 for k, v in df.items() if k not in common}
        self.common_features = common
        self.index: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for i, f in enumerate(raw):
            vec = {k: (1 + math.log(v)) * self.idf[k] if v >= 1 else v * self.idf[k] for k, v in f.items()}
            norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
            for k, w in vec.items():
                self.index[k].append((i, w / norm))
        self.index = dict(self.index)

    @staticmethod
    def _exact_key(text: str) -> str:
        return re.sub(r"[^\w\u4e00-\u9fff]+", "", text).lower()

    # ---------------------------------------------------------------- parsing

    def _retrieve(self, norm: str, tokens: list[str]) -> dict[int, float]:
        f = self._features(norm, tokens)
        vec = {}
        for k, v in f.items():
            if k in self.common_features:
                continue
            idf = self.idf.get(k)
            if idf is not None:
                vec[k] = (1 + math.log(v)) * idf if v >= 1 else v * idf
        # unknown features still count in the query norm: a message mostly about something else scores low
        unknown = sum(((1 + math.log(v)) if v >= 1 else v) ** 2 for k, v in f.items()
                      if k not in vec and k not in self.common_features)
        qn = math.sqrt(sum(w * w for w in vec.values()) + unknown) or 1.0
        scores: dict[int, float] = defaultdict(float)
        for k, w in vec.items():
            qw = w / qn
            for doc, dw in self.index[k]:
                scores[doc] += qw * dw
        return scores

    def parse(self, text: str) -> Parse:
        text = text if isinstance(text, str) else str(text or "")
        folded = self.normalizer.fold(text[:MAX_SCORED_CHARS])
        norm = self.normalizer.normalize(text)
        tokens = [t for t in self.tokenizer.lcut(norm, HMM=False) if not t.isspace()] if norm else []
        entities = extract_entities(folded, self.kb) if norm else []
        key = self._exact_key(folded)
        exact = self.exact.get(key) if key else None
        if exact:
            cand = Candidate(exact, 1.0)
            return Parse(text, norm, exact, 1.0, None, None, entities, tokens, [cand], [])
        if not norm or not re.search(r"[\u4e00-\u9fffa-z]", norm):
            cand = Candidate(OUT_OF_SCOPE, 1.0)
            return Parse(text, norm, OUT_OF_SCOPE, 1.0, None, None, entities, tokens, [cand], [])

        doc_scores = self._retrieve(norm, tokens)
        # best score per intent, and per policy entry
        intent_best: dict[str, float] = defaultdict(float)
        entry_best: dict[str, float] = defaultdict(float)
        entry_label: dict[str, _Label] = {}
        for doc, s in doc_scores.items():
            label = self.labels[doc]
            if label.entry_id:
                if s > entry_best[label.entry_id]:
                    entry_best[label.entry_id] = s
                    entry_label[label.entry_id] = label
            elif s > intent_best[label.intent]:
                intent_best[label.intent] = s
        topic_boost: dict[str, float] = defaultdict(float)
        cue_bonus: dict[str, float] = defaultdict(float)
        for cue in self.cues:
            if cue.pattern.search(norm) and not (cue.unless and cue.unless.search(norm)) and not (
                cue.unless_domain and self.domain_re.search(norm)
            ):
                if cue.topic:
                    topic_boost[cue.topic] += cue.weight
                else:
                    cue_bonus[cue.intent] += cue.weight
        for eid, s in entry_best.items():
            entry_best[eid] = s + topic_boost.get(entry_label[eid].topic, 0.0)
        ranked_entries = sorted(entry_best.items(), key=lambda kv: kv[1], reverse=True)
        if ranked_entries:
            intent_best["policy_question"] = max(intent_best["policy_question"], ranked_entries[0][1])

        final: dict[str, float] = {}
        for intent in INTENTS:
            s = intent_best.get(intent, 0.0) + cue_bonus.get(intent, 0.0)
            if s > 0:
                final[intent] = s
        if not final:
            cand = Candidate(OUT_OF_SCOPE, 1.0)
            return Parse(text, norm, OUT_OF_SCOPE, 1.0, None, None, entities, tokens, [cand], [])

        candidates: list[tuple[float, Candidate]] = []
        for intent, s in final.items():
            if intent == "policy_question":
                continue
            candidates.append((s, Candidate(intent, 0.0)))
        policy_bonus = final.get("policy_question", 0.0) - (ranked_entries[0][1] if ranked_entries else 0.0)
        seen_topics: set[str] = set()
        for eid, s in ranked_entries[:8]:
            label = entry_label[eid]
            # one candidate per topic: the ambiguity question offers different subjects, not two answers of one
            if label.topic in seen_topics:
                continue
            seen_topics.add(label.topic)
            candidates.append((s + max(policy_bonus, 0.0), Candidate("policy_question", 0.0, label.topic, eid)))
        candidates.sort(key=lambda c: c[0], reverse=True)
        ranking = [
            Candidate(c.intent, round(_confidence(s), 4), c.topic, c.entry_id) for s, c in candidates[:5]
        ]
        best_score, best = candidates[0]
        confidence = _confidence(best_score)
        ambiguous: list[Candidate] = []
        # long messages spread their weight over many words: the bar is lower, the ranking unchanged
        min_score = max(0.14, MIN_SCORE * math.sqrt(12 / max(len(norm), 12)))
        if best.intent == OUT_OF_SCOPE or best_score < min_score:
            return Parse(text, norm, OUT_OF_SCOPE, round(max(confidence, 1 - confidence), 4) if best.intent == OUT_OF_SCOPE else round(1 - confidence, 4),
                         None, None, entities, tokens, ranking, [])
        close = [rc for (s, _c), rc in zip(candidates[:3], ranking[:3])
                 if best_score - s < TIE_MARGIN and rc.intent != OUT_OF_SCOPE]
        if len(close) >= 2:
            ambiguous = close
        return Parse(
            text, norm, best.intent, round(confidence, 4), best.topic, best.entry_id,
            entities, tokens, ranking, ambiguous,
        )


def _confidence(score: float) -> float:
    """Map a raw score (cosine plus cue weights) to 0..1: 0.3 → ~0.5, 0.6 → ~0.9."""
    return 1.0 / (1.0 + math.exp(-9.0 * (score - MIN_SCORE)))


class _CommonWords:
    """Membership in jieba's general dictionary, minus our domain words: such words are not typos."""

    def __init__(self, tokenizer: Any, domain: set[str]):
        self.freq = tokenizer.FREQ
        self.domain = domain

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word not in self.domain and self.freq.get(word, 0) > 50


def _make_tokenizer(nlu_dir: Path, kb: KnowledgeBase) -> Any:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    # jieba's full dictionary (350k words) takes about a second to load; the 25k most frequent words
    # (knowledge/nlu/vocab.txt) segment these short messages as well and load in a fraction of it.
    vocab = nlu_dir / "vocab.txt"
    tok = jieba.Tokenizer(str(vocab)) if vocab.exists() else jieba.Tokenizer()
    cache_dir = Path(os.environ.get("GONGYOU_CACHE_DIR") or tempfile.gettempdir())
    tok.tmp_dir = str(cache_dir)
    tok.initialize()
    userdict = nlu_dir / "userdict.txt"
    if userdict.exists():
        tok.load_userdict(str(userdict))
    for item in (*kb.training_types, *kb.job_types, *kb.formats):
        for w in (item.name, *item.aliases):
            if w and " " not in w:
                tok.add_word(w, 1000)
    return tok


_ROUTERS: dict[Path, Router] = {}
_LOCK = threading.Lock()


def get_router(knowledge_dir: Path) -> Router:
    """One router per knowledge directory, built once (thread-safe)."""
    key = Path(knowledge_dir).resolve()
    router = _ROUTERS.get(key)
    if router is None:
        with _LOCK:
            router = _ROUTERS.get(key)
            if router is None:
                router = Router(key)
                _ROUTERS[key] = router
    return router


def reset_routers() -> None:
    """Forget built routers (after an official edits the knowledge)."""
    with _LOCK:
        _ROUTERS.clear()
