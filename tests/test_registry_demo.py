"""Demo data: a few hundred valid, protected, deterministic labourers across the five counties, loaded once."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from bot import pii
from bot.demo import ID_REGION, load_demo_data
from bot.models import JobWish, Labourer, TrainingNeed, WorkingAway

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
