"""Demo data: a few hundred valid, protected, deterministic labourers across the five counties, loaded once."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import func, select

from bot import pii
from bot.demo import ID_REGION, load_demo_data
from bot.models import ConversationState, Event, JobWish, Labourer, TrainingNeed, WorkingAway

from test_dialog_support import db


def test_demo_data_is_valid_deterministic_idempotent_and_fast(app):
    services = app.state.services
    started = time.perf_counter()
    load_demo_data(services)
    elapsed = time.perf_counter() - started
    load_demo_data(services)  # a second start adds nobody
    key = services.settings.data_key
    with db(app) as session:
        people = list(session.scalars(select(Labourer).order_by(Labourer.id)))
        assert 200 <= len(people) <= 1000
        assert {p.county for p in people} == set(ID_REGION)
        for person in people:
            id_number = pii.decrypt(person.id_number_enc, key)
            assert pii.normalize_id_number(id_number) == id_number  # checksum, birth date, region
            assert id_number[:6] == ID_REGION[person.county]
            assert person.id_number_masked == pii.mask_id_number(id_number)
            assert pii.normalize_phone(pii.decrypt(person.phone_enc, key))
            assert person.township is not None and person.source == "roster"
        assert len({p.id_number_hash for p in people}) == len(people)
        for model in (TrainingNeed, JobWish, WorkingAway):
            assert session.scalar(select(func.count()).select_from(model)) > 10
        first = [(p.name, p.id_number_hash, p.township) for p in people]
    assert elapsed < 2.0, f"demo data took {elapsed:.2f}s"
    # same seed, same people
    from bot.demo import demo_labourers

    again = demo_labourers(services.kb, key)
    assert [(p["name"], p["id_number_hash"], p["township"]) for p in again] == first


def test_demo_events_can_be_asked_about_and_signed_up_for(app, say):
    load_demo_data(app.state.services)
    load_demo_data(app.state.services)  # once only
    with db(app) as session:
        events = list(session.scalars(select(Event).order_by(Event.starts_at)))
    assert len(events) == 3 and all(e.title.startswith("【演示】") for e in events)
    assert all(e.starts_at > datetime.now(UTC) for e in events)
    with db(app) as session:  # one of the demo people talking on the simulator
        first = session.scalars(select(Labourer.id).order_by(Labourer.id)).first()
        session.add(ConversationState(channel="simulator", user_id="demo", labourer_id=first, slots={}, context={}))
        session.commit()
    listing = say("丽水招聘会好久开", user="demo")[0]
    assert "【演示】巴中—丽水东西部劳务协作专场招聘会" in listing and "【演示】电工农闲班" in listing
    number = next(line.split(".")[0] for line in listing.splitlines() if line.endswith("报名：【演示】电工农闲班"))
    assert "报名成功" in say(number, user="demo")[0]
