"""The labourer registry (一库) and its lists: plain verb_noun functions over a session.

Identity: `resolve_labourer(session, address)` says who is writing, for every caller; a person the
roster does not know yet says their name and ID number or phone, matched by `find_labourer`, or is
registered as self-reported and left unverified for the village assistant. ID numbers and phones are only ever
stored protected (bot.pii); reading one in clear goes through `bot.reveal.reveal`, which writes the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot import pii
from bot.channels.base import Address
from bot.models import (
    Complaint,
    ConversationState,
    JobWish,
    Labourer,
    SmsNumber,
    TrainingNeed,
    WorkingAway,
)
from bot.models.complaints import latest_public_reply

@dataclass(frozen=True)
class Identity:
    """Who is writing from an address. `labourer` when we know; else `sharing` lists the registered
    people whose phone is this SMS number (a family phone): it identifies none of them until the person
    says who they are."""

    labourer: Labourer | None
    sharing: tuple[int, ...] = ()


def resolve_labourer(session: Session, address: Address, *, bound_id: int | None = None) -> Identity:
    """The one answer to "who is this?" for every caller (the pipeline, dialogs, sign-ups, records).

    `bound_id` is the conversation's own binding (ConversationState.labourer_id): once a person has
    said who they are on an address, that holds. Otherwise, per channel:
    - wechat: the roster entry bound to this openid;
    - sms: the person bound to this number before, else the one roster entry with this phone; several
      entries with this phone identify nobody (`sharing`);
    - simulator: nothing but its own binding (its names are not openids or numbers).
    """
    if bound_id is not None:
        found = session.get(Labourer, bound_id)
        if found is not None:
            return Identity(found)
    if address.channel == "wechat":
        return Identity(session.scalars(select(Labourer).where(Labourer.wechat_openid == address.user_id)).first())
    if address.channel == "sms":
        bound = session.scalars(select(Labourer).where(Labourer.sms_number_hash == address.user_id).limit(2)).all()
        if len(bound) == 1:
            return Identity(bound[0])
        listed = session.scalars(select(Labourer).where(Labourer.phone_hash == address.user_id).limit(20)).all()
        if len(listed) == 1 and not bound:
            return Identity(listed[0])
        return Identity(None, tuple(sorted({lab.id for lab in (*bound, *listed)})))
    return Identity(None)


def find_labourer(
    session: Session, *, name: str, data_key: str, id_number: str | None = None, phone: str | None = None,
    phone_hash: str | None = None,
) -> Labourer | None:
    """The roster entry with this name and this ID number (preferred) or phone (given in clear, or as its
    look-up hash: an SMS address)."""
    if id_number:
        found = session.scalars(
            select(Labourer).where(Labourer.id_number_hash == pii.lookup_hash(id_number, data_key))
        ).one_or_none()
        if found is not None and found.name == name:
            return found
    digest = phone_hash or (pii.lookup_hash(phone, data_key) if phone else None)
    if digest:
        candidates = session.scalars(
            select(Labourer).where(or_(Labourer.phone_hash == digest, Labourer.sms_number_hash == digest))
        ).all()
        return next((c for c in candidates if c.name == name), None)
    return None


def address_phone(session: Session, address: Address, *, data_key: str) -> str | None:
    """The mobile number an SMS address stands for, in clear (for storing it protected on a labourer or a
    complaint); None on other channels."""
    if address.channel != "sms":
        return None
    token = session.scalar(select(SmsNumber.number_enc).where(SmsNumber.number_hash == address.user_id))
    return None if token is None else pii.decrypt(token, data_key)


def register_self_reported(
    session: Session,
    *,
    name: str,
    data_key: str,
    id_number: str | None = None,
    phone: str | None = None,
    county: str | None = None,
    township: str | None = None,
    village: str | None = None,
    note: str | None = None,
) -> Labourer:
    labourer = Labourer(name=name, county=county, township=township, village=village, source="self_reported",
                        verified=False, verify_note=note)
    if id_number and not _id_number_taken(session, id_number, data_key):
        protected = pii.protect_id_number(id_number, data_key)
        labourer.id_number_enc, labourer.id_number_hash, labourer.id_number_masked = (
            protected.encrypted, protected.lookup_hash, protected.masked)
        labourer.birth_date, labourer.gender = pii.id_birth_date(id_number), pii.id_gender(id_number)
    elif id_number:
        labourer.verify_note = "; ".join(filter(None, (note, "身份证号已在名册中，但姓名不符")))
    if phone:
        set_phone(labourer, phone, data_key)
    session.add(labourer)
    session.flush()
    return labourer


def _id_number_taken(session: Session, id_number: str, data_key: str) -> bool:
    digest = pii.lookup_hash(id_number, data_key)
    return session.scalar(select(Labourer.id).where(Labourer.id_number_hash == digest)) is not None


def set_phone(labourer: Labourer, phone: str, data_key: str) -> None:
    protected = pii.protect_phone(phone, data_key)
    labourer.phone_enc, labourer.phone_hash, labourer.phone_masked = (
        protected.encrypted, protected.lookup_hash, protected.masked)


def bind_channel(session: Session, labourer: Labourer, state: ConversationState, *, shared: bool = False) -> None:
    """Remember that this conversation is this labourer; an opt-out given before binding carries over.

    A WeChat openid is also bound on the labourer (broadcasts find them by it), as is an SMS number
    that only this person uses; a shared family number stays bound to the conversation alone."""
    if state.channel == "wechat" and labourer.wechat_openid in (None, state.user_id):
        taken = session.scalars(
            select(Labourer).where(Labourer.wechat_openid == state.user_id, Labourer.id != labourer.id)
        ).first()
        if taken is None:
            labourer.wechat_openid = state.user_id
    elif state.channel == "sms" and not shared:
        labourer.sms_number_hash = state.user_id
    state.labourer_id = labourer.id
    if (state.context or {}).get("unsubscribed"):
        set_subscription(labourer, state.channel, False)


def set_subscription(labourer: Labourer, channel: str, on: bool) -> None:
    """The labourer's notices on a real channel; the simulator's choice stays in its conversation."""
    if channel == "sms":
        labourer.subscribed_sms = on
    elif channel == "wechat":
        labourer.subscribed_wechat = on


# ---- the lists ---------------------------------------------------------------------------------


def create_training_need(
    session: Session,
    *,
    labourer: Labourer,
    training_type: str,
    preferred_format: str | None,
    available_from: str | None,
    available_date: date | None,
    township: str | None,
    channel: str,
    available_until: date | None = None,
) -> tuple[TrainingNeed, bool]:
    """A need for this training type; an open one already on the list is updated, not doubled.
    Returns the row and whether it is new."""
    need = session.scalars(
        select(TrainingNeed).where(
            TrainingNeed.labourer_id == labourer.id,
            TrainingNeed.training_type == training_type,
            TrainingNeed.status == "open",
        )
    ).first()
    created = need is None
    if need is None:
        need = TrainingNeed(labourer_id=labourer.id, training_type=training_type)
        session.add(need)
    need.preferred_format = None if preferred_format in (None, "不限") else preferred_format
    need.available_from, need.available_date, need.available_until = available_from, available_date, available_until
    need.township, need.channel = township, channel
    session.flush()
    return need, created


def create_job_wish(
    session: Session,
    *,
    labourer: Labourer,
    job_type: str,
    place_scope: str | None,
    place: str | None,
    min_monthly_pay: int | None,
    start_when: str | None,
    start_date: date | None,
    accepts_public_welfare: bool | None,
    accepts_home_based: bool | None,
    channel: str,
    start_until: date | None = None,
) -> tuple[JobWish, bool]:
    wish = session.scalars(
        select(JobWish).where(JobWish.labourer_id == labourer.id, JobWish.job_type == job_type, JobWish.status == "open")
    ).first()
    created = wish is None
    if wish is None:
        wish = JobWish(labourer_id=labourer.id, job_type=job_type)
        session.add(wish)
    wish.place_scope, wish.place, wish.min_monthly_pay = place_scope, place, min_monthly_pay
    wish.start_when, wish.start_date, wish.start_until = start_when, start_date, start_until
    wish.accepts_public_welfare, wish.accepts_home_based = accepts_public_welfare, accepts_home_based
    wish.channel = channel
    if labourer.employment_status in ("unknown", "working_away"):
        labourer.employment_status = "unemployed"
    session.flush()
    return wish, created


def record_working_away(
    session: Session,
    *,
    labourer: Labourer,
    place: str | None,
    employer: str | None,
    job_type: str | None,
    since: str | None,
    channel: str,
) -> WorkingAway:
    row = session.scalars(
        select(WorkingAway).where(WorkingAway.labourer_id == labourer.id).order_by(WorkingAway.id.desc())
    ).first()
    if row is None:
        row = WorkingAway(labourer_id=labourer.id)
        session.add(row)
    row.place, row.employer, row.job_type, row.since, row.channel = place, employer, job_type, since, channel
    labourer.employment_status = "working_away"
    session.flush()
    return row


# ---- my records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Records:
    training_needs: list[TrainingNeed]
    job_wishes: list[JobWish]
    working_away: list[WorkingAway]
    complaints: list[tuple[Complaint, str | None]]  # each with its latest public reply

    @property
    def empty(self) -> bool:
        return not (self.training_needs or self.job_wishes or self.working_away or self.complaints)


def list_records(session: Session, *, labourer_id: int | None, channel: str, user_id: str) -> Records:
    needs: list[Any] = []
    wishes: list[Any] = []
    away: list[Any] = []
    if labourer_id is not None:
        needs = list(session.scalars(select(TrainingNeed).where(TrainingNeed.labourer_id == labourer_id)
                                     .order_by(TrainingNeed.id)))
        wishes = list(session.scalars(select(JobWish).where(JobWish.labourer_id == labourer_id).order_by(JobWish.id)))
        away = list(session.scalars(select(WorkingAway).where(WorkingAway.labourer_id == labourer_id)))
    mine = (Complaint.channel == channel) & (Complaint.user_id == user_id)
    if labourer_id is not None:
        mine = or_(mine, Complaint.labourer_id == labourer_id)
    complaints = list(session.scalars(select(Complaint).where(mine).order_by(Complaint.id)))
    replies = []
    for complaint in complaints:
        note = latest_public_reply(session, complaint.id)
        replies.append((complaint, note.body if note else None))
    return Records(needs, wishes, away, replies)
