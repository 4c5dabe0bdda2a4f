"""The router's fast constructors build the same frozen objects as the dataclasses' own __init__."""

from __future__ import annotations

import dataclasses

import pytest

from bot.nlu.types import Candidate, Entity, Parse, new_candidate, new_parse


def test_new_candidate_is_a_candidate():
    fast, slow = new_candidate("policy_question", 0.8, "training_subsidy", "ts-01"), Candidate(
        "policy_question", 0.8, "training_subsidy", "ts-01")
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    assert new_candidate("help", 1.0) == Candidate("help", 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.intent = "help"  # type: ignore[misc]


def test_new_parse_is_a_parse():
    ents = [Entity("money", 3500, "三千五", 0, 3)]
    ranking = [new_candidate("rights_complaint", 0.9)]
    args = ("欠我三千五", "欠我三千五", "rights_complaint", 0.9, None, None, ents, ["欠", "我"], ranking, [])
    fast, slow = new_parse(*args), Parse(*args)
    assert fast == slow and repr(fast) == repr(slow) and fast.as_api() == slow.as_api()
    assert fast.entity("money") is ents[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.intent = "help"  # type: ignore[misc]
