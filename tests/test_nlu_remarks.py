"""Kinds of message the router misread on a held-out set in issue #15's voices (nlu_voices_holdout_3): a remark to
the bot or an errand of everyday life is chit-chat, not a request for help or a person; a bare job word or news
of having found work registers one's job; "push 我" / "call 我" in mixed English; a follow-up of one's own
complaint is a status question; one's own unpaid post subsidy is a complaint; a road or a hospital bill is
someone else's business, and a loan for a start-up is no job request."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("text, intent", [
    # remarks about the bot, errands of everyday life: chit-chat
    ("你是机器人还是真人", "out_of_scope"),
    ("你是机器人吗 真聪明", "out_of_scope"),
    ("你能不能帮我抢两张演唱会门票", "out_of_scope"),
    ("我家的狗跑丢了 帮我找一下嘛", "out_of_scope"),
    # a bare job word, or news of having found work, registers one's job
    ("要活路", "register_job"),
    ("想要个活干", "register_job"),
    ("我已在宁波一家电子厂就业", "register_job"),
    ("找到活了 在成都做保安 跟你们说一声", "register_job"),
    # English words of young migrants
    ("有招聘会记得 push 我", "subscribe"),
    ("直接 call 我嘛 我不会打字", "human_handoff"),
    # a follow-up of one's own complaint asks how it stands
    ("我上个星期投诉了包工头欠钱 一直没人联系 是不是没登上", "my_records"),
    ("我报名了电焊班 一直没人通知", "my_records"),
    # one's own post subsidy not paid, or pay owed for a span told, is a complaint
    ("我的护林员补贴两个月没发了", "rights_complaint"),
    ("保洁员的补助去年的还没到手", "rights_complaint"),
])
def test_kinds_of_message_get_their_intent(router, text, intent):
    assert router.parse(text).intent == intent


def test_a_person_is_still_asked_for_when_a_robot_is_refused(router):
    assert router.parse("你是机器人吧 我要转人工").intent == "human_handoff"


@pytest.mark.parametrize("text, referral", [
    ("在外省住院了 回老家咋个报销", "medical_insurance"),
    ("补驾照要体检不", "traffic"),
    ("我们组的村道塌方了 该向哪个部门报告", "roads"),
])
def test_our_words_in_another_business_are_referred(router, text, referral):
    p = router.parse(text)
    assert (p.intent, p.referral) == ("out_of_scope", referral)


def test_a_road_kept_as_a_public_welfare_post_is_ours(router):
    p = router.parse("乡村道路养护的活 要会啥")
    assert p.intent != "out_of_scope"


@pytest.mark.parametrize("text, topic", [
    # a relative's start-up loan is a question about start-up support, not a job request
    ("我表哥从广东回来了 想在镇上开个小饭馆 有没有创业贷款", "startup_support"),
    # an employer telling how many locals it took on asks about employer incentives
    ("我们合作社请了八个贫困户 政府有啥子奖励没", "employer_incentive"),
    # "not signing up, just asking" across a space
    ("不是要报名 就问下电焊班包不包住", "training_subsidy"),
])
def test_questions_told_with_a_story_keep_their_topic(router, text, topic):
    p = router.parse(text)
    assert (p.intent, p.topic) == ("policy_question", topic)
