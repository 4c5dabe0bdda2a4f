"""The router on voices nobody here wrote (issue #15): neighbouring government business referred, never
answered as our policy; negation and focus; complaints told as stories; formal and proxy voices; new
greetings; traditional and full-width characters."""

from __future__ import annotations

from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
KNOWLEDGE = ROOT / "knowledge"


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
    # their word, cancelled as ours by the referral's `unless`, is never out of scope whatever the classifier says
    ("医疗保险有减免没 要带户口本不", "social_insurance_subsidy"),
    ("医保代缴要带户口本去不", "social_insurance_subsidy"),
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


@pytest.mark.parametrize("text, intent", [
    # formal and proxy voices
    ("本人系村劳动保障协理员，请介绍本平台可提供的服务项目", "help"),
    ("请将本村协理员手机号加入就业扶贫信息推送名单", "subscribe"),
    ("我妈手机老是收到你们的信息，她看不懂，帮她退了吧", "unsubscribe"),
    # negation and focus: what the person wants, not the first keyword
    ("我不想退订 只是问问 以后丽水招聘会的通知还发不发", "query_events"),
    ("我不是要培训 是要找工作", "register_job"),
    ("公益岗的政策我晓得了 不用讲 直接帮我报个护林员", "register_job"),
    ("不要给我讲政策 我就想报个电工培训", "register_training"),
    ("短信不用停 我想再订阅微信的", "subscribe"),
    # complaints told as stories
    ("我在扶贫车间做了两个月，工钱还没发，找哪个说嘛", "rights_complaint"),
    ("公益岗位的补贴半年没发了 村上说等 等了半年了 我想反映一下", "rights_complaint"),
    ("中介说介绍去苏州进厂 收了我一千五 去了根本没有那个厂", "rights_complaint"),
    # greetings and chit-chat in new forms
    ("新年好 给你们拜个年 祝你们新年快乐", "greeting"),
    ("在吗在吗 借点钱", "out_of_scope"),
    ("您好！打擾了", "greeting"),
])
def test_the_issue_misses(router, text, intent):
    assert router.parse(text).intent == intent


@pytest.mark.parametrize("text, topic", [
    ("不是投诉 就是问下被欠工资一般咋个处理", "rights_protection"),  # a general question stays a policy answer
    ("被欠工资一般咋个处理", "rights_protection"),
    ("我不是问养老金 是问养老保险有没有补贴", "social_insurance_subsidy"),  # the focus decides the referral too
    ("公益崗位怎麼申請", "public_welfare_post"),  # traditional characters folded
])
def test_negation_keeps_a_question_a_question(router, text, topic):
    p = router.parse(text)
    assert (p.intent, p.topic, p.referral) == ("policy_question", topic, None)


def test_a_story_of_unpaid_wages_starts_the_complaint_through_the_channel(say):
    reply = say("我在扶贫车间做了两个月，工钱还没发，找哪个说嘛")[0]
    policy = say("被欠工资一般咋个处理", user="labourer-2")[0]
    assert reply != policy  # not the policy answer about arrears
    assert "投诉" in reply or "登记" in reply or "维权" in reply


def test_focus_scores_the_rest_but_reports_the_whole_message(router):
    p = router.parse("我不是要培训 是要找工作")
    assert p.normalized.startswith("我不是要培训") and "培训" in p.tokens


