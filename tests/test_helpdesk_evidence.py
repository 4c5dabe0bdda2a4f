"""Evidence photos a labourer sends on WeChat: fetched through the WeChat media API (the loopback fake serves
media/get as WeChat does), stored encrypted, and shown on the case — photos sent in the complaint dialog,
while the desk waits for them, and during a hand-off a person is handling (the bot stays quiet)."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bot.db import session_scope
from bot.models import ComplaintEvidence, Ticket

from tests.fakes.wechat_api import FakeWeChatApi
from tests.fakes.wechat_platform import AES_KEY, APPID, SECRET, TOKEN, WeChatPlatform

from test_console import login
from test_dialog_complaint import file_wage_complaint
from test_helpdesk_channels import act, case


def png(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """A real PNG (a few coloured stripes), as a phone camera would send a JPEG."""
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # no filter
        for x in range(width):
            raw += bytes(((x * 4 + seed * 40) % 256, (y * 5) % 256, ((x + y) * 2 + seed * 90) % 256))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b"")


@pytest.fixture
def wechat() -> Iterator[FakeWeChatApi]:
    with FakeWeChatApi(appid=APPID, secret=SECRET) as fake:
        yield fake


@pytest.fixture
def settings(make_settings, wechat):  # noqa: ANN001, ANN201
    return make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID, wechat_secret=SECRET,
                         wechat_api_base=wechat.base)


def photo(wx: WeChatPlatform, openid: str, media_id: str) -> dict | None:
    return wx.reply(wx.post(wx.xml(openid, "image", {"PicUrl": "http://mmbiz.qpic.cn/x", "MediaId": media_id})))


def evidence_row(app, media_id: str) -> ComplaintEvidence:  # noqa: ANN001
    with session_scope(app.state.sessionmaker) as session:
        row = session.scalars(select(ComplaintEvidence).where(ComplaintEvidence.media_id == media_id)).one()
        session.expunge(row)
        return row


def settled(app, media_id: str, timeout: float = 30.0) -> ComplaintEvidence:  # noqa: ANN001
    """The evidence row of `media_id` once a fetch was tried (stored, or failed): fetches run after the message
    is committed, on the channel's thread pool."""
    deadline = time.monotonic() + timeout
    while True:
        row = evidence_row(app, media_id)
        if row.fetched_at is not None or row.fetch_attempts > 0:
            return row
        assert time.monotonic() < deadline, f"{media_id} was never fetched"
        time.sleep(0.05)


def stored(app, media_id: str) -> ComplaintEvidence:  # noqa: ANN001
    row = settled(app, media_id)
    assert row.fetched_at is not None, row.fetch_error
    return row


def failed_once(app, media_id: str) -> None:  # noqa: ANN001
    row = settled(app, media_id)
    assert row.fetched_at is None and row.fetch_error is not None and row.fetch_attempts == 1


def file_by_wechat(wx: WeChatPlatform, openid: str) -> str:
    return file_wage_complaint(lambda text: [wx.say(openid, text)])


def test_a_photo_sent_in_the_complaint_dialog_is_fetched_stored_encrypted_and_shown_on_the_case(client, app, wechat,
                                                                                             make_staff):
    wx = WeChatPlatform(client)
    picture = png(seed=1)
    media_id = wechat.receive_media(picture, "image/png")
    acks: list[dict | None] = []

    def talk(text: str) -> list[str]:  # the photo comes right after the first message, inside the dialog
        replies = [wx.say("o-wang", text)]
        if not acks:
            acks.append(photo(wx, "o-wang", media_id))
        return replies

    file_wage_complaint(talk)
    assert acks[0] is not None and "照片" in acks[0]["Content"]  # the dialog keeps it for the complaint
    with session_scope(app.state.sessionmaker) as session:
        no = session.scalars(select(Ticket.ticket_no)).one()
        assert session.scalars(select(ComplaintEvidence.fetched_at)).one() is None  # filed, not fetched yet

    make_staff("desk-pc", "helpdesk", [{"county": "平昌县"}])
    login(client, "desk-pc")
    page = client.get(f"/console/helpdesk/{no}").text  # opening the case fetches what is still missing
    row = stored(app, media_id)
    assert row.content_type == "image/png" and row.size == len(picture) and row.fetch_error is None
    with session_scope(app.state.sessionmaker) as session:
        at_rest = session.get(ComplaintEvidence, row.id).content
    assert at_rest and picture not in at_rest  # encrypted with the data key
    url = f"/console/helpdesk/{no}/evidence/{row.id}"
    assert url in page and "1 张照片" in page
    served = client.get(url)
    assert served.status_code == 200 and served.content == picture
    assert served.headers["content-type"] == "image/png" and "no-store" in served.headers["cache-control"]
    assert [r for r in wechat.requests if r.path.endswith("media/get")][-1].query["media_id"] == media_id

    with session_scope(app.state.sessionmaker) as session:  # another case of the same county
        from bot.models.complaints import create_complaint

        other = create_complaint(session, day=row.created_at.date(), channel="sms", user_id="u-2", category="欠薪",
                                 employer="另一家公司", area=("平昌县", "江口镇")).ticket_no
    assert client.get(f"/console/helpdesk/{other}/evidence/{row.id}").status_code == 404  # not that case's photo
    make_staff("desk-bz", "helpdesk", [{"county": "巴州区"}])
    login(client, "desk-bz")
    assert client.get(url).status_code == 404  # another county's desk, by URL


