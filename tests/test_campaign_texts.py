"""Broadcast texts as labourers get them (issue 10, hole 11): through the officials' API preview and through
a dispatcher sending to the loopback Aliyun gateway. An event without a number of jobs says nothing about
jobs, a title ending in a digit does not run into the date, and the opt-out instruction the gateway appends
is a sentence of its own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot import pii
from bot.app import dispatch_parts
from bot.db import session_scope
from bot.models import CampaignStep, Labourer
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from scheduler.render import knowledge_for
from tests.fakes.sms_gateways import FakeAliyunSms

PHONE = "13980000007"


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    with FakeAliyunSms() as fake:
        yield fake


@pytest.fixture
def settings(make_settings, aliyun):
    return make_settings(sms_provider="aliyun", sms_api_base=aliyun.base, sms_access_key_id="LTAI-test",
                         sms_access_key_secret="aliyun-secret", sms_template_id="SMS_1", sms_signature="巴中就业",
                         sms_min_interval_seconds=0)  # two notices to one number in a test


@pytest.fixture
def factory(app):
    return app.state.sessionmaker


@pytest.fixture
def labourer(factory, settings) -> int:
    with session_scope(factory) as s:
        protected = pii.protect_phone(PHONE, settings.data_key)
        person = Labourer(name="王秀英", township="兴文镇", phone_enc=protected.encrypted,
                          phone_hash=protected.lookup_hash, phone_masked=protected.masked)
        s.add(person)
        s.flush()
        return person.id


def _event(client, auth, **fields) -> int:
    # 12 December, 09:30 in Bazhong: a month written with digits right after the title's own digit
    now = datetime.now(UTC)
    starts = datetime(now.year, 12, 12, 1, 30, tzinfo=UTC)
    starts = starts if starts > now + timedelta(days=1) else starts.replace(year=now.year + 1)
    body = {"kind": "job_fair", "title": "春季招聘会1", "starts_at": starts.isoformat(), "venue": "巴州区人力资源市场",
            "township": "兴文镇", **fields}
    response = client.post("/api/admin/events", json=body, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _campaign(client, auth, event_id: int, key: str, **fields) -> int:
    body = {"name": "招聘会通知", "event_id": event_id, "audience": {"filter": {"township": ["兴文镇"]}},
            "channels": ["wechat", "sms"], **fields}
    response = client.post("/api/admin/campaigns", json=body, headers={**auth, "Idempotency-Key": key})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _preview(client, auth, campaign_id: int, channel: str = "sms") -> list[str]:
    preview = client.get(f"/api/admin/campaigns/{campaign_id}/preview", headers=auth).json()
    return [s["text"] for s in preview["samples"] if s["channel"] == channel]


def _schedule_and_fire(client, auth, factory, campaign_id: int) -> None:
    assert client.post(f"/api/admin/campaigns/{campaign_id}/schedule", headers=auth).status_code == 200
    with session_scope(factory) as s:
        step = s.scalar(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign_id))
        assert fire_step(s, step).status == "fired"


def _send(client, auth, factory, settings, campaign_id: int) -> None:
    _schedule_and_fire(client, auth, factory, campaign_id)
    Dispatcher(factory, dispatch_parts(settings, factory)[0], DispatchConfig(rates={}, windows={})).run(until_idle=True)


def _texts_sent(aliyun: FakeAliyunSms) -> list[str]:
    return [" ".join(json.loads(p["TemplateParam"]).values()) for p in aliyun.sent if p["PhoneNumbers"] == PHONE]


def test_event_without_jobs_count_and_a_title_ending_in_a_digit(client, admin_auth, factory, labourer) -> None:
    with session_scope(factory) as s:
        s.add(Labourer(name="李德明", township="兴文镇", wechat_openid="o-wechat-1"))
    campaign_id = _campaign(client, admin_auth, _event(client, admin_auth), "defaults")
    [wechat] = _preview(client, admin_auth, campaign_id, "wechat")
    assert wechat == "李德明您好！春季招聘会1将于12月12日09:30在巴州区人力资源市场举行。回复“报名”或数字1报名，回复“不去了”取消。"
    [sms_text] = _preview(client, admin_auth, campaign_id)
    assert sms_text == "春季招聘会1，12月12日09:30在巴州区人力资源市场举行，回1报名。"

    run_in = _campaign(client, admin_auth, _event(client, admin_auth), "run-in", channels=["sms"],
                       sms_template="{活动}{时间}，{报名方式}")
    [text] = _preview(client, admin_auth, run_in)
    assert text == "春季招聘会1 12月12日09:30，回1报名。"  # an official's template without a mark: kept apart


def test_jobs_count_when_the_event_gives_it(client, admin_auth, labourer) -> None:
    event_id = _event(client, admin_auth, jobs_count=1300)
    campaign_id = _campaign(client, admin_auth, event_id, "jobs", channels=["sms"],
                            sms_template="{活动}，{时间}在{地点}举行，提供岗位{岗位数}个，{报名方式}")
    [text] = _preview(client, admin_auth, campaign_id)
    assert "提供岗位1300个，回1报名" in text


def test_the_sms_sent_ends_its_sentence_before_the_opt_out_text(client, admin_auth, factory, settings, aliyun,
                                                              labourer) -> None:
    campaign_id = _campaign(client, admin_auth, _event(client, admin_auth), "sent", channels=["sms"])
    _send(client, admin_auth, factory, settings, campaign_id)
    [sent] = _texts_sent(aliyun)
    assert sent.endswith("回1报名。拒收请回复R"), sent
    assert sent.startswith("春季招聘会1，12月12日09:30在") and "岗位" not in sent
    assert aliyun.sent[0]["SignName"] == "巴中就业"


def _edit_text(client, auth, key: str, text: str) -> None:
    response = client.put(f"/api/admin/knowledge/texts/{key}", json={"text": text, "note": "更清楚"}, headers=auth)
    assert response.status_code == 200, response.text


def test_an_officials_edit_of_the_campaign_texts_reaches_preview_and_the_sms_sent(client, admin_auth, factory,
                                                                                settings, aliyun, labourer) -> None:
    event_id = _event(client, admin_auth)
    campaign_id = _campaign(client, admin_auth, event_id, "before", channels=["sms"])
    assert _preview(client, admin_auth, campaign_id)[0].endswith("回1报名。")

    _edit_text(client, admin_auth, "campaigns:signup_how_sms", "回复1报名，回复“不去了”取消")
    _edit_text(client, admin_auth, "campaigns:time_format", "{month}月{day}日{hour}点{minute:02d}分")
    [text] = _preview(client, admin_auth, campaign_id)
    assert text == "春季招聘会1，12月12日9点30分在巴州区人力资源市场举行，回复1报名，回复“不去了”取消。"

    _edit_text(client, admin_auth, "campaigns:default_sms_template.job_fair", "{活动}，{时间}，{地点}，{报名方式}")
    newer = _campaign(client, admin_auth, event_id, "after", channels=["sms"])
    assert client.get(f"/api/admin/campaigns/{newer}", headers=admin_auth).json()["sms_template"] == \
        "{活动}，{时间}，{地点}，{报名方式}"

    _send(client, admin_auth, factory, settings, campaign_id)
    [sent] = _texts_sent(aliyun)
    assert sent == "春季招聘会1，12月12日9点30分在巴州区人力资源市场举行，回复1报名，回复“不去了”取消。拒收请回复R"


def test_a_running_dispatcher_renders_the_next_batch_with_the_edited_texts(client, admin_auth, factory, settings,
                                                                           aliyun, labourer) -> None:
    first = _campaign(client, admin_auth, _event(client, admin_auth), "first", channels=["sms"])
    dispatcher = Dispatcher(factory, dispatch_parts(settings, factory)[0], DispatchConfig(rates={}, windows={}),
                            knowledge=knowledge_for(factory, settings.knowledge_dir, poll_seconds=0.01))
    _schedule_and_fire(client, admin_auth, factory, first)
    dispatcher.run(until_idle=True)
    _edit_text(client, admin_auth, "campaigns:signup_how_sms", "回复1报名")
    second = _campaign(client, admin_auth, _event(client, admin_auth, title="夏季招聘会"), "second", channels=["sms"])
    _schedule_and_fire(client, admin_auth, factory, second)
    time.sleep(0.05)  # past the store's poll interval
    dispatcher.run(until_idle=True)
    assert [t.rsplit("，", 1)[-1] for t in _texts_sent(aliyun)] == ["回1报名。拒收请回复R", "回复1报名。拒收请回复R"]
