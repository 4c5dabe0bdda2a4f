"""The scripted people (tests/dialog_people.py) through the real endpoints, on the suite's database (SQLite,
or PostgreSQL with GONGYOU_TEST_DATABASE_URL), against the issue's targets: the dev conversations, the tuning
halves of the new voices (elderly, dialect, over-explainers, self-correctors, answers to another question,
voice-input typos; sign-ups from the events list and changes from 我的登记) and the held-out sets
(conversations_holdout.jsonl, conversations_voices_untouched.jsonl, conversations_voices2_untouched.jsonl,
conversations_voices3_heldout.jsonl, conversations_voices4_heldout.jsonl and conversations_voices5_heldout.jsonl:
40, 35 and 54 people in the voices of issue #14) and the fifth batch's dev people (conversations_voices5_dev.jsonl,
77: proxies, questions answered with questions, ordinals, lunar dates, mixed numerals), 344 people. Each held-out set was written before it was first run and that reading recorded in the
notes; the kinds of failure it showed were then fixed in the engine, extractors, router and answers, never by
editing a conversation — so after that first reading none of them is untouched, and each now guards against a
relapse (`python -m tests.dialog_people FILE
[--database-url postgresql+psycopg://…]` prints the figures).

conversations_voices4_heldout.jsonl (35 people, written and committed before it was run) first read, the same on
SQLite and PostgreSQL: finished 33/35 (94 %), all right 28, slot accuracy 156/166 (94.0 %), wrong slots 1, lost
values 1, extra turns 0.00/conversation, violations 2. After the fixes its kinds of failure led to
(tests/test_dialog_voices4.py) and two answers that now speak of what was asked (trn_cost: certificates;
rgt_legal_aid: arbitration): finished 35/35, slot accuracy 166/166, wrong slots 0, lost values 0, extra turns
0.03/conversation, violations 0.

conversations_voices5_heldout.jsonl (54 people, written and committed on branch convset before it was run) first
read on SQLite: finished 51/54 (94 %), all right 50, slot accuracy 260/279 (93.2 %), wrong slots 0, lost values 1,
extra turns 0.07/conversation, violations 3. After the fixes its kinds of failure led to (tests/test_dialog_voices5.py):
finished 54/54, slot accuracy 279/279, wrong slots 0, lost values 0, extra turns 0.00/conversation, violations 0.

conversations_voices6_heldout.jsonl (49 people, written on branch convset6 before it was run) first read on main:
finished 45/49 (92 %), slot accuracy 233/261 (89.3 %), wrong slots 0, lost values 2, extra turns 0.35/conversation,
violations 3. After the fixes its kinds of failure led to (tests/test_dialog_voices6.py) and one ID number in it
corrected (v6-36: a p for its checksum 9): finished 49/49, slot accuracy 260/261 (v6-26's day rate 一天两百多 is
stored as 26 days of it, 5200, where the person meant 6000), lost values 0, extra turns 0.04/conversation,
violations 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialog_people import figures, load, run_all

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name, at_least", [
    ("conversations_dev.jsonl", 50), ("conversations_voices_tune.jsonl", 20), ("conversations_voices2_tune.jsonl", 16),
    ("conversations_holdout.jsonl", 20), ("conversations_voices_untouched.jsonl", 20),
    ("conversations_voices2_untouched.jsonl", 8), ("conversations_voices3_heldout.jsonl", 40),
    ("conversations_voices4_heldout.jsonl", 35), ("conversations_voices5_dev.jsonl", 77),
    ("conversations_voices5_heldout.jsonl", 54), ("conversations_voices6_heldout.jsonl", 49)])
def test_the_scripted_people_finish_and_what_they_said_is_stored(client, name, at_least):
    results = run_all(client, load(DATA / name))
    found = figures(results)
    print(found.line(name))
    assert found.conversations >= at_least
    assert found.completion >= 0.95, [r.id for r in results if not r.finished]
    assert found.accuracy >= 0.98, [m for r in results for m in r.mismatched]
    assert found.wrong_slots == 0 and found.lost == 0, [w for r in results for w in r.wrong_slot + r.lost]
    assert found.extra_per_conversation < 0.3
    assert found.violations == 0, [v for r in results for v in r.violations]
