"""The console's sign-in, sessions and admin pages through HTTP (the browser test is test_console_browser.py)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update

from bot.db import session_scope
from bot.models import AuditLog, Staff, StaffSession, utcnow

from conftest import STAFF_PASSWORD
from test_dialog_support import rows

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(client, username: str, password: str = STAFF_PASSWORD, next_url: str = "/console/"):  # noqa: ANN001, ANN201
    page = client.get("/console/login")
    token = CSRF.search(page.text).group(1)
    return client.post("/console/login", data={"username": username, "password": password, "csrf_token": token,
                                               "next": next_url}, follow_redirects=False)


def csrf_of(client, path: str = "/console/") -> str:  # noqa: ANN001
    return CSRF.search(client.get(path).text).group(1)


def test_sign_in_sets_a_protected_cookie_and_lands_on_the_home_page(client, make_staff) -> None:
    make_staff("boss", "admin")
    assert client.get("/console/audit", follow_redirects=False).headers["location"] == "/console/login?next=/console/audit"
    done = login(client, "boss", next_url="/console/audit")
    assert done.status_code == 303 and done.headers["location"] == "/console/audit"
    cookie = done.headers["set-cookie"]
    assert "gongyou_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    home = client.get("/console/")
    assert home.status_code == 200 and "您好，boss" in home.text and "审计日志" in home.text


def test_sign_in_refuses_bad_passwords_missing_csrf_and_foreign_redirects(client, app, make_staff) -> None:
    make_staff("boss", "admin")
    wrong = login(client, "boss", "wrong-password")
    assert wrong.status_code == 401 and "用户名或密码不对" in wrong.text
    no_token = client.post("/console/login", data={"username": "boss", "password": STAFF_PASSWORD})
    assert no_token.status_code == 403 and "页面已过期" in no_token.text
    assert login(client, "boss", next_url="//evil.example/").headers["location"] == "/console/"
    assert [a.actor for a in rows(app, AuditLog, AuditLog.action == "login_failed")] == ["boss"]


def test_a_session_ends_after_inactivity_and_on_logout(client, app, make_staff) -> None:
    make_staff("boss", "admin")
    login(client, "boss")
    assert client.get("/console/").status_code == 200
    with session_scope(app.state.sessionmaker) as session:  # 31 minutes without a request
        session.execute(update(StaffSession).where(StaffSession.kind == "console")
                        .values(last_seen_at=utcnow() - timedelta(minutes=31)))
    assert client.get("/console/", follow_redirects=False).status_code == 303
    login(client, "boss")
    token = csrf_of(client)
    assert client.post("/console/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert client.get("/console/", follow_redirects=False).status_code == 303
    revoked = [s.revoked_at is not None for s in rows(app, StaffSession, StaffSession.kind == "console")]
    assert revoked == [False, True]  # the idle one simply ran out; logging out revoked the second


def test_admins_manage_accounts_in_the_console(client, app, make_staff) -> None:
    make_staff("boss", "admin")
    login(client, "boss")
    token = csrf_of(client, "/console/staff")
    added = client.post("/console/staff", data={"csrf_token": token, "username": "bai", "password": "bai-password-1",
                                                "role": "official", "township": "白衣镇"})
    assert added.status_code == 200 and "已添加账号 bai" in added.text and "平昌县白衣镇" in added.text
    taken = client.post("/console/staff", data={"csrf_token": token, "username": "bai", "password": "bai-password-1",
                                                "role": "official", "township": "白衣镇"})
    assert taken.status_code == 422 and "already exists" in taken.text
    assert client.post("/console/staff/bai/password", data={"csrf_token": token, "password": "new-password-2"}).status_code == 200
    assert client.post("/console/staff/bai/disable", data={"csrf_token": token}).status_code == 200
    assert client.post("/console/staff/boss/disable", data={"csrf_token": token}).status_code == 422  # not yourself
    with session_scope(app.state.sessionmaker) as session:
        bai = session.query(Staff).filter_by(username="bai").one()
        assert bai.active is False
    actions = [a.action for a in rows(app, AuditLog, AuditLog.object_id == "bai")]
    assert actions == ["staff_created", "staff_password_reset", "staff_disabled"]


def test_the_audit_page_filters_and_is_read_only(client, app, make_staff) -> None:
    make_staff("boss", "admin")
    login(client, "boss", "wrong-password")
    login(client, "boss")
    page = client.get("/console/audit")
    assert "登录失败" in page.text and "用户名或密码错误" in page.text
    failed = client.get("/console/audit", params={"action": "login_failed"})
    assert failed.text.count("<tr>") == 2  # the header and the one failure
    assert "共 0 条" in client.get("/console/audit", params={"actor": "someone-else"}).text
    assert "共 0 条" in client.get("/console/audit", params={"from": "2000-01-01", "to": "2000-01-02"}).text
    assert "<form method=\"post\"" not in page.text.split("<table>")[1]  # no action on a row


def test_htmx_requests_carry_the_csrf_header_and_are_sent_to_sign_in(client, app, make_staff) -> None:
    from staff_routes import seed_world

    with session_scope(app.state.sessionmaker) as session:
        world = seed_world(session, app.state.settings.data_key)
    make_staff("boss", "admin")
    login(client, "boss")
    home = client.get("/console/")
    header = re.search(r"hx-headers='\{\"X-CSRF-Token\": \"([^\"]+)\"\}'", home.text).group(1)
    url = f"/console/reveal/labourer/{world['labourer_id']}/phone"
    shown = client.post(url, headers={"HX-Request": "true", "X-CSRF-Token": header})
    assert shown.status_code == 200 and "13912344567" in shown.text and 'class="revealed"' in shown.text
    assert client.post(url, headers={"HX-Request": "true", "X-CSRF-Token": "forged"}).status_code == 403
    assert [a.detail for a in rows(app, AuditLog, AuditLog.action == "reveal")] == [{"field": "phone"}]
    client.cookies.clear()
    gone = client.post(url, headers={"HX-Request": "true", "X-CSRF-Token": header})
    assert gone.status_code == 401 and gone.headers["HX-Redirect"] == "/console/login"


def test_a_refusal_page_keeps_the_signed_in_members_navigation(client, make_staff) -> None:
    make_staff("boss", "admin")
    make_staff("desk", "helpdesk")
    assert "<nav>" not in client.get("/console/campaigns/999999").text  # nobody signed in: no menu to show
    login(client, "boss")
    missing = client.get("/console/campaigns/999999")
    assert missing.status_code == 404 and "找不到这个页面或记录" in missing.text
    assert "<nav>" in missing.text and "退出登录" in missing.text and 'href="/console/audit"' in missing.text
    client.cookies.clear()
    login(client, "desk")
    refused = client.get("/console/audit")
    assert refused.status_code == 403 and "没有权限" in refused.text
    assert 'href="/console/helpdesk"' in refused.text and 'href="/console/audit"' not in refused.text


def test_what_a_response_promises_is_committed_before_it_is_sent(app, make_staff) -> None:
    """A browser follows the sign-in's redirect at once: over real HTTP, with a database slow to commit, the
    next page still finds the session (the unit of work commits before the response leaves, not after)."""
    import time

    import httpx
    from sqlalchemy import event

    from conftest import LiveServer

    make_staff("boss", "admin")

    def slow_commit(_session) -> None:  # noqa: ANN001
        time.sleep(0.8)

    with LiveServer(app) as server, httpx.Client(base_url=server.url) as browser:
        form = browser.get("/console/login")
        token = CSRF.search(form.text).group(1)
        event.listen(app.state.sessionmaker, "before_commit", slow_commit)
        try:
            signed = browser.post("/console/login", data={"username": "boss", "password": STAFF_PASSWORD,
                                                          "csrf_token": token, "next": "/console/"})
            assert signed.status_code == 303
            home = browser.get("/console/")
        finally:
            event.remove(app.state.sessionmaker, "before_commit", slow_commit)
    assert home.status_code == 200 and "您好，boss" in home.text
