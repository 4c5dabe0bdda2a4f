"""Loopback fakes of the Aliyun (Dysms) and Tencent Cloud SMS APIs. Each checks the request signature
the way the provider documents it (written here independently of bot.channels.sms) and records what it
accepted, in the providers' response shapes.

Each can also be asked about what it accepted, as the real APIs allow: Aliyun QuerySendDetails (one
number, one China day, pages of <= 50, OutId in each record, no BizId); Tencent
PullSmsSendStatusByPhoneNumber (delivery reports only, SessionContext echoed; a message the carrier
has not reported yet is not listed — `reports=False` plays that)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.fakes.http import LoopbackServer, Request


class FakeAliyunSms(LoopbackServer):
    def __init__(self, key_id: str = "LTAI-test", secret: str = "aliyun-secret") -> None:
        super().__init__()
        self.key_id, self.secret = key_id, secret
        self.sent: list[dict[str, str]] = []
        self.fail_codes: list[str] = []
        self.details: list[dict[str, Any]] = []  # what QuerySendDetails lists, one per number sent to
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

    def action_of(self, request: Request) -> str:
        return urllib.parse.parse_qs(request.body.decode()).get("Action", [""])[0]

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
        action = params.get("Action")
        if action not in ("SendSms", "SendBatchSms", "QuerySendDetails") or params.get("Version") != "2017-05-25":
            return 400, {"Code": "InvalidAction.NotFound", "Message": "action", "RequestId": request_id}
        if action == "QuerySendDetails":
            return self._query(params, request_id)
        with self.lock:
            if self.fail_codes:
                return 200, {"Code": self.fail_codes.pop(0), "Message": "触发分钟级流控Permits:1", "RequestId": request_id}
            self.sent.append(params)
            biz_id = f"{next(self._biz)}^0"
            numbers = [params["PhoneNumbers"]] if action == "SendSms" else json.loads(params["PhoneNumberJson"])
            china = datetime.now(timezone(timedelta(hours=8)))
            for number in numbers:
                self.details.append({"PhoneNum": number, "SendStatus": 1, "ErrCode": "", "TemplateCode": params.get("TemplateCode"),
                                     "Content": params.get("TemplateParam", ""), "SendDate": china.strftime("%Y-%m-%d %H:%M:%S"),
                                     "ReceiveDate": "", "OutId": params.get("OutId", ""), "_biz_id": biz_id})
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}

    def _query(self, params: dict[str, str], request_id: str) -> tuple[int, Any]:
        number, day = params.get("PhoneNumber", ""), params.get("SendDate", "")
        size, page = int(params.get("PageSize") or 0), int(params.get("CurrentPage") or 1)
        if not number or len(day) != 8 or not 1 <= size <= 50:
            return 400, {"Code": "isv.INVALID_PARAMETERS", "Message": "参数异常", "RequestId": request_id}
        with self.lock:
            matching = [d for d in self.details if d["PhoneNum"] == number
                        and d["SendDate"][:10].replace("-", "") == day
                        and (not params.get("BizId") or d["_biz_id"] == params["BizId"])]
        shown = [{k: v for k, v in d.items() if not k.startswith("_")} for d in matching[(page - 1) * size: page * size]]
        return 200, {"Code": "OK", "Message": "OK", "RequestId": request_id, "TotalCount": len(matching),
                     "SmsSendDetailDTOs": {"SmsSendDetailDTO": shown}}


class FakeTencentSms(LoopbackServer):
    def __init__(self, secret_id: str = "AKID-test", secret_key: str = "tencent-secret") -> None:
        super().__init__()
        self.secret_id, self.secret_key = secret_id, secret_key
        self.sent: list[dict[str, Any]] = []
        self.fail_codes: list[str] = []
        self.statuses: list[dict[str, Any]] = []  # delivery reports, as PullSmsSendStatusByPhoneNumber lists them
        self.reports = True  # False: the carrier has not reported yet, so nothing is listed
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

    def action_of(self, request: Request) -> str:
        return request.headers.get("x-tc-action", "")

    def handle(self, request: Request) -> tuple[int, Any]:
        request_id = f"req-{time.time_ns()}"
        action = request.headers.get("x-tc-action")
        if action not in ("SendSms", "PullSmsSendStatusByPhoneNumber") or request.headers.get("x-tc-version") != "2021-01-11":
            return 200, {"Response": {"Error": {"Code": "InvalidAction", "Message": "action"}, "RequestId": request_id}}
        if request.headers.get("authorization") != self._expected_authorization(request):
            return 200, {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure",
                                                "Message": "The provided credentials could not be validated."}, "RequestId": request_id}}
        body = request.json()
        if action == "PullSmsSendStatusByPhoneNumber":
            return self._pull(body, request_id)
        with self.lock:
            code = self.fail_codes.pop(0) if self.fail_codes else "Ok"
            statuses = []
            for number in body["PhoneNumberSet"]:
                statuses.append({"SerialNo": f"2019:{next(self._serial)}", "PhoneNumber": number, "Fee": 1,
                                 "SessionContext": body.get("SessionContext", ""),
                                 "Code": code, "Message": "send success" if code == "Ok" else "limit", "IsoCode": "CN"})
            if code == "Ok":
                self.sent.append(body)
                now = int(time.time())
                for status in statuses:
                    self.statuses.append({"UserReceiveTime": now, "CountryCode": "86", "SubscriberNumber": status["PhoneNumber"][3:],
                                          "PhoneNumber": status["PhoneNumber"], "SerialNo": status["SerialNo"],
                                          "ReportStatus": "SUCCESS", "Description": "DELIVRD",
                                          "SessionContext": status["SessionContext"]})
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": request_id}}

    def _pull(self, body: dict[str, Any], request_id: str) -> tuple[int, Any]:
        limit = int(body.get("Limit") or 0)
        if not body.get("PhoneNumber") or not 0 < limit <= 100 or "BeginTime" not in body:
            return 200, {"Response": {"Error": {"Code": "InvalidParameterValue", "Message": "param"}, "RequestId": request_id}}
        end = int(body.get("EndTime") or time.time())
        with self.lock:
            found = [s for s in self.statuses if self.reports and s["PhoneNumber"] == body["PhoneNumber"]
                     and int(body["BeginTime"]) <= s["UserReceiveTime"] <= end]
        return 200, {"Response": {"PullSmsSendStatusSet": found[:limit], "RequestId": request_id}}


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
