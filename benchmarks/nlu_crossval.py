"""Cross-validation of the router on the knowledge itself: no dev data involved.

Every fifth policy question and intent example (by a hash of its text, folds 0 and 1 by default) is held out,
the router is rebuilt on the rest, and the held-out ones are parsed: how many policy questions it recognises
as policy questions, how many with their entry's topic too, and how many of the other intents' examples it
gets right. The paraphrases of one entry resemble each other, so the figures flatter the router; they serve
to compare two versions of it (the decision constants of bot/nlu/router.py were set with it and the dev A
halves), a few hundred held-out messages where a dev half has a hundred or two. The baseline of
bot/nlu/baseline.py, trained on the same fold, is printed below the router when scikit-learn is installed.

    .venv/bin/python benchmarks/nlu_crossval.py [--folds 0 1] [--knowledge-dir knowledge]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fold_of(text: str, folds: int = 5) -> int:
    return hashlib.md5(text.encode("utf-8")).digest()[0] % folds


def run_fold(knowledge_dir: Path, fold: int, scratch: Path) -> tuple[int, ...]:
    """(policy questions held out, recognised as policy, with the right topic, other examples held out, right),
    then the same four counts of the baseline trained on the same fold (zeros without scikit-learn)."""
    from bot.knowledge import load_knowledge, read_yaml
    from bot.nlu.router import NLU_DIR, Router

    kb = load_knowledge(knowledge_dir)
    intents = read_yaml(knowledge_dir / NLU_DIR / "intents.yaml") or {}
    folder = scratch / f"fold{fold}"
    shutil.copytree(knowledge_dir, folder)
    held: list[tuple[str, str, str | None]] = []
    kept: dict[str, list[str]] = {}
    for intent, examples in (intents.get("examples") or {}).items():
        kept[intent] = [str(e) for e in examples if fold_of(str(e)) != fold]
        held += [(str(e), intent, None) for e in examples if fold_of(str(e)) == fold]
    (folder / NLU_DIR / "intents.yaml").write_text(
        yaml.safe_dump({**intents, "examples": kept}, allow_unicode=True), encoding="utf-8")
    entries = {}
    for eid, entry in kb.entries.items():
        entries[eid] = dataclasses.replace(entry, questions=tuple(q for q in entry.questions if fold_of(q) != fold))
        held += [(q, "policy_question", entry.topic) for q in entry.questions if fold_of(q) == fold]
    fold_kb = dataclasses.replace(kb, entries=entries, directory=folder)
    router = Router(folder, kb=fold_kb)
    predicted = [(p.intent, p.topic) for p in map(router.parse, (text for text, _i, _t in held))]
    try:
        from bot.nlu.baseline import Baseline

        base = Baseline(folder, kb=fold_kb).predict([text for text, _i, _t in held])
    except ImportError:
        base = None
    return _count(held, predicted) + (_count(held, base) if base else (0,) * 5)


def _count(held: list[tuple[str, str, str | None]], predicted: list[tuple[str, str | None]]) -> tuple[int, ...]:
    policy = recognised = topic = others = right = 0
    for (_text, intent, want_topic), (got, got_topic) in zip(held, predicted):
        if intent == "policy_question":
            policy += 1
            recognised += got == intent
            topic += got == intent and got_topic == want_topic
        else:
            others += 1
            right += got == intent
    return policy, recognised, topic, others, right


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--knowledge-dir", type=Path, default=ROOT / "knowledge")
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gongyou-nlu-cv-") as tmp:
        scratch = Path(tmp)
        # the rebuilt routers' caches go to the scratch folder, not the service's cache
        os.environ["GONGYOU_CACHE_DIR"] = str(scratch / "cache")
        totals = [0] * 10
        for fold in args.folds:
            totals = [a + b for a, b in zip(totals, run_fold(args.knowledge_dir.resolve(), fold, scratch))]
    policy, _r, _t, others, _o = totals[:5]
    print(f"held out (folds {' '.join(map(str, args.folds))} of 5): {policy} policy questions, {others} other examples")
    rows = [("router", totals[:5])] + ([("baseline", totals[5:])] if totals[5] else [])
    for name, (policy, recognised, topic, others, right) in rows:
        print(f"{name}: policy questions recognised as such: {recognised / policy:.1%}; with their topic: "
              f"{topic / policy:.1%}; other intents right: {right / others:.1%}; all held-out intents right: "
              f"{(recognised + right) / (policy + others):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
