"""The dialogs Gongyou runs, declared as data, and the rows each one writes when confirmed.

- register_training → 培训需求名单 (TrainingNeed)
- register_job → 求职名单 (JobWish); working_away → 转移就业名单 (WorkingAway), for "已经在外务工"
- rights_complaint → a help-desk ticket (Complaint, with its evidence)

Every dialog first finds out who is talking when the chat is not yet bound to a roster entry: the name,
then (except on SMS, where the number is known) an ID number or a phone. Texts are in
knowledge/dialogs.yaml under the dialog's name.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.channels.base import Reply
from bot.dialogs import extractors as x
from bot.dialogs import signup
from bot.dialogs import validators as v
from bot import pii
from bot.dialogs.engine import Dialog, Run, Slot, finish, text
from bot import signups
from bot.helpdesk_sla import SlaPolicy
from bot.models import Complaint, JobWish, Labourer, TrainingNeed, utcnow
from bot.models.complaints import add_evidence, create_complaint
from bot.registry import (
    address_phone,
    create_job_wish,
    create_training_need,
    find_labourer,
    record_working_away,
    register_self_reported,
)

OWN_WORDS_AFTER = 2  # a trade the catalogue lacks is taken in the person's words at the second try
EVIDENCE_WINDOW = timedelta(minutes=30)  # photos sent this long after filing still join the ticket
PHOTO_CHANNELS = ("wechat", "simulator")  # where a person can send a photo (not plain SMS)


# ---- who is talking ----------------------------------------------------------------------------


def _prepare(run: Run) -> None:
    labourer = run.turn.labourer()
    run.meta["bound"] = labourer is not None
    # 帮我妈报个名: who is asked about is the one spoken for (the slots' prompt_other texts)
    run.meta["for_other"] = bool(v.FOR_SOMEONE.search(run.turn.text or "")) and labourer is None
    if labourer is not None and labourer.township and run.dialog.slot("township") is not None:
        run.slots["township"] = {"county": labourer.county, "township": labourer.township, "village": labourer.village}


def _unbound(run: Run) -> bool:
    return not run.meta.get("bound")


def _asks_id_or_phone(run: Run) -> bool:
    return _unbound(run) and run.turn.state.channel != "sms"


IDENTITY = (
    Slot("name", v.parse_name, extract=x.name, ask_if=_unbound, texts="identity.slots.name"),
    # an ID number or mobile number anywhere in a message is unmistakable
    Slot("identity", v.parse_id_or_phone, show=v.show_protected, extract=x.identity, ask_if=_asks_id_or_phone,
         texts="identity.slots.identity"),
)


def _phone_told(run: Run) -> bool:
    return "phone" in run.slots


# A phone said besides the ID number (at the read-back: 电话打错了，是139…) is kept here, never over the ID
# number; the slot is never asked.
PHONE_BESIDES = Slot("phone", v.parse_phone, show=v.show_protected, extract=None, ask_if=_phone_told,
                     texts="identity.slots.phone")


def _clear(run: Run, name: str) -> str | None:
    value = run.slots.get(name)
    return v.reveal(value, run.turn.settings.data_key) if value else None


def _sms_phone(run: Run) -> str | None:
    """The number an SMS conversation comes from (None on other channels)."""
    turn = run.turn
    return address_phone(turn.session, turn.message.address, data_key=turn.settings.data_key)


def _county_of(run: Run, id_number: str | None) -> str | None:
    if not id_number:
        return None
    counties = (run.turn.kb.regions or {}).get("counties") or []
    return next((c["name"] for c in counties if str(c.get("code")) == id_number[:6]), None)


def identify(run: Run, place: dict | None = None) -> Labourer:
    """The roster entry of whoever is talking: bound before, matched now, or registered as self-reported."""
    turn, key = run.turn, run.turn.settings.data_key
    labourer = turn.labourer()
    if labourer is not None:
        return labourer
    identity = run.slots.get("identity") or {}
    id_number = _clear(run, "identity") if identity.get("kind") == "id" else None
    phone = _clear(run, "identity") if identity.get("kind") == "phone" else (_clear(run, "phone") or _sms_phone(run))
    name = run.get("name", "")
    # On SMS the number is the address: a family phone's registered people are told apart by name.
    by_number = turn.message.user_id if turn.message.channel == "sms" else None
    labourer = find_labourer(turn.session, name=name, data_key=key, id_number=id_number, phone=phone,
                             phone_hash=by_number)
    if labourer is None:
        place = place or {}
        labourer = register_self_reported(
            turn.session, name=name, data_key=key, id_number=id_number, phone=phone,
            county=place.get("county") or _county_of(run, id_number), township=place.get("township"),
            village=place.get("village"), note=f"{turn.state.channel} 自助登记",
        )
    turn.bind(labourer)
    return labourer


def _replaced(run: Run, kind: str, kept_id: int) -> None:
    """A record changed from 我的登记 whose trade changed is now the other row: the old one is withdrawn."""
    replaces = run.meta.get("replaces") or {}
    if replaces.get("kind") != kind or replaces.get("id") == kept_id:
        return
    model = TrainingNeed if kind == "training" else JobWish
    old = run.turn.session.get(model, replaces["id"])
    if old is not None and old.status == "open":
        old.status = "cancelled"


def _date(value: dict | None, key: str = "date") -> date | None:
    return date.fromisoformat(value[key]) if value and value.get(key) else None


# ---- register_training -------------------------------------------------------------------------


def _complete_training(run: Run) -> list[Reply]:
    township = run.get("township", {})
    labourer = identify(run, township)
    when = run.get("available")
    _need, created = create_training_need(
        run.turn.session, labourer=labourer, training_type=run.slots["training_type"],
        preferred_format=run.get("format"), available_from=when["text"] if when else None,
        available_date=_date(when), township=township.get("township"), channel=run.turn.state.channel,
        available_until=_date(when, "until"),
    )
    _replaced(run, "training", _need.id)
    finish(run.turn)
    key = "done" if created else "updated"
    return [Reply(run.text(key, name=labourer.name, training_type=run.slots["training_type"]))]


REGISTER_TRAINING = Dialog(
    name="register_training",
    intent="register_training",
    prepare=_prepare,
    slots=(
        *IDENTITY,
        PHONE_BESIDES,
        Slot("training_type", v.parse_training_type, extract=x.training_type, own_words_after=OWN_WORDS_AFTER),
        Slot("format", v.parse_format, extract=x.training_format),
        Slot("available", v.parse_when, show=v.show_when, extract=x.when),
        Slot("township", v.parse_training_place, show=v.show_township, extract=x.township),
    ),
    complete=_complete_training,
    texts=("done", "updated"),
    topics=("training_subsidy",),
)


# ---- register_job and working_away ---------------------------------------------------------------


def _complete_job(run: Run) -> list[Reply]:
    labourer = identify(run)
    place = run.get("place", {})
    start = run.get("start")
    _wish, created = create_job_wish(
        run.turn.session, labourer=labourer, job_type=run.slots["job_type"], place_scope=place.get("scope"),
        place=place.get("place"), min_monthly_pay=run.get("pay"), start_when=start["text"] if start else None,
        start_date=_date(start), accepts_public_welfare=run.slots.get("public_welfare"),
        accepts_home_based=run.slots.get("home_based"), channel=run.turn.state.channel,
        start_until=_date(start, "until"),
    )
    _replaced(run, "job", _wish.id)
    finish(run.turn)
    lines = [run.text("done" if created else "updated", name=labourer.name, job_type=run.slots["job_type"])]
    if run.slots.get("public_welfare"):
        lines.append(run.text("public_welfare_next"))
    return [Reply("".join(lines))]


REGISTER_JOB = Dialog(
    name="register_job",
    intent="register_job",
    prepare=_prepare,
    slots=(
        *IDENTITY,
        PHONE_BESIDES,
        Slot("job_type", v.parse_job_type, extract=x.job_type, own_words_after=OWN_WORDS_AFTER),
        Slot("place", v.parse_place_wish, show=v.show_place_wish, extract=x.place_wish, own_words_after=OWN_WORDS_AFTER,
             from_own_words=v.place_in_own_words, narrows=v.narrower_place),
        Slot("pay", v.parse_monthly_pay, show=v.show_money, extract=x.pay, optional=True),
        Slot("start", v.parse_when, show=v.show_when, extract=x.when),
        Slot("public_welfare", v.parse_yes_no, show=v.show_yes_no),
        Slot("home_based", v.parse_yes_no, show=v.show_yes_no),
    ),
    complete=_complete_job,
    texts=("done", "updated", "public_welfare_next"),
    topics=("public_welfare_post", "labour_export", "local_employment", "flexible_employment", "poverty_workshop"),
)


def _parse_away_place(text: str, ctx: v.SlotContext) -> str:
    return v.destination(text, ctx.kb) or v.parse_text(text, ctx)[:32]


def _complete_working_away(run: Run) -> list[Reply]:
    labourer = identify(run)
    since = run.get("since")
    record_working_away(
        run.turn.session, labourer=labourer, place=run.slots["place"], employer=run.get("employer"),
        job_type=run.get("job_type"), since=since["text"] if since else None, channel=run.turn.state.channel,
    )
    finish(run.turn)
    return [Reply(run.text("done", name=labourer.name, place=run.slots["place"]))]


WORKING_AWAY = Dialog(
    name="working_away",
    intent="register_job",
    prepare=_prepare,
    slots=(
        *IDENTITY,
        PHONE_BESIDES,
        Slot("place", _parse_away_place, extract=x.work_place),
        Slot("job_type", v.parse_job_type, extract=x.job_now, optional=True),
        Slot("employer", v.parse_text, extract=x.employer, optional=True, free_text=True),
        Slot("since", v.parse_since, show=v.show_when, extract=x.when, optional=True),
    ),
    complete=_complete_working_away,
    texts=("done",),
    topics=("labour_export", "social_insurance_subsidy"),
)


# ---- rights_complaint ----------------------------------------------------------------------------


def _owed(run: Run) -> bool:
    return run.slots.get("category") == "欠薪"


def _contributions_owed(run: Run) -> bool:
    """How long social insurance went unpaid (两年都没给我们交社保) is owed as wages are: kept when said, never asked."""
    return run.slots.get("category") == "社保"


def _prepare_complaint(run: Run) -> None:
    _prepare(run)
    # 一直不签合同 还乱扣钱: pay held back said beside another problem; what was taken is asked as a sum owed
    run.meta["pay_held"] = x.pay_held(run.turn.text)


def _money_owed(run: Run) -> bool:
    return _owed(run) or bool(run.meta.get("pay_held"))


def _a_fee(run: Run) -> bool:
    """What an agent took (中介收了我一千五) is the sum to get back: kept when said, never asked."""
    return run.slots.get("category") == "中介收费"


def _asks_phone(run: Run) -> bool:
    identity = run.slots.get("identity") or {}
    return run.turn.state.channel != "sms" and identity.get("kind") != "phone" and not run.meta.get("bound")


def _unknown_to_the_registry(run: Run) -> bool:
    """Ask where someone lives only when the registry cannot place them: the case must land in the right
    county's queue (bot.scope); a roster entry found by the name and number given carries its township."""
    if run.meta.get("bound") and run.turn.labourer() is not None and run.turn.labourer().county:
        return False
    turn, identity = run.turn, run.slots.get("identity") or {}
    id_number = _clear(run, "identity") if identity.get("kind") == "id" else None
    phone = _clear(run, "identity") if identity.get("kind") == "phone" else (_clear(run, "phone") or _sms_phone(run))
    known = find_labourer(turn.session, name=run.get("name", ""), data_key=turn.settings.data_key,
                          id_number=id_number, phone=phone,
                          phone_hash=turn.message.user_id if turn.message.channel == "sms" else None)
    return known is None or not known.county