# nlu_voices: 190 messages in the voices above, written before the router was run on them; only half A was
# tuned on. nlu_voices_holdout: 152 more, never tuned on. The bars sit a little under what they scored
# when set (voices B: intent 93.6 %, out-of-scope recall 95 %; holdout: intent 96.7 %, topic pick 93.8 %),
# a guard against losing ground; the router's figures against the baseline are in benchmarks/nlu.py.
# nlu_dev_g: 257 in the same voices, most of them policy questions, half A tuned on (half B when set: intent
# 97.3 %, topic 96.7 %, out-of-scope precision and recall 92.9 %).
# nlu_voices_holdout_2: 241 more, never tuned on (first measured: intent 95.9 %, topic 91.6 %, out-of-scope
# recall 94.2 %; when this bar was set 97.1 / 97.2 / 92.3 %); nlu_dev_f: 153 where topics share words, half A
# tuned on (half B 91.4 % intent when set).
@pytest.mark.parametrize("name, half, intent, oos", [
    ("nlu_voices.jsonl", "B", 0.91, 0.90), ("nlu_voices_holdout.jsonl", None, 0.94, 0.90),
    ("nlu_voices_holdout_2.jsonl", None, 0.95, 0.90), ("nlu_dev_f.jsonl", "B", 0.89, 0.90),
    ("nlu_dev_g.jsonl", "B", 0.95, 0.90),
])
def test_voices_nobody_here_wrote_hold(name, half, intent, oos):
    from bot.nlu.evaluate import evaluate, half_of, load_rows

    rows = [r for r in load_rows(ROOT / "tests" / "data" / name) if half is None or half_of(r["text"]) == half]
    ev = evaluate(rows, KNOWLEDGE)
    assert ev["scores"]["intent"] >= intent, ev["scores"]
    assert ev["scores"]["oos_precision"] >= oos and ev["scores"]["oos_recall"] >= oos, ev["scores"]


def test_neighbouring_business_in_the_dev_set_never_gets_a_policy_answer():
    from bot.nlu.evaluate import evaluate, load_rows

    ev = evaluate(load_rows(ROOT / "tests" / "data" / "nlu_voices.jsonl"), KNOWLEDGE)
    assert ev["referral_support"] >= 30
    wrong = [r["text"] for r, p in ev["results"] if r.get("referral") and p.intent == "policy_question"]
    assert not wrong


def test_nlu_eval_prints_the_router_beside_the_baseline(tmp_path):
    import io

    pytest.importorskip("sklearn")
    from bot.nlu.evaluate import run_eval

    data = tmp_path / "few.jsonl"
    data.write_text("\n".join([
        '{"text": "医保报销要带啥子", "intent": "out_of_scope", "topic": null, "referral": "medical_insurance", "voice": "neighbour"}',
        '{"text": "公益崗位怎麼申請", "intent": "policy_question", "topic": "public_welfare_post", "voice": "trad"}',
    ]), encoding="utf-8")
    out = io.StringIO()
    assert run_eval(data, KNOWLEDGE, out=out) == 0
    text = out.getvalue()
    assert "router against the baseline" in text and "referral accuracy" in text
    assert "neighbour" in text and "trad" in text  # per voice


def test_the_parse_api_names_the_referral(client):
    body = client.post("/api/nlu/parse", json={"text": "我外公的养老金卡被冻起了 咋个办"}).json()
    assert (body["intent"], body["topic"], body["referral"]) == ("out_of_scope", None, "pension")
    ours = client.post("/api/nlu/parse", json={"text": "贫困户交养老保险政府补多少"}).json()
    assert (ours["intent"], ours["topic"], ours["referral"]) == ("policy_question", "social_insurance_subsidy", None)


