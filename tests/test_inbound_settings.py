"""Production refuses to start on unsafe settings, naming the variable; GONGYOU_ENV takes only its
documented values. Read from the environment, as `gongyou serve` reads them."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from bot.settings import Settings

STRONG_KEY = "Zq8v1c0m3XbT5nUe7Lr2Wd9Hs4Kp6Ya8Fg1Jt3Vx5Qw7"  # 44 characters of base64: 264 bits
STRONG_TOKEN = "Wx7Tk2Qm9Lp4Zr8Vb3Nc"


@pytest.fixture
def production(monkeypatch):  # noqa: ANN001, ANN201
    for name in ("GONGYOU_DEMO_DATA", "GONGYOU_SIMULATOR", "GONGYOU_SMS_PROVIDER", "GONGYOU_SMS_CALLBACK_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GONGYOU_ENV", "production")
    monkeypatch.setenv("GONGYOU_DATA_KEY", STRONG_KEY)
    monkeypatch.setenv("GONGYOU_WECHAT_TOKEN", STRONG_TOKEN)
    return monkeypatch


def test_safe_production_starts_without_demo_data_or_simulator(production):
    settings = Settings()
    assert settings.env == "production" and settings.demo_data is False and settings.simulator is False


@pytest.mark.parametrize("value", ["Production", "prod", "PRODUCTION", "staging", "", " production", "dev"])
def test_only_documented_environments(monkeypatch, value):
    monkeypatch.setenv("GONGYOU_ENV", value)
    with pytest.raises(ValidationError, match="GONGYOU_ENV must be one of development, production"):
        Settings()


def test_demo_data_is_refused_in_production(production):
    production.setenv("GONGYOU_DEMO_DATA", "true")
    with pytest.raises(ValidationError, match="GONGYOU_DEMO_DATA"):
        Settings()


@pytest.mark.parametrize("key", ["k", "k" * 32, " " * 44, "0123456789abcdef", "password-password-password",
                                 "Zq8v1c0m3XbT5nUe7Lr2Wd9Hs4Kp6Ya"])
def test_a_data_key_under_32_bytes_of_randomness_is_refused(production, key):
    production.setenv("GONGYOU_DATA_KEY", key)
    with pytest.raises(ValidationError, match="GONGYOU_DATA_KEY"):
        Settings()


@pytest.mark.parametrize("key", ["8f3b2a91c4d7e6f01a2b3c4d5e6f708192a3b4c5d6e7f8091b2c3d4e5f607182", STRONG_KEY])
def test_long_random_keys_are_accepted(production, key):  # 64 hex digits, or 44 characters of base64
    production.setenv("GONGYOU_DATA_KEY", key)
    assert Settings().data_key == key


@pytest.mark.parametrize("token", ["", " " * 16, "t", "t" * 20, "short-token", "x" * 40, "令牌令牌令牌令牌令牌令牌令牌令牌"])
def test_a_blank_short_or_weak_wechat_token_is_refused(production, token):
    production.setenv("GONGYOU_WECHAT_TOKEN", token)
    with pytest.raises(ValidationError, match="GONGYOU_WECHAT_TOKEN"):
        Settings()


def test_development_is_still_zero_setup(monkeypatch):
    for name in ("GONGYOU_ENV", "GONGYOU_DATA_KEY", "GONGYOU_WECHAT_TOKEN", "GONGYOU_DEMO_DATA", "GONGYOU_SIMULATOR"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.env == "development" and settings.demo_data is True and settings.simulator is True


def test_a_non_ascii_console_csrf_token_is_a_403_not_a_500(client, make_staff):
    from tests.conftest import STAFF_PASSWORD

    make_staff("boss", "admin")
    for token in ("令牌", "é" * 40):
        refused = client.post("/console/login", data={"username": "boss", "password": STAFF_PASSWORD, "csrf_token": token})
        assert refused.status_code == 403
    page = client.get("/console/login")
    good = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/console/login", data={"username": "boss", "password": STAFF_PASSWORD, "csrf_token": good})
    assert client.post("/console/logout", data={"csrf_token": "令牌"}, follow_redirects=False).status_code == 403
