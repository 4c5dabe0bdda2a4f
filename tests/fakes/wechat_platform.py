"""Plays the WeChat server against our callback: builds the XML pushes, signs them and, in safe mode,
encrypts them with wechatpy's own WeChatCrypto; decrypts and reads our replies."""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
import time
from typing import Any

import xmltodict
from wechatpy.crypto import WeChatCrypto

TOKEN = "GyTest7kQ2mZ9xW4pL8vR3tN"  # 16 to 32 letters and digits, as production requires
AES_KEY = base64.b64encode(hashlib.sha256(b"gongyou-test-aes").digest()).decode().rstrip("=")  # 43 characters
APPID = "wx-test-app"
SECRET = "test-secret"
ACCOUNT = "gh_gongyou"


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


class WeChatPlatform:
    def __init__(self, client: Any, *, mode: str = "aes") -> None:
        self.client = client
        self.mode = mode  # "aes" | "plain" | "compatible"
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
        self._ids = itertools.count(int(time.time()) * 1000)
        self._nonces = itertools.count(1)

    # ---- building messages -------------------------------------------------------------------

    def xml(self, openid: str, msg_type: str, fields: dict[str, str], *, msg_id: str | None = None,
            create_time: int | None = None) -> str:
        body = "".join(f"<{k}>{cdata(v)}</{k}>" for k, v in fields.items())
        ident = "" if msg_type == "event" else f"<MsgId>{msg_id or next(self._ids)}</MsgId>"
        return (f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName><FromUserName>{cdata(openid)}</FromUserName>"
                f"<CreateTime>{create_time or int(time.time())}</CreateTime><MsgType>{cdata(msg_type)}</MsgType>"
                f"{body}{ident}</xml>")

    def text(self, openid: str, content: str, **kw: Any) -> str:
        return self.xml(openid, "text", {"Content": content}, **kw)

    def event(self, openid: str, event: str, key: str | None = None, **kw: Any) -> str:
        fields = {"Event": event}
        if key is not None:
            fields["EventKey"] = key
        return self.xml(openid, "event", fields, **kw)

    # ---- sending -----------------------------------------------------------------------------

    def post(self, xml: str, *, timestamp: int | None = None, forge: bool = False, raw_body: bytes | None = None) -> Any:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = f"n{next(self._nonces)}{secrets.token_hex(4)}"  # WeChat's nonces are random: never one twice
        query = {"timestamp": ts, "nonce": nonce, "signature": sign(TOKEN, ts, nonce), "openid": "x"}
        if self.mode == "plain":
            body = xml.encode()
        else:
            envelope = xmltodict.parse(self.crypto.encrypt_message(xml, nonce, ts))["xml"]
            encrypt = envelope["Encrypt"]
            query.update(encrypt_type="aes", msg_signature=sign(TOKEN, ts, nonce, encrypt))
            if self.mode == "compatible":
                body = xml.replace("</xml>", f"<Encrypt>{cdata(encrypt)}</Encrypt></xml>").encode()
            else:
                body = f"<xml><ToUserName>{cdata(ACCOUNT)}</ToUserName><Encrypt>{cdata(encrypt)}</Encrypt></xml>".encode()
        if forge:
            query["signature" if self.mode == "plain" else "msg_signature"] = "0" * 40
        response = self.client.post("/wechat", params=query, content=raw_body if raw_body is not None else body,
                                    headers={"Content-Type": "text/xml"})
        response.nonce, response.ts = nonce, ts  # type: ignore[attr-defined]
        return response

    def reply(self, response: Any) -> dict[str, Any] | None:
        """The reply message as a dict, decrypted in safe mode; None when the answer was "success"."""
        assert response.status_code == 200, response.text
        if response.text == "success":
            return None
        node = xmltodict.parse(response.text)["xml"]
        if "Encrypt" in node:
            assert node["MsgSignature"] == sign(TOKEN, node["TimeStamp"], node["Nonce"], node["Encrypt"])
            plain = self.crypto.decrypt_message(response.text, node["MsgSignature"], node["TimeStamp"], node["Nonce"])
            node = xmltodict.parse(plain)["xml"]
        return node

    def say(self, openid: str, content: str, **kw: Any) -> str:
        node = self.reply(self.post(self.text(openid, content, **kw)))
        assert node is not None and node["MsgType"] == "text", node
        return node["Content"]
