"""The router on voices nobody here wrote (issue #15): neighbouring government business referred, never
answered as our policy; negation and focus; complaints told as stories; formal and proxy voices; new
greetings; traditional and full-width characters."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.nlu.router import get_router

ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"


@pytest.fixture(scope="module")
def router():
    return get_router(KNOWLEDGE)


@pytest.mark.parametrize("text, referral", [
    ("医保报销要带啥子", "medical_insurance"),
    ("帮我妈问一下，她的养老金这个月咋少了五十块", "pension"),
    ("我外婆的低保被取消了 找哪个", "dibao"),
    ("关于我村危房改造户的补助资金拨付问题，请予答复", "housing"),
    ("本村部分农户土地确权证书信息有误，应向哪个部门申请更正", "land"),
    ("户口迁回老家要啥手续", "hukou"),
    ("交通罚单在哪交", "traffic"),
    ("醫保卡丟了怎麼補辦", "medical_insurance"),
])
def test_neighbouring_business_is_referred_not_answered(router, text, referral):
    p = router.parse(text)
    assert (p.intent, p.topic, p.referral) == ("out_of_scope", None, referral)
    assert p.as_api()["referral"] == referral


@pytest.mark.parametrize("text, topic", [
    # our words in another business go there; another business's words in ours stay ours
    ("贫困户养老保险有没有补贴", "social_insurance_subsidy"),
    ("医保今年要交好多钱 贫困户有减免没得", "social_insurance_subsidy"),
    ("医疗保险是不是政府帮交一部分", "social_insurance_subsidy"),
    ("干了公益性岗位会不会把低保取消了", "public_welfare_post"),
])
def test_our_subsidy_for_their_business_stays_ours(router, text, topic):
    p = router.parse(text)
    assert (p.intent, p.topic, p.referral) == ("policy_question", topic, None)


def test_a_referral_says_where_to_go_through_the_channel(say):
    reply = say("帮我妈问一下，她的养老金这个月咋少了五十块")[0]
    assert "不归就业扶贫管" in reply and "社保" in reply and "12333" in reply
    assert "社保补贴" not in reply  # never our policy answer
    reply = say("医保报销要带啥子", user="labourer-2")[0]
    assert "医疗保障局" in reply and "12393" in reply
    # an ordinary unknown message still gets the honest fallback and the menu
    assert "答不了" in say("帮我点个外卖", user="labourer-3")[0]
