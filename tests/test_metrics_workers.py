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
