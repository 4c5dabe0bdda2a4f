"""The scripted people (tests/dialog_people.py) over the dev conversations, through the real endpoints, on
the suite's database (SQLite, or PostgreSQL with GONGYOU_TEST_DATABASE_URL). The held-out set is run the
same way for the figures in the notes (`python -m tests.dialog_people tests/data/conversations_holdout.jsonl`);
it is never tuned on."""

from __future__ import annotations

from pathlib import Path

from dialog_people import figures, load, run_all

DATA = Path(__file__).resolve().parent / "data"


def test_the_dev_people_finish_and_what_they_said_is_stored(client):
    results = run_all(client, load(DATA / "conversations_dev.jsonl"))
    found = figures(results)
    print(found.line("dev"))
    assert found.conversations >= 50
    assert found.completion >= 0.95, [r.id for r in results if not r.finished]
    assert found.accuracy >= 0.95
    assert found.wrong_slots == 0 and found.lost == 0
    assert found.extra_per_conversation < 0.3
    assert found.violations == 0, [v for r in results for v in r.violations]