def test_photos_sent_while_the_desk_waits_land_on_the_ticket_and_are_fetched_at_once(client, app, wechat,
                                                                                    make_staff):
    wx = WeChatPlatform(client)
    file_by_wechat(wx, "o-wang")
    desk = make_staff("desk-pc", "helpdesk", [{"county": "平昌县"}])
    no = client.get("/api/helpdesk/tickets", headers=desk).json()["items"][0]["ticket_no"]
    act(client, desk, no, "messages", body="王师傅，请把考勤表拍照发过来。", visibility="public")
    act(client, desk, no, "transition", to="waiting_on_labourer")

    first, second = wechat.receive_media(png(seed=2), "image/png"), wechat.receive_media(png(seed=3), "image/png")
    reply = photo(wx, "o-wang", first)
    assert reply is not None and no in reply["Content"]
    row = stored(app, first)  # fetched right after the message, not when someone looks
    assert row.ticket_id is not None and row.complaint_id is not None
    now = case(client, desk, no)
    assert now["status"] == "in_progress"  # the labourer answered
    assert [m["body"] for m in now["messages"] if m["source"] == "labourer"][-1] == "[照片]"
    reply = photo(wx, "o-wang", second)  # the ticket no longer waits: the complaint still takes it
    assert reply is not None and no in reply["Content"]
    stored(app, second)


def test_a_photo_during_a_handoff_being_handled_goes_to_the_ticket_and_the_bot_stays_quiet(client, app, wechat,
                                                                                        make_staff):
    wx = WeChatPlatform(client)
    assert "RG-" in wx.say("o-zhang", "我要找人工")
    admin = make_staff("boss", "admin")
    no = client.get("/api/helpdesk/tickets", headers=admin).json()["items"][0]["ticket_no"]
    act(client, admin, no, "assign", assignee="boss")
    media_id = wechat.receive_media(png(seed=4), "image/png")
    assert photo(wx, "o-zhang", media_id) is None  # a person is on it: no bot answer
    row = stored(app, media_id)
    assert row.ticket_id is not None and row.complaint_id is None
    assert case(client, admin, no)["messages"][-1]["body"] == "[照片]"


def test_an_expired_photo_is_given_up_and_a_busy_wechat_is_asked_again(client, app, wechat, make_staff):
    from bot.helpdesk import fetch_evidence

    wx = WeChatPlatform(client)
    assert "RG-" in wx.say("o-zhang", "我要找人工")
    admin = make_staff("boss", "admin")
    no = client.get("/api/helpdesk/tickets", headers=admin).json()["items"][0]["ticket_no"]
    act(client, admin, no, "assign", assignee="boss")
    gone, busy = wechat.receive_media(png(seed=5), "image/png"), wechat.receive_media(png(seed=6), "image/png")
    wechat.expire_media(gone)
    photo(wx, "o-zhang", gone)
    assert settled(app, gone).fetch_error.startswith("40007")
    wechat.fail_next("media/get", -1, -1, -1)  # busy, and busy again on both of the client's own retries
    photo(wx, "o-zhang", busy)
    failed_once(app, busy)

    assert fetch_evidence(app.state.services) == 1  # the sweep: the busy one now, never the expired one again
    assert evidence_row(app, busy).fetched_at is not None and evidence_row(app, gone).fetched_at is None
    login(client, "boss")
    page = client.get(f"/console/helpdesk/{no}").text  # opening the case fetches what is still missing
    assert "照片没能取回" in page and f"/evidence/{evidence_row(app, busy).id}" in page
