"""Test doubles for the dispatcher's senders (scheduler.senders.Sender), used by tests and benchmarks.

`RecordingSender` keeps what it accepted in memory; `JsonlGateway` appends every accepted message to a
JSON-lines file, flushed (and fsynced) before it answers, like a provider that has accepted it: its file is
the gateway's log the crash checks count. `loopback_senders` builds them for `gongyou dispatch --senders
tests.doubles:loopback_senders` in a process of its own (the folder from GONGYOU_LOOPBACK_DIR).
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.channels.base import SendResult
from scheduler.senders import OutboundDelivery, Sender


class RecordingSender:
    """In-memory sender for tests: records every accepted message, deduplicates by idempotency key,
    and fails on request (`fail` maps a labourer id to a list of SendResults returned in turn)."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent: list[tuple[OutboundDelivery, str]] = []
        self.by_key: dict[str, SendResult] = {}
        self.fail: dict[int, list[SendResult]] = {}
        self.calls = 0
        self._lock = threading.Lock()

    def send(self, delivery: OutboundDelivery, text: str) -> SendResult:
        with self._lock:
            self.calls += 1
            scripted = self.fail.get(delivery.labourer_id)
            if scripted:
                return scripted.pop(0)
            if delivery.idempotency_key in self.by_key:
                return self.by_key[delivery.idempotency_key]
            result = SendResult(ok=True, provider_message_id=f"{self.channel}-{len(self.sent) + 1}")
            self.sent.append((delivery, text))
            self.by_key[delivery.idempotency_key] = result
            return result

    def lookup(self, delivery: OutboundDelivery, since: datetime) -> SendResult | None:
        return self.by_key.get(delivery.idempotency_key)


class JsonlGateway:
    """A loopback gateway that appends every accepted message to a JSON-lines file (flushed and fsynced
    before it answers, like a provider that has accepted the message). Used by the crash test and the
    benchmark; its file is the gateway's log the checks count."""

    def __init__(self, path: str | Path, channel: str, *, fsync: bool = True) -> None:
        self.path, self.channel, self.fsync = Path(path), channel, fsync
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self._keys[row["key"]] = row["id"]
        self._file = self.path.open("a", encoding="utf-8")

    def send(self, delivery: OutboundDelivery, text: str) -> SendResult:
        with self._lock:
            if delivery.idempotency_key in self._keys:
                return SendResult(ok=True, provider_message_id=self._keys[delivery.idempotency_key])
            message_id = f"{self.channel}-{delivery.delivery_id}"
            row = {"id": message_id, "key": delivery.idempotency_key, "channel": self.channel,
                   "delivery_id": delivery.delivery_id, "labourer_id": delivery.labourer_id, "text": text,
                   "at": round(time.time(), 6)}
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self._keys[delivery.idempotency_key] = message_id
            return SendResult(ok=True, provider_message_id=message_id)

    def lookup(self, delivery: OutboundDelivery, since: datetime) -> SendResult | None:
        message_id = self._keys.get(delivery.idempotency_key)
        return SendResult(ok=True, provider_message_id=message_id) if message_id else None


def jsonl_senders(directory: str | Path, *, fsync: bool = True) -> dict[str, Sender]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {c: JsonlGateway(directory / f"{c}.jsonl", c, fsync=fsync) for c in ("wechat", "sms")}


def loopback_senders(settings: Any, factory: Any) -> dict[str, Sender]:
    """The `--senders` factory of a dispatch process: JSON-lines gateways in $GONGYOU_LOOPBACK_DIR."""
    return jsonl_senders(os.environ["GONGYOU_LOOPBACK_DIR"], fsync=os.environ.get("GONGYOU_LOOPBACK_FSYNC", "1") == "1")
