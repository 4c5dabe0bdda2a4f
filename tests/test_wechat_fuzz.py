"""The WeChat callback fed generated pushes that pass the signature (signed, and in safe mode encrypted, with
wechatpy's own WeChatCrypto): any message type, event, field, value, sender or time. None may be a 5xx, and
every 200 is either "success" or a reply that decrypts."""

from __future__ import annotations

import time

import hypothesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.fakes.wechat_platform import ACCOUNT, WeChatPlatform, cdata
# fixtures: conftest's `app` and `client`, built with the Official Account configured
from tests.test_wechat import fake_api, plain_client, settings, wechat_settings  # noqa: F401

MSG_TYPES = ["text", "voice", "image", "location", "link", "video", "shortvideo", "event", "file", "music", "news"]
EVENTS = ["subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW", "LOCATION", "TEMPLATESENDJOBFINISH",
          "MASSSENDJOBFINISH", "subscribe_msg_popup_event", "scancode_push", "pic_sysphoto"]
FIELDS = ["Content", "Recognition", "MediaId", "Format", "PicUrl", "ThumbMediaId", "Location_X", "Location_Y",
          "Scale", "Label", "Title", "Description", "Url", "Event", "EventKey", "Ticket", "MsgID", "Status",
          "Latitude", "Longitude", "Precision"]
# what an XML 1.0 document can carry (WeChat's pushes are XML): no surrogates, no C0 controls but tab/newlines
xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]) | st.sampled_from("咋个啥子莫得欠工资培训公益性岗位]]><&"), max_size=60)
values = xml_text | st.sampled_from(["", "0", "-1", "99999999999999999999", "qrscene_village-3", "1.5", "abc"]) | st.sampled_from(EVENTS)


@st.composite
def pushes(draw) -> str:
    msg_type = draw(st.sampled_from(MSG_TYPES) | xml_text)
    fields = draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
    if msg_type == "event" and draw(st.booleans()):
        fields["Event"] = draw(st.sampled_from(EVENTS))
    sender = draw(st.sampled_from(["o-fuzz-1", "o-fuzz-2"]) | xml_text)
    create_time = draw(st.sampled_from([str(int(time.time())), "", "0", "-5", "abc", "1" * 30]))
    msg_id = draw(st.none() | st.sampled_from(["1", "0", "-1", "x", "9" * 40]) | st.integers(0, 2**64).map(str))
    parts = [f"<ToUserName>{cdata(ACCOUNT)}</ToUserName>", f"<FromUserName>{cdata(sender)}</FromUserName>",
             f"<CreateTime>{create_time}</CreateTime>", f"<MsgType>{cdata(msg_type)}</MsgType>",
             *(f"<{k}>{cdata(v)}</{k}>" for k, v in fields.items())]
    if msg_id is not None:
        parts.append(f"<MsgId>{msg_id}</MsgId>")
    return "<xml>" + "".join(draw(st.permutations(parts))) + "</xml>"


def test_no_signed_push_is_a_server_error(client, plain_client) -> None:  # noqa: F811
    # derandomized, as test_api_fuzz: the same pushes every run; plaintext to an account without an AES key
    platforms = [WeChatPlatform(client, mode="aes"), WeChatPlatform(plain_client, mode="plain"),
                 WeChatPlatform(client, mode="compatible")]

    @given(xml=pushes(), which=st.integers(0, 2))
    @hypothesis.settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck),
                         database=None, derandomize=True)
    def check(xml: str, which: int) -> None:
        wx = platforms[which]
        response = wx.post(xml)
        assert response.status_code < 500, (xml, response.status_code, response.text[:200])
        statuses.append(response.status_code)
        if response.status_code == 200 and response.text not in ("success", ""):
            assert wx.reply(response) is not None

    statuses: list[int] = []
    check()
    assert statuses.count(200) > len(statuses) // 2  # most got through the signature: the fuzz reached the pipeline
