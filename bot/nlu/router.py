"""The intent router: normalise, segment, classify, retrieve, add cues, decide.

Three signals, learnt at start-up from everything in knowledge/ (every policy entry's questions and
title — each entry knows its topic — and the intent examples of knowledge/nlu/intents.yaml):
- a multinomial naive Bayes over character 1–3-grams and jieba words, one for the intent and one for
  the topic. It generalises from all the phrasings of a class at once, so a message that resembles no
  single example still lands in the right class; it trains by counting, in a few tens of milliseconds.
- nearest-neighbour retrieval (TF-IDF character bigrams and words through an inverted index): the most
  similar question picks the policy entry, and a close paraphrase is strong evidence for its class.
- weighted cue patterns (knowledge/nlu/cues.yaml) for the labelling conventions that similarity gets
  wrong (a labourer's own wage arrears is a complaint, a general "who do I ask about arrears" is a
  policy question).
Low evidence becomes `out_of_scope`: the bot says it did not understand rather than answering a guess.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge import KnowledgeBase
from bot.nlu.entities import extract_entities
from bot.nlu.normalize import MAX_SCORED_CHARS, Normalizer
from bot.nlu.types import INTENTS, TOPICS, Candidate, Parse

NLU_DIR = "nlu"
OUT_OF_SCOPE = "out_of_scope"

# Decision constants, set by measurement on half A of the dev set and checked on half B
# (python -m bot.nlu.evaluate FILE --half A|B; benchmarks/nlu.py for speed).
MIN_SCORE = 0.30  # retrieval + cue evidence below this (scaled by length) is not trusted
MIN_SCORE_DOMAIN = 0.0  # a message naming something of ours (培训, 社保, 护林员 …) is never dropped for weak evidence
TIE_MARGIN = 0.04  # best two closer than this → ask which one
NB_WEIGHT = 0.4  # the classifiers' posterior counts this much next to the retrieval cosine
NB_TEMPERATURE = 4.0  # naive Bayes is overconfident: its log-odds are flattened before the softmax
NB_UNIGRAMS = True  # single characters as classifier features
NB_ALPHA = 0.3  # additive smoothing of the feature counts
RETRIEVAL_MAX_FEATURES = 16  # the query's highest-weighted features only
RETRIEVAL_DF_DIVISOR = 20  # retrieval ignores features in more than 1/this of the documents
STOP_CHARS = frozenset("的了吗么呢吧啊呀哦嘛不没是我你他她它们这那个一有在要想就也都还和跟与及把被给")
N_INTENTS = len(INTENTS)
N_TOPICS = len(TOPICS)
POLICY = INTENTS.index("policy_question")
# a message without one Chinese character is scored only through the exact commands (T, TD, hello)
_HAS_WORD_RE = re.compile(r"[\u4e00-\u9fff]")
_EXACT_STRIP_RE = re.compile(r"[^\w\u4e00-\u9fff]+")


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


class _NaiveBayes:
    """Multinomial naive Bayes over binary features with uniform class priors.

    Stored sparsely: a feature keeps, per class it was seen in, its log-probability minus the class's
    unseen-feature log-probability, so scoring a message touches only the classes each feature knows.
    """

    def __init__(self, classes: tuple[str, ...], samples: list[tuple[frozenset[str], str]], alpha: float):
        self.classes = classes
        index = {c: i for i, c in enumerate(classes)}
        counts: dict[str, dict[int, int]] = {}
        totals = [0] * len(classes)
        for feats, label in samples:
            k = index[label]
            totals[k] += len(feats)
            for f in feats:
                per = counts.get(f)
                if per is None:
                    counts[f] = {k: 1}
                else:
                    per[k] = per.get(k, 0) + 1
        vocab = len(counts) or 1
        denom = [math.log(t + alpha * vocab) for t in totals]
        self.unseen = [math.log(alpha) - d for d in denom]
        self.weights: dict[str, tuple[tuple[int, float], ...]] = {
            f: tuple((k, math.log(1 + n / alpha)) for k, n in per.items()) for f, per in counts.items()
        }
        # a class nobody gave examples for is never predicted
        self.empty = [t == 0 for t in totals]

    def posterior(self, feats: frozenset[str] | set[str]) -> list[float]:
        weights = self.weights
        scores = [0.0] * len(self.classes)
        known = 0
        for f in feats:
            w = weights.get(f)
            if w is not None:
                known += 1
                for k, d in w:
                    scores[k] += d
        return self.softmax(scores, known)

    def softmax(self, scores: list[float], known: int) -> list[float]:
        """Posterior from the summed sparse weights of `known` features in the vocabulary."""
        scores = [(s + known * u) / NB_TEMPERATURE if not e else -1e9
                  for s, u, e in zip(scores, self.unseen, self.empty)]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        z = sum(exps)
        return [e / z for e in exps]


class Router:
    def __init__(self, knowledge_dir: Path, kb: KnowledgeBase | None = None):
        from bot.knowledge import load_knowledge

        self.knowledge_dir = Path(knowledge_dir)
        self.kb = kb or load_knowledge(self.knowledge_dir)
        nlu_dir = self.knowledge_dir / NLU_DIR
        self.tokenizer = _make_tokenizer(nlu_dir, self.kb)
        self.segmenter = _Segmenter(self.tokenizer)
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
        self.first_entry = {}
        for entry in self.kb.entries.values():
            self.first_entry.setdefault(entry.topic, entry.id)
        self._build(docs)

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

    def _tokens(self, norm: str) -> list[str]:
        return self.segmenter.cut(norm) if norm else []

    @staticmethod
    def _features(norm: str, tokens: list[str]) -> tuple[set[str], dict[str, float]]:
        """Binary features for the classifiers; weighted ones (bigrams, words) for retrieval."""
        cls: set[str] = set()
        ret: dict[str, float] = {}
        for chunk in norm.split():
            n = len(chunk)
            cls.add("^" + chunk[0])
            for i in range(n):
                ch = chunk[i]
                if NB_UNIGRAMS and ch not in STOP_CHARS:
                    cls.add(ch)
                if i + 1 < n:
                    bg = chunk[i:i + 2]
                    cls.add(bg)
                    ret[bg] = ret.get(bg, 0.0) + 1.0
                    if i + 2 < n:
                        cls.add(chunk[i:i + 3])
        for tok in tokens:
            if len(tok) >= 2:
                w = "w:" + tok
                cls.add(w)
                ret[w] = ret.get(w, 0.0) + 1.0
        return cls, ret

    def _build(self, docs: list[tuple[str, _Label]]) -> None:
        self.labels: list[_Label] = []
        raw: list[dict[str, float]] = []
        intent_samples: list[tuple[frozenset[str], str]] = []
        topic_samples: list[tuple[frozenset[str], str]] = []
        df: dict[str, int] = {}
        seen: set[tuple[str, _Label]] = set()
        for text, label in docs:
            norm = self.normalizer.normalize(text)
            if not norm or (norm, label) in seen:
                continue
            seen.add((norm, label))
            cls, ret = self._features(norm, self._tokens(norm))
            intent_samples.append((frozenset(cls), label.intent))
            if label.topic:
                topic_samples.append((frozenset(cls), label.topic))
            raw.append(ret)
            self.labels.append(label)
            for k in ret:
                df[k] = df.get(k, 0) + 1
        self.intent_nb = _NaiveBayes(INTENTS, intent_samples, NB_ALPHA)
        self.topic_nb = _NaiveBayes(TOPICS, topic_samples, NB_ALPHA)
        # one dictionary lookup per feature serves both classifiers
        self.nb_weights = {
            f: (self.intent_nb.weights.get(f, ()), self.topic_nb.weights.get(f, ()))
            for f in self.intent_nb.weights.keys() | self.topic_nb.weights.keys()
        }
        intent_index = {c: i for i, c in enumerate(INTENTS)}
        topic_index = {c: i for i, c in enumerate(TOPICS)}
        self.doc_intent = [intent_index[lb.intent] for lb in self.labels]
        self.doc_topic = [topic_index[lb.topic] if lb.topic else -1 for lb in self.labels]
        self.doc_entry = [lb.entry_id for lb in self.labels]
        self.cue_table = [
            (c.pattern, c.unless, c.weight, intent_index[c.intent], topic_index[c.topic] if c.topic else -1,
             c.unless_domain)
            for c in self.cues
        ]
        n = len(raw) or 1
        # features in more than a tenth of the documents say little and cost the most to score
        limit = max(20, n // RETRIEVAL_DF_DIVISOR)
        self.idf = {k: math.log((n + 1) / (v + 1)) + 1.0 for k, v in df.items() if v <= limit}
        index: dict[str, list[tuple[int, float]]] = {}
        for i, f in enumerate(raw):
            vec = {k: (1 + math.log(v)) * self.idf[k] for k, v in f.items() if k in self.idf}
            norm = math.sqrt(sum(w * w for w in vec.values())) or 1.0
            for k, w in vec.items():
                index.setdefault(k, []).append((i, w / norm))
        self.index = {k: tuple(v) for k, v in index.items()}

    @staticmethod
    def _exact_key(text: str) -> str:
        return _EXACT_STRIP_RE.sub("", text).lower()

    # ---------------------------------------------------------------- parsing

    def _retrieve(self, ret: dict[str, float]) -> dict[int, float]:
        idf = self.idf
        vec = []
        sq = 0.0
        for k, v in ret.items():
            w = 1 + math.log(v)
            i = idf.get(k)
            if i is not None:
                w *= i
                vec.append((k, w))
            # unknown features still count in the query norm: a message mostly about something else scores low
            sq += w * w
        scores: dict[int, float] = {}
        if not vec:
            return scores
        if len(vec) > RETRIEVAL_MAX_FEATURES:
            # a long message is matched on its rarest words: bounded cost, nearly the same cosine
            vec.sort(key=lambda kv: kv[1], reverse=True)
            del vec[RETRIEVAL_MAX_FEATURES:]
        qn = 1.0 / math.sqrt(sq)
        index = self.index
        get = scores.get
        for k, w in vec:
            qw = w * qn
            for doc, dw in index[k]:
                scores[doc] = get(doc, 0.0) + qw * dw
        return scores

    def parse(self, text: str) -> Parse:
        text = text if isinstance(text, str) else str(text or "")
        folded = self.normalizer.fold(text[:MAX_SCORED_CHARS])
        norm = self.normalizer.normalize(folded, folded=True)
        tokens = self._tokens(norm)
        entities = extract_entities(folded, self.kb) if norm else []
        key = self._exact_key(folded)
        exact = self.exact.get(key) if key else None
        if exact:
            cand = Candidate(exact, 1.0)
            return Parse(text, norm, exact, 1.0, None, None, entities, tokens, [cand], [])
        if not norm or not _HAS_WORD_RE.search(norm):
            return self._out_of_scope(text, norm, entities, tokens, 1.0, [])

        cls, ret = self._features(norm, tokens)
        doc_scores = self._retrieve(ret)
        # best retrieval score per intent and per topic (with the entry it came from)
        intent_best = [0.0] * N_INTENTS
        topic_best = [0.0] * N_TOPICS
        topic_doc = [-1] * N_TOPICS
        doc_intent, doc_topic = self.doc_intent, self.doc_topic
        for doc, s in doc_scores.items():
            k = doc_intent[doc]
            if s > intent_best[k]:
                intent_best[k] = s
            t = doc_topic[doc]
            if t >= 0 and s > topic_best[t]:
                topic_best[t] = s
                topic_doc[t] = doc
        domain = self.domain_re.search(norm) is not None
        cue_bonus = [0.0] * N_INTENTS
        topic_boost = [0.0] * N_TOPICS
        for cue_re, unless, weight, k, t, unless_domain in self.cue_table:
            if cue_re.search(norm) and not (unless is not None and unless.search(norm)) and not (
                unless_domain and domain
            ):
                if t >= 0:
                    topic_boost[t] += weight
                else:
                    cue_bonus[k] += weight

        p_intent, p_topic = self._posteriors(cls)
        scores = [NB_WEIGHT * p + r + c for p, r, c in zip(p_intent, intent_best, cue_bonus)]
        topic_scores = [NB_WEIGHT * p + r + c for p, r, c in zip(p_topic, topic_best, topic_boost)]
        top_topic = max(topic_scores)
        policy = scores[POLICY]
        # (score, intent index, topic index): one policy candidate per topic — the ambiguity question
        # offers different subjects, not two answers of one
        candidates = [(s, k, -1) for k, s in enumerate(scores) if k != POLICY]
        candidates.extend((policy + s - top_topic, POLICY, t) for t, s in enumerate(topic_scores))
        candidates.sort(reverse=True)
        del candidates[5:]
        ranking = []
        for s, k, t in candidates:
            if t < 0:
                ranking.append(Candidate(INTENTS[k], round(_confidence(s), 4)))
            else:
                doc = topic_doc[t]
                entry = self.doc_entry[doc] if doc >= 0 else self.first_entry.get(TOPICS[t])
                ranking.append(Candidate("policy_question", round(_confidence(s), 4), TOPICS[t], entry))
        best_score, best_k, best_t = candidates[0]
        best = ranking[0]
        confidence = _confidence(best_score)
        # evidence: how close the nearest example is, plus the cues; the classifiers' posterior is
        # relative and says nothing about whether the message is ours at all
        evidence = intent_best[best_k] + cue_bonus[best_k]
        if best_k == POLICY:
            evidence += max(topic_boost)
        # long messages spread their weight over many words: the bar is lower, the ranking unchanged
        scale = math.sqrt(12 / max(len(norm), 12))
        min_score = MIN_SCORE_DOMAIN * scale if domain else max(0.14, MIN_SCORE * scale)
        if best.intent == OUT_OF_SCOPE or evidence < min_score:
            conf = confidence if best.intent == OUT_OF_SCOPE else 1 - _confidence(evidence + NB_WEIGHT)
            return self._out_of_scope(text, norm, entities, tokens, conf, ranking)
        ambiguous: list[Candidate] = []
        close = [rc for (s, _k, _t), rc in zip(candidates[:3], ranking[:3])
                 if best_score - s < TIE_MARGIN and rc.intent != OUT_OF_SCOPE]
        if len(close) >= 2:
            ambiguous = close
        return Parse(
            text, norm, best.intent, round(confidence, 4), best.topic, best.entry_id,
            entities, tokens, ranking, ambiguous,
        )

    def _posteriors(self, feats: set[str]) -> tuple[list[float], list[float]]:
        """Naive Bayes posteriors of the intents and of the topics, in one pass over the features."""
        weights = self.nb_weights
        si = [0.0] * N_INTENTS
        st = [0.0] * N_TOPICS
        known_i = known_t = 0
        for f in feats:
            w = weights.get(f)
            if w is None:
                continue
            wi, wt = w
            if wi:
                known_i += 1
                for k, d in wi:
                    si[k] += d
            if wt:
                known_t += 1
                for k, d in wt:
                    st[k] += d
        return self.intent_nb.softmax(si, known_i), self.topic_nb.softmax(st, known_t)

    @staticmethod
    def _out_of_scope(text: str, norm: str, entities: list, tokens: list[str], confidence: float,
                      ranking: list[Candidate]) -> Parse:
        confidence = round(min(1.0, max(confidence, 0.5)), 4)
        ranking = [Candidate(OUT_OF_SCOPE, confidence), *(c for c in ranking if c.intent != OUT_OF_SCOPE)][:5]
        return Parse(text, norm, OUT_OF_SCOPE, confidence, None, None, entities, tokens, ranking, [])


def _confidence(score: float) -> float:
    """Map a raw score (classifier share, cosine and cue weights) to 0..1: 0.45 → 0.5, 0.75 → ~0.9."""
    return 1.0 / (1.0 + math.exp(-7.0 * (score - MIN_SCORE - 0.15)))


_RUN_RE = re.compile(r"[\u4e00-\u9fff]+|[a-z0-9]+|[^\s]")


class _Segmenter:
    """jieba's dictionary segmentation without HMM (the most probable path through the word DAG),
    inlined for the normalised text: about twice as fast as `Tokenizer.lcut`, same dictionary."""

    def __init__(self, tokenizer: Any):
        self.freq = tokenizer.FREQ  # words with their counts, and every prefix of a word with 0
        logtotal = math.log(tokenizer.total)
        self.logp = {w: math.log(f) - logtotal for w, f in tokenizer.FREQ.items() if f}
        self.unknown = -logtotal

    def cut(self, text: str) -> list[str]:
        out: list[str] = []
        freq, logp, unknown = self.freq, self.logp, self.unknown
        for run in _RUN_RE.findall(text):
            n = len(run)
            if n == 1 or not ("\u4e00" <= run[0] <= "\u9fff"):
                out.append(run)
                continue
            best = [0.0] * (n + 1)
            end = [0] * n
            for i in range(n - 1, -1, -1):
                # as jieba: a character without a count of its own is only a word when no longer word starts there
                lp = logp.get(run[i])
                score, stop = (lp if lp is not None else -math.inf) + best[i + 1], i
                j = i + 2
                frag = run[i:j]
                while j <= n and frag in freq:
                    lp = logp.get(frag)
                    if lp is not None and lp + best[j] >= score:
                        score, stop = lp + best[j], j - 1
                    j += 1
                    frag = run[i:j]
                if score == -math.inf:
                    score = unknown + best[i + 1]
                best[i] = score
                end[i] = stop
            i = 0
            while i < n:
                j = end[i] + 1
                out.append(run[i:j])
                i = j
        return out


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
