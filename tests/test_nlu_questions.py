"""A question ABOUT an action, a rule or a quantity is a policy question (issue #15): what to bring to sign up,
an age limit, whether a fare is paid back, how long a class lasts, the latest a wage may be paid, what the law
says; a request to DO it (我要报名, 帮我报个) stays the action, and a grievance of one's own told stays a complaint."""

from __future__ import annotations

from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"


@pytest.mark.parametrize("text, topic", [
    # asking about the sign-up itself, not signing up
    ("报名学电工要带啥子证件", "training_subsidy"),
    ("报名挖机培训要交些啥子材料", "training_subsidy"),
    ("参加养殖培训有没有年龄要求", "training_subsidy"),
    ("报培训班可以让别人代报不", "training_subsidy"),
    ("报了电焊班不想去了 要退钱不", "training_subsidy"),
    ("家政班要学多少天", "training_subsidy"),
    # 好久 after a verb of lasting asks how long, not when a class is on
    ("电焊班一期要学好久", "training_subsidy"),
    ("厨师班要上好久的课", "training_subsidy"),
    # a fare, asked whether it is paid back, is ours, not chit-chat
    ("出门打工的火车票能报吗", "labour_export"),
    # a rule or a limit asked about is not a complaint
    ("工资最迟几号必须发", "rights_protection"),
    ("最低工资标准是多少", "rights_protection"),
    ("试用期按规定最长是多久", "rights_protection"),
    # where or how one complains, asked without a case of one's own
    ("包工头拖欠工钱该打哪个电话", "rights_protection"),
    ("不给加班费违不违法", "rights_protection"),
    # asking on someone's behalf is asking, not signing them up
    ("帮我表弟问下 他想去丽水进厂 那边招不招人", "east_west_cooperation"),
    # an ASR typo of 证书
    ("电焊班发的正书全国通用不", "training_subsidy"),
])
def test_a_question_about_an_action_or_a_rule_is_a_policy_question(router, text, topic):
    p = router.parse(text)
    assert (p.intent, p.topic) == ("policy_question", topic)


@pytest.mark.parametrize("text, intent", [
    ("我要报名学电工", "register_training"),
    ("帮我报个挖机培训", "register_training"),
    ("我想报那个养殖班", "register_training"),
    ("老板欠了我三个月工资不给", "rights_complaint"),
    ("电焊班下期好久开", "query_events"),
    ("我在砖厂干了四个月 工钱一分没给 找哪个", "rights_complaint"),
    ("帮我妈问问 她想找个活", "register_job"),
    ("帮我报个保洁员", "register_job"),
])
def test_a_request_to_do_it_or_a_grievance_stays_what_it_is(router, text, intent):
    assert router.parse(text).intent == intent


def test_a_subsidy_for_someone_of_another_hukou_is_not_referred_to_the_police(router):
    p = router.parse("学手艺的补贴 外地户口能领不")
    assert (p.intent, p.topic, p.referral) == ("policy_question", "training_subsidy", None)


# nlu_dev_h: 150 messages of these kinds, written before the router was run on them (first reading, whole set:
# intent 88.7 %, topic 81.4 %); half A tuned on, half B when this bar was set: intent 97.0 %, topic 95.2 %.
def test_the_questions_dev_set_holds():
    from bot.nlu.evaluate import evaluate, half_of, load_rows

    rows = [r for r in load_rows(ROOT / "tests" / "data" / "nlu_dev_h.jsonl") if half_of(r["text"]) == "B"]
    scores = evaluate(rows, KNOWLEDGE)["scores"]
    assert scores["intent"] >= 0.94 and scores["topic"] >= 0.92, scores
