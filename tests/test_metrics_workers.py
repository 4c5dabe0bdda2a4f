"""`gongyou serve --workers 2`: each worker counts into the shared multiprocess folder, so whichever worker
answers GET /metrics, the figures are the whole service's — checked after real signed WeChat callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.wechat_platform import AES_KEY, APPID, TOKEN, WeChatPlatform
from tests.roles import Fleet, healthy

METRICS_TOKEN = "workers-scrape-secret"


@pytest.fixture
def fleet(tmp_path) -> Iterator[Fleet]:  # noqa: ANN001
    fleet = Fleet(tmp_path, {
        "GONGYOU_DATABASE_URL": f"sqlite:///{tmp_path / 'gongyou.db'}",
        "GONGYOU_WECHAT_TOKEN": TOKEN, "GONGYOU_WECHAT_AES_KEY": AES_KEY, "GONGYOU_WECHAT_APPID": APPID,
        "GONGYOU_METRICS_TOKEN": METRICS_TOKEN, "GONGYOU_KNOWLEDGE_POLL_SECONDS": "0",
        "GONGYOU_CACHE_DIR": str(tmp_path / "cache"),
    })
    yield fleet
    fleet.stop_all()


def messages_in(text: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "gongyou_messages_total" and sample.labels["direction"] == "in")


def test_every_worker_reports_the_whole_services_messages(fleet, tmp_path):
    web = fleet.serve(workers=2)
    healthy(web)
    base = f"http://127.0.0.1:{web.port}"
    metrics_folder = tmp_path / "cache" / "metrics"

    def ask(i: int) -> str:
        with httpx.Client(base_url=base, timeout=30) as client:  # a connection each: the workers share them out
            return WeChatPlatform(client).say(f"o-worker-{i}", "参加技能培训有补贴吗", msg_id=str(700_000 + i))

    def counted_by() -> set[str]:
        return {p.name.rsplit("_", 1)[-1] for p in metrics_folder.glob("counter_*.db")}

    # The kernel hands connections to whichever worker accepts first, so keep asking until both have answered.
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        while sent < 320 and (sent == 0 or len(counted_by()) < 2):
            assert all(pool.map(ask, range(sent, sent + 32)))
            sent += 32
    assert len(counted_by()) == 2, counted_by()  # both workers answered messages and counted them
    # Several scrapes on new connections land on both workers; each one must show all the messages.
    totals = set()
    for _ in range(8):
        with httpx.Client(base_url=base, timeout=30) as fresh:
            response = fresh.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200
        totals.add(messages_in(response.text))
    assert totals == {sent}


def test_a_dispatchers_port_shows_its_broadcast_sends_and_failures_by_channel_and_reason(tmp_path):
    from bot.db import make_engine, make_sessionmaker, migrate, session_scope
    from scheduler.campaigns import transition
    from tests.fakes.sms_gateways import FakeAliyunSms
    from tests.roles import free_port, wait_for
    from tests.synthetic import insert_labourers, make_campaign

    db_url = f"sqlite:///{tmp_path / 'gongyou.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    factory = make_sessionmaker(engine)
    with session_scope(factory) as s:
        insert_labourers(s, 12, openid=None)  # reachable by SMS only
        transition(s, make_campaign(s, channels=["sms"]), "scheduled")
    with FakeAliyunSms() as gateway:
        gateway.fail_codes = ["isv.MOBILE_NUMBER_ILLEGAL"]  # the provider refuses the first number for good
        fleet = Fleet(tmp_path, {
            "GONGYOU_DATABASE_URL": db_url, "GONGYOU_CACHE_DIR": str(tmp_path / "cache"),
            "GONGYOU_SMS_PROVIDER": "aliyun", "GONGYOU_SMS_API_BASE": gateway.base,
            "GONGYOU_SMS_ACCESS_KEY_ID": gateway.key_id, "GONGYOU_SMS_ACCESS_KEY_SECRET": gateway.secret,
            "GONGYOU_SMS_TEMPLATE_ID": "SMS_000001", "GONGYOU_SMS_MIN_INTERVAL_SECONDS": "0",
            "GONGYOU_BROADCAST_WEEKLY_CAP": "0", "GONGYOU_KNOWLEDGE_POLL_SECONDS": "0",
        })
        try:
            scheduler = fleet.start("scheduler", "scheduler")  # plans the campaign's deliveries
            port = free_port()
            dispatcher = fleet.start("dispatch", "dispatch", "--always-open", "--rate", "0", "--idle-sleep", "0.2",
                                     "--metrics-port", str(port))

            def figures() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                return {(s.name, tuple(sorted(s.labels.items()))): s.value
                        for f in text_string_to_metric_families(text) for s in f.samples}

            sent = ("gongyou_sends_total", (("channel", "sms"), ("kind", "sms"), ("outcome", "ok"),
                                            ("purpose", "marketing")))
            wait_for(lambda: figures().get(sent) == 11, timeout=120, what="eleven messages sent",
                     roles=[scheduler, dispatcher])
            seen = figures()
        finally:
            fleet.stop_all()
    engine.dispose()
    assert seen[("gongyou_sends_total", (("channel", "sms"), ("kind", "sms"), ("outcome", "failed"),
                                         ("purpose", "marketing")))] == 1
    assert seen[("gongyou_send_failures_total", (("channel", "sms"), ("reason", "isv.MOBILE_NUMBER_ILLEGAL")))] == 1
    assert seen[("gongyou_dispatch_sent", ())] == 11 and seen[("gongyou_dispatch_failed", ())] == 1
    assert seen[("gongyou_db_pool_capacity", (("role", "dispatch"),))] >= 1
