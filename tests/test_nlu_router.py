"""The router as a labourer meets it: dev-set accuracy, typos, dialect, ties, junk input, entities."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.nlu.evaluate import evaluate, load_rows
from bot.nlu.types import INTENTS, TOPICS

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"
DATA = ROOT / "tests" / "data"


def test_examples_all_right():
    ev = evaluate(load_rows(DATA / "examples.jsonl"), KNOWLEDGE)
    misses = [(r["text"], p.intent, p.topic) for r, p in ev["results"]
              if p.intent != r["intent"] or (r.get("topic") and p.topic != r["topic"])]
    assert not misses


# nlu_dev: the first development set; nlu_dev_b: 314 messages in voices the first one had too few of
# (older people, family members asking, voice fillers, pinyin typed for words); nlu_dev_c: 319 more
# (long unpunctuated voice transcripts, 2–6 characters, formal letters, internet slang, negations).
# Each was written before the router was run on it; none is learnt from.
@pytest.mark.parametrize("name", ["nlu_dev.jsonl", "nlu_dev_b.jsonl", "nlu_dev_c.jsonl"])
def test_dev_set_accuracy(name):
    ev = evaluate(load_rows(DATA / name), KNOWLEDGE)
    assert ev["accuracy"] >= 0.95, ev["accuracy"]
    assert ev["topic_accuracy"] >= 0.92, ev["topic_accuracy"]


# nlu_dev_d and nlu_dev_e: 400 short plain messages each in the style of the owner's examples, the nearest
# stand-in for messages nobody on the team wrote; only their A halves were tuned on. The bars sit a little
# under what they scored when set (d: 93.8 / 92.6 %, e: 92.3 / 87.9 %): a guard against losing ground.
@pytest.mark.parametrize("name, intent, topic", [("nlu_dev_d.jsonl", 0.92, 0.90), ("nlu_dev_e.jsonl", 0.91, 0.86)])
def test_plain_style_dev_sets_hold(name, intent, topic):
    ev = evaluate(load_rows(DATA / name), KNOWLEDGE)
    assert ev["accuracy"] >= intent, ev["accuracy"]
    assert ev["topic_accuracy"] >= topic, ev["topic_accuracy"]


def test_parse_contract(router):
    p = router.parse("社保补贴咋个申请")
    assert p.intent in INTENTS and 0.0 <= p.confidence <= 1.0
    assert p.intent == "policy_question" and p.topic in TOPICS and p.entry_id
    assert p.tokens and p.ranking and all(0 <= c.confidence <= 1 for c in p.ranking)
    assert set(p.as_api()) >= {"intent", "confidence", "topic", "entities", "tokens", "ranking"}


@pytest.mark.parametrize("text, topic", [
    ("工益性岗位咋个申请", "public_welfare_post"),
    ("陪训有没有补贴", "training_subsidy"),
    ("社宝补贴在哪办", "social_insurance_subsidy"),
    ("扶平车间是做啥子的", "poverty_workshop"),
])
def test_typos_and_homophones_reach_the_entry(router, text, topic):
    p = router.parse(text)
    assert (p.intent, p.topic) == ("policy_question", topic)


def test_dialect_is_normalised(router):
    p = router.parse("啥子时候开招聘会嘛")
    assert "什么时候" in p.normalized
    assert p.intent == "query_events"
    assert "没有" in router.parse("屋头莫得人 娃儿小").normalized


def test_own_problem_is_a_complaint_general_question_is_policy(router):
    assert router.parse("老板欠我三个月工资咋办").intent == "rights_complaint"
    p = router.parse("法律援助在哪里申请")
    assert (p.intent, p.topic) == ("policy_question", "rights_protection")


def test_near_tie_offers_choices(router):
    p = router.parse("培训")
    assert p.intent != "out_of_scope"
    assert p.ambiguous == [] or 2 <= len(p.ambiguous) <= 3


def test_short_domain_word_goes_somewhere(router):
    p = router.parse("护林员")
    assert p.intent == "policy_question" and p.topic == "public_welfare_post"


@pytest.mark.parametrize("text", [
    "", "   ", "😀😀😀", "asdfghjkl", "。。。！！！", "'; DROP TABLE users; --", "SELECT * FROM labourers",
    "x" * 10_000, "啊" * 10_000,
])
def test_junk_is_out_of_scope_and_fast(router, text):
    t = time.perf_counter()
    p = router.parse(text)
    assert time.perf_counter() - t < 0.05
    assert p.intent == "out_of_scope"


def test_long_real_message_is_fast(router):
    text = "老板欠我三个月工资两万块 " * 800
    t = time.perf_counter()
    p = router.parse(text)
    assert time.perf_counter() - t < 0.05
    assert p.intent == "rights_complaint"


def test_entities_of_wage_arrears(router):
    p = router.parse("老板欠我三个月工资两万块")
    assert p.intent == "rights_complaint"
    assert p.entity("money").value == 20000
    assert p.entity("duration").value == {"value": 3, "unit": "month"}


def test_entities_of_training_wish(router):
    p = router.parse("我想学电焊")
    assert p.intent == "register_training"
    assert p.entity("training_type").value == "焊工"


@pytest.mark.parametrize("text", ["T", "Ｔ", "TD", "退订"])
def test_unsubscribe_commands(router, text):
    assert router.parse(text).intent == "unsubscribe"


@pytest.mark.parametrize("text", ["村里路灯坏了找哪个", "手机屏幕摔碎了在哪修"])
def test_everyday_requests_outside_the_programme_are_out_of_scope(router, text):
    assert router.parse(text).intent == "out_of_scope"


@pytest.mark.parametrize("text, intent, topic", [
    ("我想去学开挖掘机", "register_training", None),  # wants to take a course
    ("电焊培训国家补不补钱", "policy_question", "training_subsidy"),  # asks whether it is paid for
    ("我报的电焊班有消息没", "my_records", None),  # status of one's own sign-up
])
def test_labelling_conventions(router, text, intent, topic):
    p = router.parse(text)
    assert (p.intent, p.topic) == (intent, topic)


def test_segmentation_matches_jieba(router):
    for text in ("我今年五十八了家里还有老母亲", "在外地工地上把腰伤了", "老板欠我三个月工资两万块"):
        norm = router.normalizer.normalize(text)
        assert router.segmenter.cut(norm) == [t for t in router.tokenizer.lcut(norm, HMM=False) if not t.isspace()]


def test_dev_halves_both_hold():
    from bot.nlu.evaluate import half_of

    rows = load_rows(DATA / "nlu_dev.jsonl")
    for half in "AB":
        ev = evaluate([r for r in rows if half_of(r["text"]) == half], KNOWLEDGE)
        assert ev["accuracy"] >= 0.94, (half, ev["accuracy"])


@pytest.mark.parametrize("text, kept", [("我想找工作", "找工作"), ("找工作难", "找工作")])
def test_common_words_are_not_typos(router, text, kept):
    # 找工 sounds like the domain word 招工, but 工 belongs to the common word 工作 here
    assert kept in router.normalizer.normalize(text)


@pytest.mark.parametrize("text, fixed", [("护林猿咋个申请", "护林员"), ("公易性岗位", "公益性岗位")])
def test_sound_alike_typos_of_domain_words_are_fixed(router, text, fixed):
    assert fixed in router.normalizer.normalize(text)


def test_start_up_cache_gives_the_same_router(tmp_path, monkeypatch):
    from bot.nlu.router import Router

    monkeypatch.setenv("GONGYOU_CACHE_DIR", str(tmp_path))
    built = Router(KNOWLEDGE)
    assert list(tmp_path.glob("gongyou-nlu-*.pickle"))
    loaded = Router(KNOWLEDGE)
    for text in ("老板欠我三个月工资咋办", "社保补贴咋个申请", "我想学电焊", "今天天气好"):
        assert built.parse(text) == loaded.parse(text)


@pytest.mark.parametrize("text, intent", [
    # asking how to ask is a request for help: the retrieval found no close example, the regression knew it
    ("咋个问问题", "help"),
    ("怎么问问题", "help"),
    ("咋个发问题给你", "help"),
    # something lost is no job search, even when it says 帮我找
    ("帮我找下钥匙", "out_of_scope"),
])
def test_learned_intent_counts_as_evidence_of_scope(router, text, intent):
    assert router.parse(text).intent == intent


@pytest.mark.parametrize("text, topic", [
    # the nearest paraphrase is of a neighbouring topic (the fare of going out to work, a start-up); the
    # regression, which weighs every phrasing of a topic, knows the fare of a course and selling online
    ("去学手艺的路费报不报", "training_subsidy"),
    ("我儿子想回来创业 搞电商 卖蜂蜜 有扶持不", "ecommerce"),
])
def test_topic_is_not_decided_by_one_near_paraphrase(router, text, topic):
    p = router.parse(text)
    assert (p.intent, p.topic) == ("policy_question", topic)


@pytest.mark.parametrize("text, intent", [
    # what labour law gives everyone, asked in general, is answered; a grievance of one's own is taken up
    ("女工产假有工资没", "policy_question"),
    ("试用期工资是不是要打折", "policy_question"),
    ("我被辞退了 一分补偿都没给", "rights_complaint"),
])
def test_labour_law_questions_are_policy_grievances_complaints(router, text, intent):
    p = router.parse(text)
    assert p.intent == intent
    assert intent != "policy_question" or p.topic == "rights_protection"
