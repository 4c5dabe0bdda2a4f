"""Loopback fakes of the Aliyun (Dysms) and Tencent Cloud SMS APIs. Each checks the request signature
the way the provider documents it (written here independently of bot.channels.sms) and records what it
accepted, in the providers' response shapes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from datetime import datetime, timezone
from typing import Any

from tests.fakes.http import LoopbackServer, Request


class FakeAliyunSms(LoopbackServer):
    def __init__(self, key_id: str = "LTAI-test", secret: str = "aliyun-secret") -> None:
        super().__init__()
        self.key_id, self.secret = key_id, secret
        self.sent: list[dict[str, str]] = []
        self.fail_codes: list[str] = []
        self._biz = itertools.count(900001)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _expected_signature(self, params: dict[str, str]) -> str:
        def enc(s: str) -> str:
            return urllib.parse.quote(s, safe="").replace("+", "%20").replace("*", "%2A").replace("%7E", "~")

        query = "&".join(enc(k) + "=" + enc(params[k]) for k in sorted(params) if k != "Signature")
        string_to_sign = "POST&%2F&" + enc(query)
        mac = hmac.new(f"{self.secret}&".encode(), string_to_sign.encode(), hashlib.sha1)
        return base64.b64encode(mac.digest()).decode()

    def handle(self, request: Request) -> tuple[int, Any]:
        params = {k: v[0] for k, v in urllib.parse.parse_qs(request.body.decode(), keep_blank_values=True).items()}
        request_id = f"req-{time.time_ns()}"
        if params.get("AccessKeyId") != self.key_id:
            return 404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found.", "RequestId": request_id}
        if params.get("Signature") != self._expected_signature(params):
            return 400, {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched with our calculation.", "RequestId": request_id}
        stamp = datetime.strptime(params.get("Timestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        if abs(time.time() - stamp.timestamp()) > 900:
            return 400, {"Code": "InvalidTimeStamp.Expired", "Message": "expired", "RequestId": request_id}
        if params.get("Action") not in ("SendSms", "SendBatchSms") or params.get("Version") != "2017-05-25":
            return 400, {"Code": "InvalidAction.NotFound", "Message": "action", "RequestId": request_id}
        with self.lock:
            if self.fail_codes:
                return 200, {"Code": self.fail_codes.pop(0), "Message": "触发分钟级流控Permits:1", "RequestId": request_id}
            self.sent.append(params)
        return 200, {"Code": "OK", "Message": "OK", "BizId": f"{next(self._biz)}^0", "RequestId": request_id}


class FakeTencentSms(LoopbackServer):
    def __init__(self, secret_id: str = "AKID-test", secret_key: str = "tencent-secret") -> None:
        super().__init__()
        self.secret_id, self.secret_key = secret_id, secret_key
        self.sent: list[dict[str, Any]] = []
        self.fail_codes: list[str] = []
        self._serial = itertools.count(1)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _expected_authorization(self, request: Request) -> str:
        ts = int(request.headers["x-tc-timestamp"])
        day = time.strftime("%Y-%m-%d", time.gmtime(ts))
        host = request.headers["host"]
        canonical_request = (
            f"POST\n/\n\ncontent-type:{request.headers['content-type']}\nhost:{host}\n\n"
            f"content-type;host\n{hashlib.sha256(request.body).hexdigest()}"
        )
        scope = f"{day}/sms/tc3_request"
        string_to_sign = f"TC3-HMAC-SHA256\n{ts}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        k_date = hmac.new(("TC3" + self.secret_key).encode(), day.encode(), hashlib.sha256).digest()
        k_service = hmac.new(k_date, b"sms", hashlib.sha256).digest()
        k_signing = hmac.new(k_service, b"tc3_request", hashlib.sha256).digest()
        signature = hmac.new(k_signing, string_to_sign.encode(), hashlib.sha256).hexdigest()
        return f"TC3-HMAC-SHA256 Credential={self.secret_id}/{scope}, SignedHeaders=content-type;host, Signature={signature}"

    def handle(self, request: Request) -> tuple[int, Any]:
        request_id = f"req-{time.time_ns()}"
        if request.headers.get("x-tc-action") != "SendSms" or request.headers.get("x-tc-version") != "2021-01-11":
            return 200, {"Response": {"Error": {"Code": "InvalidAction", "Message": "action"}, "RequestId": request_id}}
        if request.headers.get("authorization") != self._expected_authorization(request):
            return 200, {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure",
                                                "Message": "The provided credentials could not be validated."}, "RequestId": request_id}}
        body = request.json()
        with self.lock:
            code = self.fail_codes.pop(0) if self.fail_codes else "Ok"
            statuses = []
            for number in body["PhoneNumberSet"]:
                statuses.append({"SerialNo": f"2019:{next(self._serial)}", "PhoneNumber": number, "Fee": 1, "SessionContext": "",
                                 "Code": code, "Message": "send success" if code == "Ok" else "limit", "IsoCode": "CN"})
            if code == "Ok":
                self.sent.append(body)
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": request_id}}


def aliyun_up(number: str, content: str, sequence_id: int) -> list[dict[str, Any]]:
    """Aliyun SmsUp HTTP push body."""
    return [{"phone_number": number, "send_time": "2026-11-26 10:00:00", "content": content,
             "sign_name": "巴中就业扶贫", "dest_code": "1234", "sequence_id": sequence_id}]


def aliyun_report(number: str, biz_id: str, success: bool) -> list[dict[str, Any]]:
    return [{"phone_number": number, "send_time": "2026-11-26 10:00:00", "report_time": "2026-11-26 10:00:05",
             "success": success, "err_code": "DELIVERED" if success else "MK:0001", "err_msg": "用户接收成功" if success else "失败",
             "sms_size": "1", "biz_id": biz_id, "out_id": ""}]


def tencent_up(number: str, text: str, at: int) -> dict[str, Any]:
    return {"extend": "", "mobile": number, "nationcode": "86", "sign": "巴中就业扶贫", "text": text, "time": at}


def tencent_report(number: str, sid: str, success: bool) -> list[dict[str, Any]]:
    return [{"user_receive_time": "2026-11-26 10:00:05", "nationcode": "86", "mobile": number,
             "report_status": "SUCCESS" if success else "FAIL", "errmsg": "DELIVRD" if success else "UNDELIV",
             "description": "用户短信送达成功", "sid": sid}]


__all__ = ["FakeAliyunSms", "FakeTencentSms", "aliyun_report", "aliyun_up", "json", "tencent_report", "tencent_up"]
