"""POST /wechat above capacity (bot/overload.py): acknowledged in time and answered late through the
customer-service API, shed with a 503 the platform retries when the queue is full — every person answered
once, nobody lost."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bot.app import create_app
from bot.models import MessageLog
from bot.overload import DEFER, INLINE, SHED, Admission
from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_platform import AES_KEY, APPID, SECRET, TOKEN, WeChatPlatform


@pytest.fixture
def fake_api() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(appid=APPID, secret=SECRET, cs_limit=50) as server:
        yield server


@pytest.fixture
def make_client(make_settings, fake_api):  # noqa: ANN001, ANN201
    apps = []

    def build(**overrides: object) -> TestClient:
        settings = make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID, wechat_secret=SECRET,
                                 wechat_api_base=fake_api.base, **overrides)
        app = create_app(settings, configure_logs=False)
        apps.append(app)
        client = TestClient(app)
        client.__enter__()
        apps.append(client)
        return client

    yield build
    for item in reversed(apps):
        if isinstance(item, TestClient):
            item.__exit__(None, None, None)
        else:
            item.state.engine.dispose()


def test_above_the_queue_limit_a_message_is_acknowledged_at_once_and_answered_through_the_api(make_client, fake_api):
    client = make_client(wechat_queue_defer=0)  # every callback finds the queue "long"
    wx = WeChatPlatform(client)
    started = time.perf_counter()
    response = wx.post(wx.text("o-busy", "参加技能培训有补贴吗"))
    assert wx.reply(response) is None  # "success", in time
    assert time.perf_counter() - started < 1.0
    sent = fake_api.wait_for_sent(1)
    assert sent[0]["touser"] == "o-busy" and "培训" in sent[0]["text"]["content"]


def test_a_full_queue_answers_503_before_storing_and_the_platforms_retry_is_answered(make_client, fake_api):
    client = make_client(wechat_queue_max=0)
    wx = WeChatPlatform(client)
    xml = wx.text("o-shed", "参加技能培训有补贴吗", msg_id="880001")
    assert wx.post(xml).status_code == 503
    with client.app.state.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(MessageLog)) == 0  # nothing stored, nothing half-done
    client.app.state.admission.max_queue = 5000  # the load has passed; WeChat sends the same message again
    assert "培训" in wx.reply(wx.post(xml))["Content"]


def test_a_burst_gets_every_person_one_answer_in_time_or_through_the_api(make_client, fake_api):
    client = make_client(wechat_queue_defer=1)  # a message finding another one in the pipeline is deferred …
    client.app.state.admission.defer_wait = 0.0  # … however fast the pipeline drains it
    answers: dict[str, str | None] = {}

    def ask(person: str, msg_id: int) -> tuple[str, str | None]:
        wx = WeChatPlatform(client)
        node = wx.reply(wx.post(wx.text(person, "参加技能培训有补贴吗", msg_id=str(msg_id))))
        return person, node["Content"] if node else None

    # 16 people at once; on a loaded machine the threads may happen to arrive one by one, so burst again
    # (new people) until some found the pipeline busy
    for burst in range(5):
        people = [f"o-burst-{burst}-{i}" for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            answers.update(pool.map(ask, people, range(990_000 + 16 * burst, 990_016 + 16 * burst)))
        if None in answers.values():
            break
    passive = {p for p, text in answers.items() if text is not None}
    late = set(answers) - passive
    assert late, "the bursts should exceed the queue limit"
    sent = fake_api.wait_for_sent(len(late), timeout=60)
    deadline = time.monotonic() + 10
    while len(fake_api.sent) < len(late) and time.monotonic() < deadline:
        time.sleep(0.05)
    through_api = Counter(m["touser"] for m in fake_api.sent)
    assert set(through_api) == late and set(through_api.values()) == {1}  # each late one answered once
    assert all("培训" in m["text"]["content"] for m in sent)
    assert all("培训" in answers[p] for p in passive)


def test_the_verdict_follows_the_queue_and_the_event_loops_lag():
    admission = Admission(defer_queue=2, max_queue=4, defer_lag=1.0)
    assert admission.verdict() == INLINE
    admission.lag = 1.5  # the loop is 1.5 s behind: a new request has already waited that long
    assert admission.verdict() == DEFER
    admission.lag = 0.0
    work = [admission.track(lambda: None) for _ in range(2)]
    assert admission.verdict() == DEFER
    more = [admission.track(lambda: None) for _ in range(2)]
    assert admission.verdict() == SHED
    for run in work + more:
        run()
    assert admission.queued == 0 and admission.verdict() == INLINE


def test_a_long_queue_is_deferred_only_when_the_pipeline_would_not_drain_it_in_time():
    admission = Admission(defer_queue=2, max_queue=100, defer_lag=1.0, defer_wait=3.0)
    queue = [admission.track(lambda: time.sleep(0.01)) for _ in range(8)]
    assert admission.verdict() == DEFER  # a long queue, the throughput not measured yet
    for run in queue[:6]:  # six runs one after the other, the queue never empty: the throughput measured
        run()
    assert admission.interval is not None and admission.interval < 0.5
    assert admission.queued == 2 and admission.verdict() == INLINE  # two queued drain in well under 3 s
    admission.interval = 2.0  # the pipeline slowed to a run every 2 s: two queued would wait 4 s
    assert admission.verdict() == DEFER
    admission.interval = 1.0
    admission.lag = 0.5  # two queued wait 2 s, plus half a second behind in the loop: still in time
    assert admission.verdict() == INLINE
    admission.lag = 1.2
    assert admission.verdict() == DEFER  # the loop itself is too far behind
    for run in queue[6:]:
        run()
    assert admission.queued == 0