def _asks_evidence(run: Run) -> bool:
    return run.turn.state.channel in PHOTO_CHANNELS


def _complete_complaint(run: Run) -> list[Reply]:
    turn = run.turn
    place = run.get("township") or {}
    labourer = identify(run, place)
    contact = run.slots.get("phone") or (run.slots.get("identity") if (run.slots.get("identity") or {}).get("kind") == "phone" else None)
    sms_number = _sms_phone(run)
    if contact is not None:
        protected = (contact["enc"].encode("ascii"), contact["hash"], contact["masked"])
    elif sms_number is not None:  # the number the complaint came from: the one the help desk can reach
        number = pii.protect_phone(sms_number, turn.settings.data_key)
        protected = (number.encrypted, number.lookup_hash, number.masked)
    elif labourer.phone_enc is not None:
        protected = (labourer.phone_enc, labourer.phone_hash or "", labourer.phone_masked or "")
    else:
        protected = None
    period = run.get("period")
    complaint = create_complaint(
        turn.session,
        day=datetime.now(ZoneInfo(turn.settings.timezone)).date(),
        channel=turn.state.channel, user_id=turn.state.user_id, labourer_id=labourer.id,
        category=run.slots["category"], employer=run.slots["employer"], site=run.get("site"),
        amount_owed=run.get("amount"), period=v.show_period(period) if period else None,
        workers_affected=run.get("workers"), description=run.get("description"), contact_phone=protected,
        media_ids=list(run.meta.get("media") or ()),
        area=(place.get("county"), place.get("township")) if place else None, sla=SlaPolicy.of(turn.settings),
    )
    finish(turn)
    context = dict(turn.state.context or {})
    context["attach_media"] = {"dialog": "rights_complaint", "complaint_id": complaint.id,
                               "until": (utcnow() + EVIDENCE_WINDOW).isoformat()}
    turn.state.context = context
    lines = [run.text("done_urgent" if complaint.urgent else "done", ticket=complaint.ticket_no)]
    if complaint.category == "工伤":
        lines.append(run.text("injury_advice"))
    return [Reply("".join(lines))]


