"""Evaluate the router on a labelled JSONL file, printed like `rasa test nlu`.

    python -m bot.nlu.evaluate tests/data/nlu_dev.jsonl --min-accuracy 0.95 --min-topic-accuracy 0.92

Each line: {"text": ..., "intent": ..., "topic": ... (policy_question only)}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from bot.nlu.router import get_router

DEFAULT_KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"


def load_rows(path: Path) -> list[dict]:
    rows = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if "text" not in row or "intent" not in row:
                raise ValueError(f"{path}:{n}: each line needs text and intent")
            rows.append(row)
    return rows


def half_of(text: str) -> str:
    """A fixed split of a labelled set into halves A and B: tune on one, check on the other."""
    return "A" if hashlib.md5(text.encode("utf-8")).digest()[0] % 2 == 0 else "B"


def evaluate(rows: list[dict], knowledge_dir: Path) -> dict:
    """Predictions and scores, for callers that want numbers rather than a report."""
    router = get_router(knowledge_dir)
    results = []
    for row in rows:
        p = router.parse(row["text"])
        results.append((row, p))
    correct = sum(1 for row, p in results if p.intent == row["intent"])
    topic_rows = [(row, p) for row, p in results if row["intent"] == "policy_question" and row.get("topic")]
    topic_correct = sum(1 for row, p in topic_rows if p.intent == "policy_question" and p.topic == row["topic"])
    return {
        "results": results,
        "accuracy": correct / len(results) if results else 0.0,
        "topic_accuracy": topic_correct / len(topic_rows) if topic_rows else 1.0,
        "topic_support": len(topic_rows),
    }


def run_eval(
    path: Path,
    knowledge_dir: Path = DEFAULT_KNOWLEDGE,
    *,
    min_accuracy: float | None = None,
    min_topic_accuracy: float | None = None,
    half: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    rows = load_rows(path)
    if half:
        rows = [row for row in rows if half_of(row["text"]) == half]
    ev = evaluate(rows, knowledge_dir)
    results = ev["results"]
    w = out.write
    w(f"NLU evaluation: {path}{f' half {half}' if half else ''} ({len(rows)} messages)\n")
    w(f"intent accuracy: {ev['accuracy']:.4f}\n")
    w(f"topic accuracy (policy_question rows, n={ev['topic_support']}): {ev['topic_accuracy']:.4f}\n\n")

    labels = sorted({row["intent"] for row, _ in results} | {p.intent for _, p in results})
    w(f"{'intent':<20}{'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}\n")
    for label in labels:
        tp = sum(1 for row, p in results if row["intent"] == label and p.intent == label)
        pred = sum(1 for _, p in results if p.intent == label)
        gold = sum(1 for row, _ in results if row["intent"] == label)
        prec = tp / pred if pred else 0.0
        rec = tp / gold if gold else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        w(f"{label:<20}{prec:>10.3f}{rec:>10.3f}{f1:>10.3f}{gold:>10}\n")

    pairs = Counter(
        (row["intent"], p.intent) for row, p in results if row["intent"] != p.intent
    )
    topic_pairs = Counter(
        (row["topic"], p.topic) for row, p in results
        if row["intent"] == "policy_question" and p.intent == "policy_question" and row.get("topic") != p.topic
    )
    if pairs or topic_pairs:
        w("\nconfusions (gold → predicted: count)\n")
        for (g, pr), c in pairs.most_common():
            w(f"  {g} → {pr}: {c}\n")
        for (g, pr), c in topic_pairs.most_common():
            w(f"  policy_question/{g} → policy_question/{pr}: {c}\n")
    misses = [
        (row, p) for row, p in results
        if row["intent"] != p.intent or (row["intent"] == "policy_question" and row.get("topic") and row["topic"] != p.topic)
    ]
    if misses:
        w(f"\nmisses ({len(misses)})\n")
        for row, p in misses:
            gold = row["intent"] + (f"/{row['topic']}" if row.get("topic") else "")
            got = p.intent + (f"/{p.topic}" if p.topic else "")
            w(f"  {row['text'][:80]!r}\n      gold={gold} predicted={got} confidence={p.confidence:.2f}\n")

    status = 0
    if min_accuracy is not None and ev["accuracy"] < min_accuracy:
        w(f"\nFAIL: intent accuracy {ev['accuracy']:.4f} < {min_accuracy}\n")
        status = 1
    if min_topic_accuracy is not None and ev["topic_accuracy"] < min_topic_accuracy:
        w(f"\nFAIL: topic accuracy {ev['topic_accuracy']:.4f} < {min_topic_accuracy}\n")
        status = 1
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot.nlu.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--knowledge-dir", type=Path, default=None)
    ap.add_argument("--min-accuracy", type=float, default=None)
    ap.add_argument("--min-topic-accuracy", type=float, default=None)
    ap.add_argument("--half", choices=("A", "B"), default=None, help="only the rows of one fixed half")
    args = ap.parse_args(argv)
    kdir = args.knowledge_dir
    if kdir is None:
        import os

        kdir = Path(os.environ.get("GONGYOU_KNOWLEDGE_DIR") or DEFAULT_KNOWLEDGE)
    return run_eval(args.file, kdir, min_accuracy=args.min_accuracy, min_topic_accuracy=args.min_topic_accuracy,
                    half=args.half)


if __name__ == "__main__":
    raise SystemExit(main())
