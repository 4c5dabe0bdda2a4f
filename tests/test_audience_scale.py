"""Audiences named by long id lists (issue 10, hole 10): every size the API allows previews and plans on
SQLite and PostgreSQL, and a campaign whose step cannot be planned fails where officials see it instead of
waiting "scheduled" for ever with no deliveries."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from bot.db import session_scope
from bot.models import Audience, Campaign, CampaignStep, Delivery, Labourer
from scheduler.planning import fire_step
from tests.synthetic import insert_labourers

from test_console import login

NOBODY = {"township": ["无此镇"]}  # a filter nobody matches: the ids alone make the audience


@pytest.fixture
def factory(app):
    return app.state.sessionmaker


def _create(client, auth, audience: dict, key: str) -> dict:
    body = {"name": "按名单通知", "audience": audience, "channels": ["wechat", "sms"]}
    response = client.post("/api/admin/campaigns", json=body, headers={**auth, "Idempotency-Key": key})
    assert response.status_code == 201, response.text[:500]
    return response.json()


def _initial_step(factory, campaign_id: int) -> int:
    with session_scope(factory) as s:
        return s.scalar(select(CampaignStep.id).where(CampaignStep.campaign_id == campaign_id,
                                                      CampaignStep.kind == "initial"))


def test_seventy_thousand_include_ids_preview_and_plan(client, factory, admin_auth) -> None:
    # More ids than PostgreSQL's 65,535 bind parameters: preview was a 500 and planning never happened.
    with session_scope(factory) as s:
        insert_labourers(s, 70_100, encrypt_phones=False)
        ids = list(s.scalars(select(Labourer.id).order_by(Labourer.id)))
    chosen, left_out = ids[:70_000], ids[:50]
    campaign = _create(client, admin_auth, {"filter": NOBODY, "include_ids": chosen, "exclude_ids": left_out}, "big")

    preview = client.get(f"/api/admin/campaigns/{campaign['id']}/preview", headers=admin_auth)
    assert preview.status_code == 200, preview.text[:500]
    assert preview.json()["audience_total"] == 69_950

    assert client.post(f"/api/admin/campaigns/{campaign['id']}/schedule", headers=admin_auth).status_code == 200
    with session_scope(factory) as s:
        result = fire_step(s, _initial_step(factory, campaign["id"]))
    assert (result.status, result.planned) == ("fired", 69_950)
    with session_scope(factory) as s:
        planned = set(s.scalars(select(Delivery.labourer_id).where(Delivery.campaign_id == campaign["id"])))
    assert planned == set(chosen) - set(left_out)
    assert client.get(f"/api/admin/campaigns/{campaign['id']}", headers=admin_auth).json()["state"] == "sending"


def test_stored_id_lists_longer_than_any_bind_parameter_limit(client, factory, admin_auth) -> None:
    # 260,000 ids (beyond SQLite's 250,000 variables too), as an audience already stored may hold them.
    with session_scope(factory) as s:
        insert_labourers(s, 20, encrypt_phones=False)
        ids = list(s.scalars(select(Labourer.id).order_by(Labourer.id)))
    campaign = _create(client, admin_auth, {"filter": NOBODY, "include_ids": ids[:10]}, "stored")
    with session_scope(factory) as s:
        s.execute(update(Audience).where(Audience.id == campaign["audience_id"]).values(
            include_ids=ids[:10] + list(range(10_000_000, 10_260_000)),
            exclude_ids=ids[:3] + list(range(20_000_000, 20_260_000))))

    preview = client.get(f"/api/admin/campaigns/{campaign['id']}/preview", headers=admin_auth)
    assert preview.status_code == 200, preview.text[:500]
    assert preview.json()["audience_total"] == 7
    client.post(f"/api/admin/campaigns/{campaign['id']}/schedule", headers=admin_auth)
    with session_scope(factory) as s:
        assert fire_step(s, _initial_step(factory, campaign["id"])).planned == 7


@pytest.mark.parametrize("stored", [{"filter": {"lists": ["poor_list"]}}, {"include_ids": [3_000_000_000]},
                                    {"exclude_ids": ["12"]}])
def test_a_campaign_that_cannot_plan_fails_visibly(client, factory, admin_auth, stored) -> None:
    with session_scope(factory) as s:
        insert_labourers(s, 6, encrypt_phones=False)
    campaign = _create(client, admin_auth, {"filter": {"township": ["兴文镇"]}}, "doomed")
    assert client.post(f"/api/admin/campaigns/{campaign['id']}/schedule", headers=admin_auth).status_code == 200
    # The stored audience no longer means anything (a list renamed since, ids no database row can have):
    # planning cannot run.
    with session_scope(factory) as s:
        s.execute(update(Audience).where(Audience.id == campaign["audience_id"]).values(**stored))
    step_id = _initial_step(factory, campaign["id"])
    with session_scope(factory) as s:
        result = fire_step(s, step_id)
    assert result.status == "failed" and "AudienceError" in (result.reason or "")

    shown = client.get(f"/api/admin/campaigns/{campaign['id']}", headers=admin_auth).json()
    assert shown["state"] == "failed" and "planning failed" in shown["state_reason"]
    report = client.get(f"/api/admin/campaigns/{campaign['id']}/report", headers=admin_auth).json()
    assert [(st["kind"], st["status"], st["skip_reason"]) for st in report["steps"]] == [
        ("initial", "failed", "planning_failed")]
    with session_scope(factory) as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0
        again = fire_step(s, step_id)  # the scheduler's next sync: nothing left pending to retry for ever
    assert again.status == "failed"
    with session_scope(factory) as s:
        assert s.get(Campaign, campaign["id"]).state == "failed"
    assert client.get("/api/admin/campaigns?state=scheduled", headers=admin_auth).json() == []

    login(client, "test-admin")  # the official sees it on the campaign's page, with the reason
    page = client.get(f"/console/campaigns/{campaign['id']}")
    assert page.status_code == 200 and 'id="failed"' in page.text and "无法发送" in page.text and "AudienceError" in page.text
