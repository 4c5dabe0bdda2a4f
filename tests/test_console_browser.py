"""The console in Debian's chromium against the real HTTP server: sign in, read the audit log, sign out.
Screenshots go to the `artifacts` folder (tests/artifacts/<test>/ or $GONGYOU_ARTIFACTS_DIR)."""

from __future__ import annotations

import pytest

from conftest import STAFF_PASSWORD

pytestmark = pytest.mark.browser


def test_an_admin_signs_in_reads_the_audit_log_and_signs_out(live_server, browser_page, make_staff, artifacts):
    make_staff("zhang-admin", "admin")
    page = browser_page
    page.goto(f"{live_server.url}/console/")
    assert page.url.endswith("/console/login?next=/console/")
    page.fill("input[name=username]", "zhang-admin")
    page.fill("input[name=password]", "not-my-password")
    page.click("button[type=submit]")
    assert "用户名或密码不对" in page.inner_text("[role=alert]")
    page.screenshot(path=str(artifacts / "1-login-failed.png"), full_page=True)

    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/console/")
    assert "您好，zhang-admin" in page.inner_text("main")
    page.screenshot(path=str(artifacts / "2-home.png"), full_page=True)

    page.click("nav >> text=审计日志")
    page.wait_for_url("**/console/audit")
    table = page.inner_text("table")
    assert "登录失败" in table and "用户名或密码错误" in table and "登录" in table
    page.select_option("select[name=action]", "login_failed")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**action=login_failed**")
    assert page.locator("tbody tr").count() == 1
    page.screenshot(path=str(artifacts / "3-audit-log.png"), full_page=True)

    page.click("text=退出登录")
    page.wait_for_url("**/console/login")
    page.goto(f"{live_server.url}/console/audit")
    assert "/console/login" in page.url  # the session is gone
    page.screenshot(path=str(artifacts / "4-signed-out.png"), full_page=True)