def _attach_after_filing(turn, attach: dict) -> list[Reply]:  # noqa: ANN001 - Turn, imported lazily by the engine
    complaint = turn.session.get(Complaint, attach["complaint_id"])
    if complaint is None:
        return [Reply(turn.kb.text("media_ack"))]
    add_evidence(turn.session, complaint, channel=turn.message.channel, media_id=turn.message.media_id)
    return [Reply(text(turn, "rights_complaint.evidence_added", ticket=complaint.ticket_no))]


RIGHTS_COMPLAINT = Dialog(
    name="rights_complaint",
    intent="rights_complaint",
    prepare=_prepare_complaint,
    slots=(
        Slot("category", v.parse_category, extract=x.category),
        Slot("employer", v.parse_text, extract=x.employer, free_text=True),
        Slot("site", v.parse_text, extract=x.site, optional=True, free_text=True),
        Slot("amount", v.parse_amount, show=v.show_money, extract=x.amount, optional=True, ask_if=_money_owed,
             kept_if=_a_fee),
        Slot("period", v.parse_period, show=v.show_period, extract=x.period, optional=True, ask_if=_owed,
             kept_if=_contributions_owed),
        Slot("workers", v.parse_workers, show=v.show_workers, extract=x.workers),
        Slot("description", v.parse_text, optional=True, free_text=True),
        *IDENTITY,
        Slot("phone", v.parse_phone, show=v.show_protected, extract=x.phone, ask_if=_asks_phone),
        Slot("evidence", v.parse_evidence_done, show=lambda _value: "", optional=True, ask_if=_asks_evidence),
        Slot("township", v.parse_township, show=v.show_township, optional=True, ask_if=_unknown_to_the_registry),
    ),
    complete=_complete_complaint,
    texts=("done", "done_urgent", "injury_advice", "evidence_added"),
    topics=("rights_protection",),
    on_media=_attach_after_filing,
)

