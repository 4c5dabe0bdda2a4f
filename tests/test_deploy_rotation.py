"""`gongyou rotate-data-key`: after it, the service on the new key finds the same people by ID number and by
phone, an SMS person keeps their conversation and history, and the old key opens nothing; a second run
changes nothing; every column that holds a protected value is declared to the command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import LargeBinary, func, select

from bot import pii
from bot.app import create_app
from bot.db import session_scope
from bot.models import AuditLog, Base, ComplaintEvidence, ConversationState, Labourer, MessageLog, SmsNumber
from bot.registry import find_labourer, register_self_reported
from bot.rotation import ENCRYPTED, NOT_DATA_KEY, NUMBER_HASHES
from tests.fakes.sms_gateways import aliyun_up
from tests.roles import ROOT

OLD, NEW = "county-data-key-2025", "county-data-key-2026"
ID_NUMBER = "11010519491231002X"
PHONE = "13881234567"


def rotate_cli(db_url: str, current: str, new: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DATA_KEY": current, "GONGYOU_DEMO_DATA": "false",
           "PYTHONPATH": str(ROOT)}
    env.pop("GONGYOU_NEW_DATA_KEY", None)
    if new is not None:
        env["GONGYOU_NEW_DATA_KEY"] = new
    return subprocess.run([sys.executable, "-m", "bot", "rotate-data-key", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def sms(client: TestClient, text: str, seq: int) -> None:
    assert client.post("/sms/inbound", json=aliyun_up(PHONE, text, seq)).status_code == 200


PHOTO = b"\xff\xd8\xff\xe0 a JPEG's first bytes, not UTF-8 \x89\x00"


def test_the_service_on_the_new_key_finds_everyone_and_the_old_key_opens_nothing(make_settings, db_url):
    app = create_app(make_settings(data_key=OLD), configure_logs=False)
    with session_scope(app.state.sessionmaker) as session:
        register_self_reported(session, name="王工", data_key=OLD, id_number=ID_NUMBER, phone=PHONE, county="平昌县")
        session.add(ComplaintEvidence(channel="wechat", media_id="m-1", content=pii.encrypt_bytes(PHOTO, OLD)))
    with TestClient(app) as client:
        sms(client, "你好", 1)
        sms(client, "我的记录", 2)  # who is this? the roster entry with this phone: bound to the number
    with session_scope(app.state.sessionmaker) as session:
        old_hash = pii.lookup_hash(PHONE, OLD)
        history = session.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.user_id == old_hash))
        bound = session.scalar(select(ConversationState.labourer_id).where(ConversationState.user_id == old_hash))
    app.state.engine.dispose()
    assert history >= 4 and bound is not None

    assert rotate_cli(db_url, OLD, "").returncode == 1  # no new key: refused, nothing touched
    dry = rotate_cli(db_url, OLD, NEW, "--dry-run")
    assert dry.returncode == 0 and "labourer.phone_enc: 1" in dry.stdout
    done = rotate_cli(db_url, OLD, NEW)
    assert done.returncode == 0, done.stderr
    assert "labourer.id_number_enc: 1" in done.stdout and "sms_number.number_enc: 1" in done.stdout
    assert "message_log.user_id" in done.stdout and "conversation_state.user_id: 1" in done.stdout
    assert "complaint_evidence.content: 1" in done.stdout  # a photo, bytes that are no text

    app = create_app(make_settings(data_key=NEW), configure_logs=False)
    new_hash = pii.lookup_hash(PHONE, NEW)
    with session_scope(app.state.sessionmaker) as session:
        person = find_labourer(session, name="王工", data_key=NEW, id_number=ID_NUMBER)
        assert person is not None and person.id == bound
        assert find_labourer(session, name="王工", data_key=NEW, phone=PHONE).id == bound
        assert pii.decrypt(person.phone_enc, NEW) == PHONE
        with pytest.raises(pii.InvalidPersonalData):
            pii.decrypt(person.phone_enc, OLD)
        photo = session.scalars(select(ComplaintEvidence.content)).one()
        assert pii.decrypt_bytes(photo, NEW) == PHOTO
        number = session.scalars(select(SmsNumber)).one()
        assert number.number_hash == new_hash and pii.decrypt(number.number_enc, NEW) == PHONE
        assert session.scalar(select(func.count()).select_from(MessageLog)
                              .where(MessageLog.user_id == new_hash)) == history
        assert session.scalar(select(func.count()).select_from(MessageLog).where(MessageLog.user_id == old_hash)) == 0
        assert session.scalars(select(AuditLog.action).where(AuditLog.action == "data_key.rotate")).all() \
            == ["data_key.rotate"]
    with TestClient(app) as client:
        sms(client, "我的记录", 3)  # the same person, on the same conversation, on the new key
    with session_scope(app.state.sessionmaker) as session:
        states = session.scalars(select(ConversationState).where(ConversationState.channel == "sms")).all()
        assert [(s.user_id, s.labourer_id) for s in states] == [(new_hash, bound)]
    app.state.engine.dispose()

    again = rotate_cli(db_url, OLD, NEW)  # interrupted or repeated: values already on the new key stay
    assert again.returncode == 0 and ".id_number_enc" not in again.stdout and "user_id" not in again.stdout
    wrong = rotate_cli(db_url, "some-other-key", "yet-another-key")
    assert wrong.returncode == 1 and "neither" in wrong.stderr  # a key that opens nothing changes nothing


def test_every_protected_column_is_declared_to_the_rotation():
    declared = {(e.table, e.enc) for e in ENCRYPTED} | {(e.table, e.hash) for e in ENCRYPTED if e.hash} \
        | set(NUMBER_HASHES) | NOT_DATA_KEY
    suspects = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables for column in table.columns
        if isinstance(column.type, LargeBinary) or column.name.endswith("_hash") or column.name.endswith("_enc")
    }
    assert suspects - declared == set(), "a protected column the key rotation does not know (bot/rotation.py)"
