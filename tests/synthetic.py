"""Synthetic labourers for tests and the broadcast benchmark: bulk inserts through Core, no ORM objects.

Phones are real-looking mainland mobiles (139…), encrypted like the registry does; names are made up.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from bot import pii
from bot.models import Audience, Campaign, Event, Labourer, utcnow

TOWNSHIPS = ("兴文镇", "白衣镇", "玉堂镇", "鼎山镇", "化成镇", "曾口镇")
SURNAMES = "王李张刘陈杨赵黄周吴"


def phone_for(n: int) -> str:
    return f"139{n % 100_000_000:08d}"


def labourer_row(n: int, *, data_key: str = "", now: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    """Row n of a synthetic roster; every field can be overridden (phone=None / openid=None: no address)."""
    now = now or utcnow()
    phone = overrides.pop("phone", phone_for(n))
    row: dict[str, Any] = {
        "name": SURNAMES[n % len(SURNAMES)] + f"工{n}",
        "county": "巴州区",
        "township": TOWNSHIPS[n % len(TOWNSHIPS)],
        "village": f"{n % 50 + 1}村",
        "gender": "M" if n % 2 else "F",
        "birth_date": date(1960 + n % 40, 1 + n % 12, 1 + n % 28),
        "household_status": "registered_poor",
        "employment_status": "unemployed",
        "wechat_openid": overrides.pop("openid", f"o-{n}"),
        "subscribed_wechat": True,
        "subscribed_sms": True,
        "wants_startup": False,
        "public_welfare_post": False,
        "source": "roster",
        "verified": True,
        "created_at": now,
        "updated_at": now,
    }
    if phone is not None:
        row["phone_enc"] = pii.encrypt(phone, data_key)
        row["phone_hash"] = pii.lookup_hash(phone, data_key)
        row["phone_masked"] = pii.mask_phone(phone)
    else:
        row.update(phone_enc=None, phone_hash=None, phone_masked=None)
    row.update(overrides)
    return row


def insert_labourers(session: Session, count: int, *, start: int = 1, data_key: str = "", chunk: int = 5000,
                     encrypt_phones: bool = True, **overrides: Any) -> None:
    """Bulk insert `count` synthetic labourers (executemany in chunks)."""
    now = utcnow()
    # Encrypting 250,000 phones costs seconds; the benchmark may share one ciphertext (same phone shape).
    shared = None if encrypt_phones else pii.encrypt(phone_for(0), data_key)
    for offset in range(0, count, chunk):
        rows = []
        for n in range(start + offset, start + min(offset + chunk, count)):
            if shared is None:
                rows.append(labourer_row(n, data_key=data_key, now=now, **overrides))
            else:
                row = labourer_row(n, data_key=data_key, now=now, phone=None, **overrides)
                row.update(phone_enc=shared, phone_hash=f"h{n}", phone_masked="139****0000")
                rows.append(row)
        session.execute(insert(Labourer), rows)


def make_campaign(session: Session, *, filter: dict[str, Any] | None = None, event: Event | None = None,
                  channels: list[str] | None = None, include: list[int] | None = None,
                  exclude: list[int] | None = None, **fields: Any) -> Campaign:
    audience = Audience(name="test", filter=filter or {}, include_ids=include or [], exclude_ids=exclude or [])
    session.add(audience)
    session.flush()
    campaign = Campaign(
        name=fields.pop("name", "测试活动"),
        event_id=event.id if event else None,
        audience_id=audience.id,
        template=fields.pop("template", "{姓名}您好！{活动}，{时间}，{地点}。{报名方式}。"),
        sms_template=fields.pop("sms_template", "{活动}{时间}{地点}，{报名方式}"),
        channels=channels or ["wechat", "sms"],
        **fields,
    )
    session.add(campaign)
    session.flush()
    return campaign