def test_gongyou_nlu_eval_scores_one_half_beside_the_baseline(db_url, tmp_path):
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("sklearn")
    from bot.nlu.evaluate import half_of

    texts = ["公益崗位怎麼申請", "医保报销要带啥子", "我不是要培训 是要找工作", "被欠工资一般咋个处理", "社保补贴在哪里办", "在吗"]
    data = tmp_path / "few.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "intent": "greeting"}, ensure_ascii=False) for t in texts),
                    encoding="utf-8")
    env = {**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "false"}
    out = subprocess.run([sys.executable, "-m", "bot", "nlu-eval", str(data), "--half", "B"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120).stdout
    in_b = [t for t in texts if half_of(t) == "B"]
    assert 0 < len(in_b) < len(texts)
    assert f"half B ({len(in_b)} messages)" in out and "router against the baseline" in out
    assert all(repr(t) in out for t in in_b if t != "在吗") and not any(repr(t) in out for t in texts if t not in in_b)


def test_the_baseline_learns_the_referrals_as_the_router_does():
    """The yardstick is trained on exactly the router's documents: the referrals' examples are out_of_scope."""
    pytest.importorskip("sklearn")
    from bot.nlu.baseline import get_baseline

    texts = ["医保报销要带什么", "低保申请要什么条件", "结婚证在哪里办"]
    assert [intent for intent, _topic in get_baseline(KNOWLEDGE).predict(texts)] == ["out_of_scope"] * 3


@pytest.mark.parametrize("text, topic", [
    # a supposition about the future tells no grievance of one's own
    ("老板不签合同 以后出了事咋办嘛", "rights_protection"),
    # what a job asks of a person, whether one can learn something: questions, not requests to be signed up
    ("当保安要会啥子不", None),
    ("我五十多了 能学电脑不", "training_subsidy"),
])
def test_questions_that_name_a_wish_or_a_grievance_stay_questions(router, text, topic):
    p = router.parse(text)
    assert p.intent == "policy_question" and (topic is None or p.topic == topic), (p.intent, p.topic)


@pytest.mark.parametrize("text, intent", [
    # the regression learnt that most messages are policy questions: a message of few known words keeps its intent
    ("在的嘛", "greeting"), ("在的吗", "greeting"), ("想去广东打工", "register_job"), ("想去苏州进厂", "register_job"),
])
def test_short_messages_keep_their_intent(router, text, intent):
    assert router.parse(text).intent == intent


def test_the_router_is_ahead_of_the_baseline_on_the_new_holdout():
    """nlu_voices_holdout_2 (never tuned on): ahead on intent and on topic (the right intent and topic)."""
    pytest.importorskip("sklearn")
    from bot.nlu.baseline import get_baseline
    from bot.nlu.evaluate import evaluate, load_rows, scores

    rows = load_rows(ROOT / "tests" / "data" / "nlu_voices_holdout_2.jsonl")
    ours = evaluate(rows, KNOWLEDGE)["scores"]
    theirs = scores(rows, get_baseline(KNOWLEDGE).predict([r["text"] for r in rows]))
    assert ours["intent"] > theirs["intent"] and ours["topic"] > theirs["topic"], (ours, theirs)


@pytest.mark.parametrize("text, intent, topic", [
    # English words of a young migrant's message carry its meaning (free = 免费, family workshop = 家庭工坊)
    ("学烹饪是 free 的吗", "policy_question", "training_subsidy"),
    ("有没有 family workshop 的扶持", "policy_question", "family_workshop"),
    # 给不给出钱 asks whether it is paid for: no money withheld, no complaint
    ("我侄女想学美发 国家给不给出钱", "policy_question", "training_subsidy"),
    # whether board and lodging come with the work is a question, not a request to be found a job
    ("帮我儿子问问 去杭州上班包不包住", "policy_question", None),
    # saying where one works now, to stop the messages, unsubscribes
    ("我现在在工地上班了 你们的短信每天几条 不需要了", "unsubscribe", None),
    ("她已经在厂里做事了 你们发的信息不需要了", "unsubscribe", None),
    ("这是啥 能干嘛", "help", None),
])
def test_policy_questions_and_requests_in_mixed_and_proxy_voices(router, text, intent, topic):
    p = router.parse(text)
    assert p.intent == intent and (topic is None or p.topic == topic), (p.intent, p.topic)


@pytest.mark.parametrize("text", ["包工头扣工资 犯不犯法", "老板不给加班费 违不违法", "工头拖着工钱不结 犯法不"])
def test_whether_what_a_boss_did_is_lawful_is_a_question(router, text):
    """Asking whether it is lawful tells no grievance to register, even when it names the boss's act."""
    p = router.parse(text)
    assert (p.intent, p.topic) == ("policy_question", "rights_protection"), (p.intent, p.topic)
