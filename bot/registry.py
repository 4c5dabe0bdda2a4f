"""The labourer registry (一库) and its lists: plain verb_noun functions over a session.

Identity: a WeChat (or simulator) user is matched to the roster by name + ID number, or name + phone;
an SMS user's number is their user id. Someone the roster does not know is registered as
self-reported and left unverified for the village assistant. ID numbers and phones are only ever
stored protected (bot.pii); reading one in clear goes through `bot.reveal.reveal`, which writes the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot import pii
from bot.models import Complaint, ConversationState, JobWish, Labourer, TrainingNeed, WorkingAway
from bot.models.complaints import latest_public_reply

WECHAT_LIKE = ("wechat", "simulator")  # channels whose user id is an account id, bound by wechat_openid


def find_labourer(
    session: Session, *, name: str, data_key: str, id_number: str | None = None, phone: str | None = None
) -> Labourer | None:
    """The roster entry with this name and this ID number (preferred) or phone."""
    if id_number:
        found = session.scalars(
            select(Labourer).where(Labourer.id_number_hash == pii.lookup_hash(id_number, data_key))
        ).one_or_none()
        if found is not None and found.name == name:
            return found
    if phone:
        digest = pii.lookup_hash(phone, data_key)
        candidates = session.scalars(
            select(Labourer).where(or_(Labourer.phone_hash == digest, Labourer.sms_number_hash == digest))
        ).all()
        return next((c for c in candidates if c.name == name), None)
    return None


def find_by_sms_number(session: Session, *, phone: str, data_key: str) -> Labourer | None:
    """The person texting from `phone`: bound to it before, else the one roster entry with that phone."""
    digest = pii.lookup_hash(phone, data_key)
    bound = session.scalars(select(Labourer).where(Labourer.sms_number_hash == digest)).first()
    if bound is not None:
        return bound
    listed = session.scalars(select(Labourer).where(Labourer.phone_hash == digest).limit(2)).all()
    return listed[0] if len(listed) == 1 else None  # a shared family phone does not say who is texting


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


def bind_channel(session: Session, labourer: Labourer, state: ConversationState, *, data_key: str) -> None:
    """Remember that this chat is this labourer; an opt-out given before binding carries over."""
    if state.channel in WECHAT_LIKE:
        if labourer.wechat_openid in (None, state.user_id):
            taken = session.scalars(
                select(Labourer).where(Labourer.wechat_openid == state.user_id, Labourer.id != labourer.id)
            ).first()
            if taken is None:
                labourer.wechat_openid = state.user_id
    elif state.channel == "sms":
        try:
            labourer.sms_number_hash = pii.lookup_hash(pii.normalize_phone(state.user_id), data_key)
        except pii.InvalidPersonalData:
            pass
    state.labourer_id = labourer.id
    if (state.context or {}).get("unsubscribed"):
        set_subscription(labourer, state.channel, False)


def labourer_for(session: Session, state: ConversationState, *, data_key: str) -> Labourer | None:
    """The labourer this chat belongs to, binding an SMS number the roster knows on first contact."""
    if state.labourer_id is not None:
        found = session.get(Labourer, state.labourer_id)
        if found is not None:
            return found
    labourer = None
    if state.channel in WECHAT_LIKE:
        labourer = session.scalars(select(Labourer).where(Labourer.wechat_openid == state.user_id)).first()
    elif state.channel == "sms":
        try:
            labourer = find_by_sms_number(session, phone=pii.normalize_phone(state.user_id), data_key=data_key)
        except pii.InvalidPersonalData:
            labourer = None
    if labourer is not None:
        bind_channel(session, labourer, state, data_key=data_key)
    return labourer


def set_subscription(labourer: Labourer, channel: str, on: bool) -> None:
    if channel == "sms":
        labourer.subscribed_sms = on
    else:
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
    need.available_from, need.available_date = available_from, available_date
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
) -> tuple[JobWish, bool]:
    wish = session.scalars(
        select(JobWish).where(JobWish.labourer_id == labourer.id, JobWish.job_type == job_type, JobWish.status == "open")
    ).first()
    created = wish is None
    if wish is None:
        wish = JobWish(labourer_id=labourer.id, job_type=job_type)
        session.add(wish)
    wish.place_scope, wish.place, wish.min_monthly_pay = place_scope, place, min_monthly_pay
    wish.start_when, wish.start_date = start_when, start_date
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
