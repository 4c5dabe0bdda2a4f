"""The simulator page in a real browser against the real HTTP server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_a_labourer_chats_in_the_simulator_page(live_server, browser_page):
    page = browser_page
    page.goto(f"{live_server.url}/simulator")
    page.fill("#user", "browser-user")
    page.fill("#text", "你好")
    page.click("button[type=submit]")
    page.wait_for_selector(".msg.bot")
    assert "政策咨询" in page.inner_text("#log")
    page.fill("#text", "1")
    page.press("#text", "Enter")
    page.wait_for_function("document.querySelectorAll('.msg.bot').length >= 2")
    assert "公益性岗位" in page.locator(".msg.bot").nth(1).inner_text()
