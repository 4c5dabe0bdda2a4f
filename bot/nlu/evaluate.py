"""Evaluate the router on a labelled JSONL file, printed like `rasa test nlu`, side by side with the
baseline (bot/nlu/baseline.py: character 1–3-gram TF-IDF + logistic regression on the same data) when
scikit-learn is installed.

    python -m bot.nlu.evaluate tests/data/nlu_dev.jsonl --min-accuracy 0.95 --min-topic-accuracy 0.92

Each line: {"text": ..., "intent": ..., "topic": ... (policy_question only)}, optionally "referral" (the
neighbouring business an out-of-scope message belongs to, knowledge/referrals.yaml) and "voice" (who
writes like this: asr, youth, proxy, cadre, trad, short, negation, story, neighbour, chitchat).
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


def scores(rows: list[dict], predicted: list[tuple[str, str | None]]) -> dict:
    """Intent accuracy, topic accuracy (on the policy_question rows: the right intent and topic) and
    out-of-scope precision/recall of (intent, topic) predictions, one per row."""
    n = len(rows)
    right = sum(1 for row, (i, _t) in zip(rows, predicted) if i == row["intent"])
    topic_rows = [(row, i, t) for row, (i, t) in zip(rows, predicted)
                  if row["intent"] == "policy_question" and row.get("topic")]
    topic_right = sum(1 for row, i, t in topic_rows if i == "policy_question" and t == row["topic"])
    oos_gold = sum(1 for row in rows if row["intent"] == "out_of_scope")
    oos_pred = sum(1 for i, _t in predicted if i == "out_of_scope")
    oos_tp = sum(1 for row, (i, _t) in zip(rows, predicted) if i == row["intent"] == "out_of_scope")
    return {
        "n": n,
        "intent": right / n if n else 0.0,
        "topic": topic_right / len(topic_rows) if topic_rows else 1.0,
        "topic_support": len(topic_rows),
        "oos_precision": oos_tp / oos_pred if oos_pred else 1.0,
        "oos_recall": oos_tp / oos_gold if oos_gold else 1.0,
        "oos_support": oos_gold,
    }


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
    referral_rows = [(row, p) for row, p in results if row.get("referral")]
    return {
        "results": results,
        "scores": scores(rows, [(p.intent, p.topic) for _row, p in results]),
        # out-of-scope messages of a neighbouring business answered with that business's referral
        "referral_accuracy": (sum(1 for row, p in referral_rows if p.intent == "out_of_scope"
                                  and p.referral == row["referral"]) / len(referral_rows)) if referral_rows else 1.0,
        "referral_support": len(referral_rows),
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
    baseline: bool = True,
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
    w(f"topic accuracy (policy_question rows, n={ev['topic_support']}): {ev['topic_accuracy']:.4f}\n")
    if ev["referral_support"]:
        w(f"referral accuracy (neighbouring business, n={ev['referral_support']}): {ev['referral_accuracy']:.4f}\n")
    w("\n")
    if baseline:
        _side_by_side(rows, ev, knowledge_dir, w)

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


def _side_by_side(rows: list[dict], ev: dict, knowledge_dir: Path, w) -> None:
    """The router against the baseline on the same rows: overall, then per voice when rows carry one."""
    from bot.nlu.baseline import get_baseline

    base = get_baseline(Path(knowledge_dir))
    if base is None:
        w("baseline: scikit-learn is not installed (pip install -e '.[dev]')\n\n")
        return
    predicted = base.predict([row["text"] for row in rows])
    ours = [(p.intent, p.topic) for _row, p in ev["results"]]
    # the topic each would answer were the message a policy question (the router: its best policy candidate)
    our_pick = [next((c.topic for c in p.ranking if c.intent == "policy_question"), None) for _row, p in ev["results"]]
    w("router against the baseline (char 1–3-gram TF-IDF + logistic regression on the same training data)\n"
      "topic: right intent and topic, on the policy rows; topic pick: the topic each would answer on the\n"
      "policy rows whatever its intent (the baseline's topic model alone, the router's best policy candidate)\n")
    w(f"{'':<11}{'n':>4}{'intent':>16}{'topic':>16}{'topic pick':>16}{'oos precision':>17}{'oos recall':>16}\n")
    groups = [("all", list(range(len(rows))))]
    voices = sorted({row["voice"] for row in rows if row.get("voice")})
    groups += [(v, [i for i, row in enumerate(rows) if row.get("voice") == v]) for v in voices]
    cell = "{:>7.1%} /{:>6.1%}".format
    for name, idx in groups:
        sub = [rows[i] for i in idx]
        r = scores(sub, [ours[i] for i in idx])
        b = scores(sub, [predicted[i] for i in idx])
        policy = [i for i in idx if rows[i]["intent"] == "policy_question" and rows[i].get("topic")]
        r_pick = sum(1 for i in policy if our_pick[i] == rows[i]["topic"]) / len(policy) if policy else 1.0
        b_pick = sum(1 for i in policy if predicted[i][1] == rows[i]["topic"]) / len(policy) if policy else 1.0
        w(f"{name:<11}{r['n']:>4} {cell(r['intent'], b['intent'])} {cell(r['topic'], b['topic'])}"
          f" {cell(r_pick, b_pick)} {cell(r['oos_precision'], b['oos_precision'])} "
          f"{cell(r['oos_recall'], b['oos_recall'])}\n")
    w("(each cell: router / baseline)\n\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot.nlu.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--knowledge-dir", type=Path, default=None)
    ap.add_argument("--min-accuracy", type=float, default=None)
    ap.add_argument("--min-topic-accuracy", type=float, default=None)
    ap.add_argument("--half", choices=("A", "B"), default=None, help="only the rows of one fixed half")
    ap.add_argument("--no-baseline", action="store_true", help="skip the side-by-side baseline")
    args = ap.parse_args(argv)
    kdir = args.knowledge_dir
    if kdir is None:
        import os

        kdir = Path(os.environ.get("GONGYOU_KNOWLEDGE_DIR") or DEFAULT_KNOWLEDGE)
    return run_eval(args.file, kdir, min_accuracy=args.min_accuracy, min_topic_accuracy=args.min_topic_accuracy,
                    half=args.half, baseline=not args.no_baseline)


if __name__ == "__main__":
    raise SystemExit(main())
