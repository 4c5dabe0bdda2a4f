"""POST /sms/inbound fed generated pushes shaped like the providers' (Aliyun SmsUp / SmsReport lists,
Tencent upstream objects and report lists) with any values: never a 5xx, every answer in a provider's
acknowledgement shape, nothing that fails while the accepted ones are processed (after the answer, so only
the log would tell), and a well-formed question sent after them is still answered."""

from __future__ import annotations

import hypothesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.fakes.sms_gateways import tencent_up
from tests.test_sms import NUMBER, outbox, sms_app  # noqa: F401 (fixture)

anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
value = st.text(max_size=40) | st.sampled_from([NUMBER, "+8613881234567", "", "R", "退订", "\x00", "9" * 300]) | anything
ALIYUN_KEYS = ["phone_number", "content", "sequence_id", "send_time", "biz_id", "success", "err_code", "out_id"]
TENCENT_KEYS = ["mobile", "text", "time", "sid", "report_status", "errmsg", "nationcode"]
pushes = (
    st.lists(st.dictionaries(st.sampled_from(ALIYUN_KEYS), value, max_size=8), max_size=3)
    | st.dictionaries(st.sampled_from(TENCENT_KEYS), value, max_size=7)
    | st.lists(st.dictionaries(st.sampled_from(TENCENT_KEYS), value, max_size=7), max_size=3)
    | anything
)


def test_no_push_is_a_server_error_and_the_next_question_is_answered(sms_app, caplog) -> None:  # noqa: F811
    app = sms_app(sms_unknown_replies_per_hour=10_000)  # hundreds of pushes from one number: the hourly cap is not tested here
    with TestClient(app) as client:

        @given(body=pushes)
        @hypothesis.settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck),
                             database=None, derandomize=True)
        def no_server_error(body) -> None:  # noqa: ANN001
            response = client.post("/sms/inbound", json=body)
            assert response.status_code in (200, 400), (body, response.status_code, response.text[:200])
            assert set(response.json()) in ({"code", "msg"}, {"result", "errmsg"}, {"code", "msg", "result", "errmsg"})

        no_server_error()
        assert client.post("/sms/inbound", json=tencent_up(NUMBER, "公益性岗位咋个申请", 1764200000)).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    assert "岗位" in outbox(app)[-1].text