# ---- event_signup --------------------------------------------------------------------------------


def _prepare_signup(run: Run) -> None:
    _prepare(run)
    signup.prepare(run)


def _complete_signup(run: Run) -> list[Reply]:
    turn = run.turn
    labourer = identify(run)
    outcome = signups.sign_up(turn.session, signup.event_id(run), labourer.id, channel=turn.message.channel)
    finish(turn)
    return [signups.outcome_reply(outcome, tz=turn.settings.timezone, texts=turn.kb.campaign_texts)]


EVENT_SIGNUP = Dialog(
    name=signup.NAME,
    intent="query_events",
    prepare=_prepare_signup,
    slots=(
        Slot("event", signup.parse_event, extract=signup.event_mentioned, choices=signup.event_choices),
        Slot("name", v.parse_name, extract=x.name, ask_if=_unbound, texts="identity.slots.name"),
        # only what a sign-up needs: a phone to reach them (on SMS the number is known)
        Slot("identity", v.parse_phone, show=v.show_protected, extract=x.phone, ask_if=_asks_id_or_phone),
    ),
    complete=_complete_signup,
    read_back=False,
)

DIALOGS = (REGISTER_TRAINING, REGISTER_JOB, WORKING_AWAY, RIGHTS_COMPLAINT, EVENT_SIGNUP)
