"""What the officials' campaign and event API refuses (issue 10, hole 10): bodies over the cap (413), filters
longer than any real list of places or types (422), and JSON of the wrong kind — "false" for a flag, true
for a number — which used to be stored as a meaning nobody chose."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db import session_scope
from bot.models import Audience, Event
from scheduler.audience import MAX_VALUES


@pytest.fixture
def factory(app):
    return app.state.sessionmaker


def _campaign(client, auth, key: str, **fields):
    body = {"name": "通知", "audience": {"filter": {"township": ["兴文镇"]}}, "channels": ["sms"], **fields}
    return client.post("/api/admin/campaigns", json=body, headers={**auth, "Idempotency-Key": key})


def _event_body(**fields) -> dict:
    return {"kind": "job_fair", "title": "春风行动招聘会", "starts_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
            **fields}


def test_a_44_mb_campaign_body_is_refused_before_it_is_read(client, admin_auth, factory) -> None:
    filler = "兴文镇" * (44 * 1024 * 1024 // 9)
    body = json.dumps({"name": "通知", "audience": {"filter": {"village": [filler]}}}, ensure_ascii=False).encode()
    headers = {**admin_auth, "Idempotency-Key": "huge", "Content-Type": "application/json"}
    response = client.post("/api/admin/campaigns", content=body, headers=headers)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for start in range(0, len(body), 1 << 20):
            yield body[start:start + (1 << 20)]

    response = client.post("/api/admin/campaigns", content=chunks(), headers=headers)
    assert response.status_code == 413
    with session_scope(factory) as s:
        assert s.scalars(select(Audience)).all() == []


def test_filters_longer_than_any_real_list_are_refused(client, admin_auth, factory) -> None:
    too_many = [f"村{n}" for n in range(MAX_VALUES + 1)]
    response = _campaign(client, admin_auth, "long", audience={"filter": {"village": too_many}})
    assert response.status_code == 422 and f"at most {MAX_VALUES}" in response.text
    counted = client.post("/api/admin/campaigns/audience", json={"filter": {"township": too_many}}, headers=admin_auth)
    assert counted.status_code == 422 and "township" in counted.text
    long_name = _campaign(client, admin_auth, "name", audience={"filter": {"village": ["村" * 65]}})
    assert long_name.status_code == 422
    many_ids = _campaign(client, admin_auth, "ids", audience={"filter": {}, "include_ids": list(range(1, 100_002))})
    assert many_ids.status_code == 422
    assert _campaign(client, admin_auth, "fine", audience={"filter": {"village": too_many[:MAX_VALUES]}}).status_code == 201
    with session_scope(factory) as s:
        assert [len(a.filter["village"]) for a in s.scalars(select(Audience))] == [MAX_VALUES]


@pytest.mark.parametrize("audience_filter", [
    {"subscribed": "false"}, {"subscribed": 0}, {"subscribed": "no"},
    {"age_min": True}, {"age_max": "40"}, {"age_min": 30.5},
    {"township": 5}, {"township": {"name": "兴文镇"}},
])
def test_filter_values_of_the_wrong_kind_are_refused(client, admin_auth, factory, audience_filter) -> None:
    response = _campaign(client, admin_auth, "bad", audience={"filter": audience_filter})
    assert response.status_code == 422, response.text
    assert next(iter(audience_filter)) in response.text
    counted = client.post("/api/admin/campaigns/audience", json={"filter": audience_filter}, headers=admin_auth)
    assert counted.status_code == 422
    with session_scope(factory) as s:
        assert s.scalars(select(Audience)).all() == []


def test_subscribed_false_is_stored_as_false(client, admin_auth, factory) -> None:
    response = _campaign(client, admin_auth, "ok", audience={"filter": {"subscribed": False, "age_min": 18}})
    assert response.status_code == 201, response.text
    assert response.json()["audience"]["filter"] == {"subscribed": False, "age_min": 18}
    response = _campaign(client, admin_auth, "ok2", audience={"filter": {"subscribed": True}})
    assert response.json()["audience"]["filter"] == {"subscribed": True}


@pytest.mark.parametrize("fields", [
    {"signup": "false"}, {"signup": 0}, {"reminders": [{"hours_before": True}]},
    {"reminders": [{"days_before": "1", "at": "18:00"}]}, {"event_id": "1"}, {"event_id": True},
    {"audience": {"filter": {}, "include_ids": ["1"]}}, {"audience": {"filter": {}, "include_ids": [True]}},
])
def test_campaign_fields_of_the_wrong_kind_are_refused(client, admin_auth, factory, fields) -> None:
    client.post("/api/admin/events", json=_event_body(), headers=admin_auth)
    response = _campaign(client, admin_auth, "wrong", **fields)
    assert response.status_code == 422, response.text
    field = next(iter(fields))
    assert any(field in error["loc"] for error in response.json()["detail"])


@pytest.mark.parametrize("fields", [
    {"signup_enabled": "false"}, {"signup_enabled": 1}, {"jobs_count": True}, {"jobs_count": "1300"},
    {"capacity": 2.5}, {"capacity": "50"},
])
def test_event_fields_of_the_wrong_kind_are_refused(client, admin_auth, factory, fields) -> None:
    response = client.post("/api/admin/events", json=_event_body(**fields), headers=admin_auth)
    assert response.status_code == 422, response.text
    assert any(next(iter(fields)) in error["loc"] for error in response.json()["detail"])
    with session_scope(factory) as s:
        assert s.scalars(select(Event)).all() == []


def test_right_kinds_are_kept(client, admin_auth) -> None:
    event = client.post("/api/admin/events", json=_event_body(jobs_count=1300, capacity=50, signup_enabled=False),
                        headers=admin_auth)
    assert event.status_code == 201, event.text
    assert (event.json()["jobs_count"], event.json()["capacity"], event.json()["signup_enabled"]) == (1300, 50, False)
    campaign = _campaign(client, admin_auth, "right", event_id=event.json()["id"], signup=False,
                         reminders=[{"hours_before": 2}, {"days_before": 1, "at": "18:00"}])
    assert campaign.status_code == 201, campaign.text
    assert campaign.json()["signup"] is False
