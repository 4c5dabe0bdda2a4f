"""The plain classifier the router has to beat (issue #15): character 1–3-gram TF-IDF and logistic
regression (scikit-learn, defaults), one model for the intent and one for the topic, trained on exactly
what the router learns from (`bot.nlu.router.training_docs`: the entries' titles and questions, the intent
examples, the referrals' examples as out_of_scope, the topics' scope and the answers' sentences as topic evidence).

A yardstick for `gongyou nlu-eval` and benchmarks/nlu.py only: scikit-learn is a development dependency
(`pip install -e '.[dev]'`), never imported by the service.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from bot.knowledge import load_knowledge, read_yaml
from bot.nlu.router import NLU_DIR, REFERRALS_FILE, training_docs


class Baseline:
    def __init__(self, knowledge_dir: Path, kb=None):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        kb = kb or load_knowledge(Path(knowledge_dir))
        docs = training_docs(kb, read_yaml(Path(knowledge_dir) / NLU_DIR / "intents.yaml") or {},
                             read_yaml(Path(knowledge_dir) / REFERRALS_FILE) or {})
        intent_docs = [(t, lb.intent) for t, lb in docs if lb.intent]
        topic_docs = [(t, lb.topic) for t, lb in docs if lb.topic]

        def model():
            return make_pipeline(TfidfVectorizer(analyzer="char", ngram_range=(1, 3)),
                                 LogisticRegression(max_iter=2000))

        self.intent_model = model().fit([t for t, _ in intent_docs], [c for _, c in intent_docs])
        self.topic_model = model().fit([t for t, _ in topic_docs], [c for _, c in topic_docs])

    def predict(self, texts: list[str]) -> list[tuple[str, str]]:
        """(intent, topic) per text; the topic is the topic model's choice whatever the intent."""
        if not texts:
            return []
        return list(zip(self.intent_model.predict(texts), self.topic_model.predict(texts)))


@lru_cache(maxsize=4)
def get_baseline(knowledge_dir: Path) -> Baseline | None:
    """The baseline for a knowledge folder, or None when scikit-learn is not installed."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return None
    return Baseline(Path(knowledge_dir))
