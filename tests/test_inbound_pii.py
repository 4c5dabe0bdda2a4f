"""ID numbers and phones typed every way the validators accept them (spaces, dashes, dots, brackets,
full-width digits and separators, +86 / 0086, a lower-case x) through the real endpoints — the simulator,
POST /sms/inbound and a signed, encrypted POST /wechat — in free messages, a complaint's employer, site
and description, a hand-off request and registration answers. Then the whole database (the SQLite file
with its WAL, or every row of every table on PostgreSQL) and the captured logs are searched for them."""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import pii
from bot.models import Base, Complaint, Handoff
from tests.fakes.sms_gateways import aliyun_up
from tests.fakes.wechat_platform import AES_KEY, APPID, TOKEN, WeChatPlatform
from tests.test_dialog_support import rows

PHONE = "15928765432"
ID = "51192219920101103X"
PHONE_FORMS = ["15928765432", "159 2876 5432", "159-2876-5432", "159.2876.5432", "１５９２８７６５４３２",
               "１５９－２８７６－５４３２", "１５９　２８７６　５４３２", "+86 159 2876 5432", "0086-159-2876-5432",
               "86 15928765432", "（159）2876 5432", "159 - 2876 - 5432"]
ID_FORMS = ["51192219920101103X", "51192219920101103x", "511922 19920101 103X", "511922 1992 0101 103x",
            "５１１９２２１９９２０１０１１０３Ｘ", "５１１９２２　１９９２０１０１　１０３ｘ", "511922-19920101-103X"]


def test_every_form_is_one_the_validators_accept():
    assert {pii.normalize_phone(form) for form in PHONE_FORMS} == {PHONE}
    assert {pii.normalize_id_number(form) for form in ID_FORMS if "-" not in form} == {ID}


@pytest.mark.parametrize("form", PHONE_FORMS + ID_FORMS)
def test_redaction_masks_each_form_in_running_text(form):
    masked = pii.redact(f"老板叫我打{form}问工钱，欠了3000块，2024年5月的")
    assert pii.mask_phone(PHONE) in masked or pii.mask_id_number(ID) in masked
    assert "3000块" in masked and "2024年5月" in masked
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", masked) if ch.isdigit())
    assert PHONE not in digits and ID[:17] not in digits and PHONE[3:7] not in digits


@pytest.fixture
def settings(make_settings):  # noqa: ANN001, ANN201
    return make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID,
                         sms_unknown_replies_per_hour=1000)


def _complaint(say, phone_form: str, id_form: str, answer: str) -> None:  # noqa: ANN001
    say(f"老板欠我三个月工资两万块，他电话{phone_form}")
    say(f"某某建筑公司 老板电话{phone_form}")
    say(f"丽水莲都区工地 联系人{phone_form}")
    say("就我")
    say(f"干完活一直拖着不结账，我身份证{id_form}，电话{phone_form}")
    say("王小明")
    say(answer)  # the dialog's own question for an ID number or phone
    say("没有")
    say("跳过")  # the township question of someone the registry cannot place
    say("确认")


def _database_text(app) -> bytes:  # noqa: ANN001
    engine = app.state.engine
    if engine.dialect.name == "sqlite":
        database = Path(engine.url.database)
        return b"".join(p.read_bytes() for p in (database, Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists())
    with engine.connect() as conn:
        return "\n".join(str(value) for table in Base.metadata.sorted_tables
                         for value in conn.execute(text(f'SELECT CAST(t AS text) FROM "{table.name}" t')).scalars()).encode()


def test_no_typed_id_or_phone_is_kept_anywhere(app, client, say, caplog):  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    wx = WeChatPlatform(client, mode="aes")
    for i, (phone_form, id_form) in enumerate(zip(PHONE_FORMS, ID_FORMS * 2)):
        user = f"pii-{i}"
        say(f"我电话{phone_form}，身份证{id_form}，公益性岗位咋个报", user=user)
        # The identity question takes fewer forms than the free text does (no dots or brackets there).
        _complaint(lambda t, u=user: say(t, user=u), phone_form, id_form, PHONE_FORMS[i % 3])
        assert client.post("/sms/inbound", json=aliyun_up(PHONE, f"我身份证{id_form} 电话{phone_form} 培训咋报", 100 + i)).status_code == 200
        assert wx.post(wx.text(f"o-pii-{i}", f"我电话{phone_form} 身份证号{id_form} 想找工作")).status_code == 200
    say(f"我要找人工 我电话{PHONE_FORMS[1]} 身份证{ID_FORMS[2]}", user="pii-handoff")

    complaints = rows(app, Complaint)
    assert len(complaints) == len(PHONE_FORMS)  # the dialogs went through: the fields were really written
    assert all(pii.mask_phone(PHONE) in c.description and pii.mask_phone(PHONE) in c.employer for c in complaints)
    assert pii.mask_phone(PHONE) in rows(app, Handoff)[0].reason

    stored = _database_text(app)
    logs = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    for value in {PHONE, ID, ID.lower(), *PHONE_FORMS, *ID_FORMS}:
        assert value.encode() not in stored, f"{value!r} is in the database"
        assert value not in logs, f"{value!r} is in the logs"
