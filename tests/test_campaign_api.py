"""The officials' API: bearer tokens, events, campaigns with Idempotency-Key, preview, state actions,
report and CSV — end to end through HTTP, the scheduler's planning and a dispatcher."""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.db import session_scope
from bot.models import AuditLog, Campaign, CampaignStep, Event, Labourer
from scheduler.dispatch import DispatchConfig, Dispatcher
from scheduler.planning import fire_step
from tests.doubles import RecordingSender
from tests.synthetic import insert_labourers

AUTH: dict[str, str] = {}  # an admin's bearer token, fresh for each test


@pytest.fixture(autouse=True)
def _admin_token(admin_auth) -> None:
    AUTH.clear()
    AUTH.update(admin_auth)


@pytest.fixture
def factory(app):
    return app.state.sessionmaker


def _event(client) -> dict:
    body = {"kind": "job_fair", "title": "丽水专场招聘会", "organiser": "巴中市人社局",
            "starts_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(), "venue": "巴州区人力资源市场",
            "jobs_count": 1300, "employers": ["丽水某鞋业"], "capacity": 2}
    response = client.post("/api/admin/events", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def _campaign_body(event_id: int, **extra) -> dict:
    return {"name": "丽水招聘会通知", "event_id": event_id, "audience": {"filter": {"township": ["兴文镇", "白衣镇"]}},
            "channels": ["wechat", "sms"], "reminders": [{"days_before": 1, "at": "18:00"}], **extra}


def test_token_is_required(client) -> None:
    assert client.get("/api/admin/campaigns").status_code == 401
    assert client.get("/api/admin/campaigns", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/admin/campaigns", headers=AUTH).status_code == 200


def test_idempotency_key_on_create(client, factory) -> None:
    event = _event(client)
    body = _campaign_body(event["id"])
    assert client.post("/api/admin/campaigns", json=body, headers=AUTH).status_code == 400  # no key
    first = client.post("/api/admin/campaigns", json=body, headers={**AUTH, "Idempotency-Key": "k-1"})
    again = client.post("/api/admin/campaigns", json=body, headers={**AUTH, "Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers.get("Idempotent-Replayed") == "true"
    other = client.post("/api/admin/campaigns", json={**body, "name": "别的"}, headers={**AUTH, "Idempotency-Key": "k-1"})
    assert other.status_code == 422
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 1
    created = first.json()
    assert created["state"] == "draft" and "{报名方式}" in created["template"]  # default Chinese template


def test_bad_requests_are_refused(client) -> None:
    event = _event(client)
    headers = {**AUTH, "Idempotency-Key": "bad"}
    bad_filter = _campaign_body(event["id"], audience={"filter": {"province": "四川"}})
    assert client.post("/api/admin/campaigns", json=bad_filter, headers=headers).status_code == 422
    assert client.post("/api/admin/campaigns", json=_campaign_body(event["id"], recurrence="every day"),
                       headers={**AUTH, "Idempotency-Key": "bad2"}).status_code == 422
    naive = {"kind": "training", "title": "x", "starts_at": "2026-03-10T09:00:00"}
    assert client.post("/api/admin/events", json=naive, headers=AUTH).status_code == 422
    # year 1 with an offset cannot even be converted to UTC (it was a 500)
    ancient = {"kind": "job_fair", "title": "x", "starts_at": "0001-01-01T00:00:00+00:01"}
    assert client.post("/api/admin/events", json=ancient, headers=AUTH).status_code == 422
    far = _campaign_body(event["id"], send_at="9999-12-31T23:59:00-01:00")
    assert client.post("/api/admin/campaigns", json=far, headers={**AUTH, "Idempotency-Key": "far"}).status_code == 422


def test_numbers_past_what_the_database_holds_are_refused_not_a_500(client) -> None:
    huge = 10**25
    for path in (f"/api/admin/events/{huge}", f"/api/admin/campaigns/{huge}", f"/api/admin/campaigns/{huge}/preview",
                 f"/api/admin/campaigns/{huge}/report", "/api/admin/events/0"):
        assert client.get(path, headers=AUTH).status_code == 422, path
    assert client.post(f"/api/admin/events/{huge}/cancel", headers=AUTH).status_code == 422
    event = _event(client)
    too_big = {"kind": "job_fair", "title": "x", "starts_at": event["starts_at"], "capacity": huge}
    assert client.post("/api/admin/events", json=too_big, headers=AUTH).status_code == 422
    body = _campaign_body(event["id"], audience={"filter": {}, "include_ids": [huge]})
    assert client.post("/api/admin/campaigns", json=body, headers={**AUTH, "Idempotency-Key": "huge"}).status_code == 422
    assert client.get(f"/api/admin/events/{event['id']}", headers=AUTH).json()["title"] == "丽水专场招聘会"


def test_control_characters_are_refused_not_a_500(client) -> None:
    # PostgreSQL text cannot hold NUL at all; no name, title or id needs a control character
    starts = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    for bad in ({"title": "招聘会\x00"}, {"title": "x", "venue": "\x07"}, {"title": "x", "employers": ["厂\x00"]}):
        body = {"kind": "job_fair", "starts_at": starts, **bad}
        assert client.post("/api/admin/events", json=body, headers=AUTH).status_code == 422, bad
    event = _event(client)
    body = _campaign_body(event["id"], audience={"filter": {"township": ["兴文镇\x00"]}})
    assert client.post("/api/admin/campaigns", json=body, headers={**AUTH, "Idempotency-Key": "nul"}).status_code == 422
    good = _campaign_body(event["id"], template="【巴中就业】{标题}\n{时间} {地点}")  # newlines are fine
    assert client.post("/api/admin/campaigns", json=good, headers={**AUTH, "Idempotency-Key": "k\x00"}).status_code == 422
    assert client.post("/api/admin/campaigns", json=good, headers={**AUTH, "Idempotency-Key": "ok"}).status_code == 201
    assert client.get("/api/admin/campaigns", params={"state": "draft\x00"}, headers=AUTH).status_code == 422
    assert client.post("/api/simulator/message", json={"user": "p\x00", "text": "你好"}).status_code == 422
    # a person's own text is cleaned, not refused
    assert client.post("/api/simulator/message", json={"user": "p", "text": "你好\x00"}).status_code == 200


def test_preview_schedule_send_report_csv(client, factory) -> None:
    with session_scope(factory) as s:
        insert_labourers(s, 12)  # townships cycle through six; 兴文镇 and 白衣镇 get four people
        s.execute(Labourer.__table__.update().where(Labourer.id == 1).values(wechat_openid=None))
        s.execute(Labourer.__table__.update().where(Labourer.id == 7).values(subscribed_wechat=False,
                                                                               subscribed_sms=False))
    event = _event(client)
    campaign = client.post("/api/admin/campaigns", json=_campaign_body(event["id"]),
                           headers={**AUTH, "Idempotency-Key": "p-1"}).json()
    cid = campaign["id"]

    preview = client.get(f"/api/admin/campaigns/{cid}/preview", headers=AUTH).json()
    assert preview["audience_total"] == 4 and preview["recipients"] == 3
    assert preview["by_channel"] == {"sms": 1, "wechat": 2}
    assert preview["unreachable"] == {"unsubscribed": 1}
    assert preview["by_township"] == {"兴文镇": 2, "白衣镇": 1}
    assert len(preview["samples"]) == 3 and "丽水专场招聘会" in preview["samples"][0]["text"]
    assert preview["estimated_seconds"] is not None

    assert client.post(f"/api/admin/campaigns/{cid}/resume", headers=AUTH).status_code == 409  # draft
    assert client.post(f"/api/admin/campaigns/{cid}/schedule", headers=AUTH).json()["state"] == "scheduled"
    with session_scope(factory) as s:
        steps = {st.kind: st.id for st in s.scalars(select(CampaignStep).where(CampaignStep.campaign_id == cid))}
        assert set(steps) == {"initial", "reminder"}
        fire_step(s, steps["initial"])
    wechat, sms = RecordingSender("wechat"), RecordingSender("sms")
    Dispatcher(factory, {"wechat": wechat, "sms": sms}, DispatchConfig(rates={}, windows={})).run(until_idle=True)

    report = client.get(f"/api/admin/campaigns/{cid}/report", headers=AUTH).json()
    assert report["by_status"] == {"sent": 3, "skipped": 1}
    assert report["by_channel"] == {"wechat": {"sent": 2}, "sms": {"sent": 1}, "none": {"skipped": 1}}
    assert report["failures_by_reason"] == {"unsubscribed": 1}
    assert report["state"] == "scheduled"  # the initial send is done, the reminder is still to come

    response = client.get(f"/api/admin/campaigns/{cid}/report.csv", headers=AUTH)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"sent", "skipped"}
    assert all("****" in r["phone"] for r in rows)
    with session_scope(factory) as s:
        exports = s.scalars(select(AuditLog).where(AuditLog.action == "export")).all()
        assert [(e.actor, e.object_type, e.object_id) for e in exports] == [("test-admin", "campaign", str(cid))]

    assert client.post(f"/api/admin/campaigns/{cid}/pause", headers=AUTH).json()["state"] == "paused"
    assert client.post(f"/api/admin/campaigns/{cid}/resume", headers=AUTH).json()["state"] == "scheduled"
    assert client.post(f"/api/admin/campaigns/{cid}/cancel", headers=AUTH).json()["state"] == "cancelled"
    assert client.post(f"/api/admin/campaigns/{cid}/schedule", headers=AUTH).status_code == 409
    assert client.post(f"/api/admin/campaigns/{cid}/explode", headers=AUTH).status_code == 404


def test_in_process_scheduler_sends_a_scheduled_campaign(make_settings) -> None:
    """GONGYOU_SCHEDULER_ENABLED: the app's lifespan runs the leader and a dispatcher."""
    import time

    from fastapi.testclient import TestClient

    from bot.app import create_app

    settings = make_settings(scheduler_enabled=True, dispatch_senders="tests.test_campaign_api:recording_senders",
                             sms_send_hours="00:00-24:00", wechat_send_hours="00:00-24:00")
    app = create_app(settings, configure_logs=False)
    factory = app.state.sessionmaker
    with session_scope(factory) as s:
        insert_labourers(s, 6)
    with TestClient(app) as client:
        event = _event(client)
        cid = client.post("/api/admin/campaigns", json=_campaign_body(event["id"], reminders=[]),
                          headers={**AUTH, "Idempotency-Key": "live"}).json()["id"]
        client.post(f"/api/admin/campaigns/{cid}/schedule", headers=AUTH)
        deadline = time.monotonic() + 15
        while client.get(f"/api/admin/campaigns/{cid}", headers=AUTH).json()["state"] != "done":
            assert time.monotonic() < deadline, client.get(f"/api/admin/campaigns/{cid}/report", headers=AUTH).json()
            time.sleep(0.1)
        assert client.get(f"/api/admin/campaigns/{cid}/report", headers=AUTH).json()["by_status"] == {"sent": 2}
        senders = app.state.campaign_scheduler._dispatcher.senders
        assert len(senders["wechat"].sent) == 2
    app.state.engine.dispose()


def recording_senders(_settings, _factory) -> dict[str, RecordingSender]:
    return {"wechat": RecordingSender("wechat"), "sms": RecordingSender("sms")}


def test_officials_writes_and_labourers_messages_at_once_all_answer(client, factory) -> None:
    # The server's worker threads take each request's commit as they come free: a write begun on one thread
    # is committed on another (this once left the SQLite writer lock held and every later write hanging).
    starts = (datetime.now(UTC) + timedelta(days=3)).isoformat()

    def work(i: int) -> int:
        if i % 2:
            body = {"kind": "training", "title": f"电工班{i}", "starts_at": starts}
            return client.post("/api/admin/events", json=body, headers=AUTH).status_code
        return client.post("/api/simulator/message", json={"user": f"u{i}", "text": "培训补贴有好多钱"}).status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(work, range(200), timeout=60))
    assert codes == [201 if i % 2 else 200 for i in range(200)]
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 100
