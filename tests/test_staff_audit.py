"""Staff sign-in (POST /api/auth/token), tokens that expire and are revoked, sign-in limits, the append-only
audit log, masked personal data with an audited reveal, and what the scope rule does to writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from bot.db import make_engine, session_scope
from bot.models import AuditLog, Campaign, Complaint, Event, Handoff, Labourer, StaffSession, utcnow
from bot.models.complaints import create_complaint

from conftest import STAFF_PASSWORD
from staff_routes import AREA_A, AREA_B, seed_world, staff_areas
from test_dialog_support import add_roster_labourer, rows, send


def sign_in(client, username: str, password: str = STAFF_PASSWORD):  # noqa: ANN001, ANN201
    return client.post("/api/auth/token", data={"username": username, "password": password})


def audit_rows(app, *where) -> list[AuditLog]:  # noqa: ANN001
    return rows(app, AuditLog, *where)


def test_a_token_opens_the_api_until_it_is_revoked(client, app, make_staff) -> None:
    make_staff("pc-official", "official", [{"county": "平昌县"}])
    response = sign_in(client, "pc-official")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type"} and body["token_type"] == "bearer"
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    me = client.get("/api/auth/me", headers=auth).json()
    assert me == {"username": "pc-official", "role": "official", "areas": [{"county": "平昌县", "township": None,
                                                                            "village": None}]}
    with session_scope(app.state.sessionmaker) as session:  # only a hash of the token is stored
        assert body["access_token"] not in {s.secret_hash for s in session.scalars(select(StaffSession))}
    assert client.post("/api/auth/logout", headers=auth).status_code == 204
    assert client.get("/api/auth/me", headers=auth).status_code == 401
    logins = [(a.actor, a.action, a.ip) for a in audit_rows(app, AuditLog.action.in_(("login", "logout")))]
    assert ("pc-official", "login", "testclient") in logins and ("pc-official", "logout", "testclient") in logins


def test_bad_credentials_are_401_and_audited_alike(client, app, make_staff) -> None:
    make_staff("desk", "helpdesk")
    wrong = sign_in(client, "desk", "not-the-password")
    unknown = sign_in(client, "nobody", STAFF_PASSWORD)
    assert wrong.status_code == unknown.status_code == 401 and wrong.json() == unknown.json()
    assert sign_in(client, "desk\x00", STAFF_PASSWORD).status_code == 401  # NUL: refused, not a 500
    failures = [(a.actor, a.detail["reason"]) for a in audit_rows(app, AuditLog.action == "login_failed")]
    assert failures == [("desk", "bad_credentials"), ("nobody", "bad_credentials"), ("desk?", "bad_credentials")]


def test_failed_sign_ins_are_limited_per_account_and_per_address(client, make_staff) -> None:
    make_staff("target", "official", [{"county": "平昌县"}])
    for _ in range(5):
        assert sign_in(client, "target", "guess-guess").status_code == 401
    # the sixth try is refused even with the right password, until the window has passed
    limited = sign_in(client, "target")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "900"
    # Per address: 20 failures on different names from one address close it for every name.
    for n in range(15):
        sign_in(client, f"spray-{n}", "x" * 8)
    make_staff("innocent", "admin")
    assert sign_in(client, "innocent").status_code == 429
    assert sign_in(client, "target").status_code == 429


def test_the_window_passes(app, make_staff) -> None:
    """Failures older than the window no longer count (the clock is passed in)."""
    from bot.auth import SignInRefused, authenticate

    make_staff("later", "admin")
    settings = app.state.settings
    start = utcnow()
    with session_scope(app.state.sessionmaker) as session:
        for _ in range(5):
            with pytest.raises(SignInRefused):
                authenticate(session, "later", "wrong-wrong", ip="10.0.0.1", settings=settings, now=start)
    with session_scope(app.state.sessionmaker) as session:
        with pytest.raises(SignInRefused) as refused:
            authenticate(session, "later", STAFF_PASSWORD, ip="10.0.0.1", settings=settings, now=start)
        assert refused.value.reason == "rate_limited"
    with session_scope(app.state.sessionmaker) as session:
        # audit rows carry their own time: count from a window that starts after them
        staff = authenticate(session, "later", STAFF_PASSWORD, ip="10.0.0.1", settings=settings,
                             now=utcnow() + timedelta(minutes=16))
        assert staff.username == "later"


def test_expired_and_disabled_accounts_lose_their_tokens(client, app, make_staff) -> None:
    auth = make_staff("old", "admin")
    with session_scope(app.state.sessionmaker) as session:
        session.execute(update(StaffSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/api/auth/me", headers=auth).status_code == 401
    admin = make_staff("boss", "admin")
    victim = make_staff("leaver", "helpdesk")
    assert client.get("/api/auth/me", headers=victim).status_code == 200
    assert client.post("/api/admin/staff/leaver/disable", headers=admin).json()["active"] is False
    assert client.get("/api/auth/me", headers=victim).status_code == 401
    assert sign_in(client, "leaver").status_code == 401  # and cannot sign in again
    assert "staff_disabled" in [a.action for a in audit_rows(app, AuditLog.object_id == "leaver")]


def test_the_audit_log_cannot_be_changed(app) -> None:
    with session_scope(app.state.sessionmaker) as session:
        session.add(AuditLog(actor="someone", action="login", detail={}))
    engine = app.state.engine
    for statement in ("UPDATE audit_log SET actor = 'nobody'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    assert [a.actor for a in audit_rows(app)] == ["someone"]


def test_access_log_rows_become_audit_rows(tmp_path) -> None:
    from alembic import command

    from bot.db import alembic_config

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(engine), "0005")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO labourer (id, name, household_status, employment_status, subscribed_wechat, "
                          "subscribed_sms, wants_startup, public_welfare_post, source, verified, created_at, updated_at) "
                          "VALUES (7, '王', 'general', 'unknown', 1, 1, 0, 0, 'roster', 1, '2026-01-01', '2026-01-01')"))
        conn.execute(text("INSERT INTO access_log (actor, action, labourer_id, detail, note, created_at) VALUES "
                          "('officer-1', 'view_phone', 7, '{\"field\": \"phone\"}', '回访', '2026-01-02 03:04:05')"))
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT actor, action, object_type, object_id, note FROM audit_log")).one()
    engine.dispose()
    assert tuple(row) == ("officer-1", "view_phone", "labourer", "7", "回访")


# ---- masked by default, one audited reveal --------------------------------------------------------


@pytest.fixture
def world(app):  # noqa: ANN001, ANN201
    with session_scope(app.state.sessionmaker) as session:
        return seed_world(session, app.state.settings.data_key)


def test_personal_data_is_masked_and_a_reveal_is_audited(client, app, make_staff, world) -> None:
    official = make_staff("bai-official", "official", staff_areas("official", AREA_A))
    listed = client.get("/api/admin/labourers", headers=official).json()
    assert listed["total"] == 1
    [person] = listed["items"]
    assert person["phone"] == "139****4567" and person["id_number"] == "5119**********1234"
    assert "13912344567" not in str(listed)
    shown = client.post(f"/api/admin/labourers/{world['labourer_id']}/reveal", headers=official,
                        json={"field": "id_number", "reason": "核对培训补贴"})
    assert shown.json() == {"value": "511923199001011234"}
    [row] = audit_rows(app, AuditLog.action == "reveal")
    assert (row.actor, row.object_type, row.object_id, row.detail, row.note, row.ip) == (
        "bai-official", "labourer", str(world["labourer_id"]), {"field": "id_number"}, "核对培训补贴", "testclient")

    desk = make_staff("desk-pc", "helpdesk", staff_areas("helpdesk", AREA_A))
    phone = client.post(f"/api/helpdesk/complaints/{world['complaint_id']}/reveal", headers=desk, json={})
    assert phone.json() == {"value": "13912344567"}
    other = make_staff("desk-bz", "helpdesk", staff_areas("helpdesk", AREA_B))
    assert client.post(f"/api/helpdesk/complaints/{world['complaint_id']}/reveal", headers=other,
                       json={}).status_code == 404
    assert len(audit_rows(app, AuditLog.action == "reveal")) == 2  # a refused reveal writes nothing


# ---- what the scope rule does to what scoped staff create ------------------------------------------


def test_a_scoped_officials_campaign_stays_in_their_area(client, app, make_staff, world) -> None:
    township = make_staff("bai", "official", staff_areas("official", AREA_A))
    event = client.post("/api/admin/events", headers=township, json={
        "kind": "training", "title": "白衣镇电焊班", "starts_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()})
    assert event.status_code == 201
    assert (event.json()["county"], event.json()["township"], event.json()["owner_township"]) == (
        "平昌县", "白衣镇", "白衣镇")
    elsewhere = client.post("/api/admin/events", headers=township, json={
        "kind": "training", "title": "x", "county": "巴州区", "starts_at": event.json()["starts_at"]})
    assert elsewhere.status_code == 422

    made = client.post("/api/admin/campaigns", headers={**township, "Idempotency-Key": "a"},
                       json={"name": "电焊班通知", "audience": {"filter": {}}, "channels": ["sms"]})
    assert made.status_code == 201, made.text
    assert made.json()["audience"]["filter"] == {"county": ["平昌县"], "township": ["白衣镇"]}
    assert made.json()["owner_township"] == "白衣镇"
    outside = client.post("/api/admin/campaigns", headers={**township, "Idempotency-Key": "b"},
                          json={"name": "x", "audience": {"filter": {"township": ["曾口镇"]}}, "channels": ["sms"]})
    assert outside.status_code == 422 and "outside your area" in outside.text
    with session_scope(app.state.sessionmaker) as session:
        stranger = Labourer(name="乙区工友", county="巴州区", township="曾口镇")
        session.add(stranger)
        session.flush()
        stranger_id = stranger.id
    by_id = client.post("/api/admin/campaigns", headers={**township, "Idempotency-Key": "c"},
                        json={"name": "x", "audience": {"include_ids": [stranger_id]}, "channels": ["sms"]})
    assert by_id.status_code == 422
    # the other township's official neither lists nor opens it
    zengkou = make_staff("zk", "official", staff_areas("official", AREA_B))
    assert client.get("/api/admin/campaigns", headers=zengkou).json() == []
    assert client.get(f"/api/admin/campaigns/{made.json()['id']}", headers=zengkou).status_code == 404
    assert [a.action for a in audit_rows(app, AuditLog.actor == "bai", AuditLog.action != "login")] == [
        "event_created", "campaign_created"]


def test_complaints_and_handoffs_take_the_labourers_area(app) -> None:
    labourer_id = add_roster_labourer(app, name="张三", township="白衣镇", county="平昌县")
    with session_scope(app.state.sessionmaker) as session:
        complaint = create_complaint(session, day=datetime.now(UTC).date(), channel="sms", user_id="h",
                                     category="欠薪", employer="某公司", labourer_id=labourer_id)
        assert (complaint.county, complaint.township) == ("平昌县", "白衣镇")
        from bot.models import ConversationState

        session.add(ConversationState(channel="simulator", user_id="zs", labourer_id=labourer_id, slots={}, context={}))
    send(app, "zs", "我要找人工客服")
    [handoff] = rows(app, Handoff)
    assert (handoff.labourer_id, handoff.county, handoff.township) == (labourer_id, "平昌县", "白衣镇")
    [complaint] = rows(app, Complaint)
    assert complaint.county == "平昌县"


def test_request_bodies_are_capped_with_a_clear_413(client, admin_auth) -> None:
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    response = client.post("/api/admin/campaigns", content=big, headers={**admin_auth, "Idempotency-Key": "big",
                                                                         "Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than" in response.json()["detail"]

    def chunks():  # no Content-Length: the size is only known while reading
        for _ in range(40):
            yield b"x" * 65536

    chunked = client.post("/api/nlu/parse", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert client.post("/api/nlu/parse", json={"text": "你好"}).status_code == 200
