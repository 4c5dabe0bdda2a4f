"""A choice the bot itself offers (a button, a numbered option) typed out by its label is that choice:
"接着填" to the hand-off offer goes on with the form, exactly as "2" does — it is never routed as a question
(it got a policy answer about 补习班 stacked on the form). Every menu the dialogs show is tried: two people
say the same things up to the menu, then one replies with the number and the other with the label, and
both must get the same replies and be left at the same step with the same answers."""

from __future__ import annotations

import re

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db import session_scope
from bot.models import ConversationState, Event, Labourer

from test_dialog_support import age_dialog, state_of, valid_id_number

ID_NUMBER = valid_id_number()
ID = "{id}"  # each person their own ID number, read back alike (the same number would update one registration)
TRAINING = ["我想学电焊", "王小明", ID]
TO_CONFIRM = TRAINING + ["都可以", "随时", "江口镇"]
JOB = ["我想找工作进厂", "王小明", ID]


def _id_numbers() -> Iterator[str]:
    """Valid ID numbers that differ only in the masked-out birth date and end like ID_NUMBER."""
    day = date(2001, 1, 1)
    while True:
        number = valid_id_number(birth=day.strftime("%Y%m%d"))
        if number[-4:] == ID_NUMBER[-4:]:
            yield number
        day += timedelta(days=1)


_IDS = _id_numbers()


def _age(app, user):  # noqa: ANN001, ANN202
    age_dialog(app, user, 31)


# name → what is said before the menu (a callable ages the dialog), one message that shows it
MENUS: dict[str, list[str | Callable]] = {
    "training format": TRAINING,
    "confirmation": TO_CONFIRM,
    "edit menu": TO_CONFIRM + ["修改"],
    "hand-off offer": TRAINING[:2] + ["12345", "12345", "12345"],
    "paused form": TRAINING[:2] + [_age, ID],
    "unsubscribe check": TRAINING + ["以后别给我发消息了"],
    "job place": JOB,
    "public welfare yes/no": JOB + ["本地", "三千", "马上"],
    "complaint category": ["我要投诉", "王小明", ID_NUMBER],
}


def _send(client, user: str, text: str) -> list[dict]:  # noqa: ANN001
    response = client.post("/api/simulator/message", json={"user": user, "text": text})
    assert response.status_code == 200, response.text
    return response.json()["replies"]


def _play(client, user: str, script: list[str | Callable]) -> list[dict]:  # noqa: ANN001
    replies: list[dict] = []
    number = next(_IDS)
    for step in script:
        if callable(step):
            step(client.app, user)
        else:
            replies = _send(client, user, step.replace(ID, number))
    return replies


def _texts(replies: list[dict]) -> list[str]:
    """The reply texts, a ticket number aside (each person's hand-off has its own)."""
    return [re.sub(r"编号\s*[A-Z]+-\d+", "编号 #", r["text"]) for r in replies]


def _where(app, user: str) -> tuple:  # noqa: ANN001
    state = state_of(app, user)
    meta = dict((state.context or {}).get("dialog") or {})
    slots = {k: ({**v, "enc": None, "hash": None} if isinstance(v, dict) and "enc" in v else v) for k, v in (state.slots or {}).items()}
    return state.dialog, state.step, slots, meta.get("offer"), bool(meta.get("paused"))


@pytest.mark.parametrize("menu", list(MENUS))
def test_every_label_a_dialog_offers_typed_out_is_that_choice(client, app, menu):
    labels = [c for r in _play(client, f"probe-{menu}", MENUS[menu]) for c in r["choices"]]
    assert len(labels) >= 2, f"{menu}: no menu shown"
    for number, label in enumerate(labels, 1):
        by_number, by_label = f"n{number}-{menu}", f"l{number}-{menu}"
        _play(client, by_number, MENUS[menu])
        _play(client, by_label, MENUS[menu])
        wanted = _texts(_send(client, by_number, str(number)))
        got = _texts(_send(client, by_label, label))
        assert got == wanted, f"{menu}: {label!r} is not choice {number}"
        assert _where(app, by_label) == _where(app, by_number), f"{menu}: {label!r} left the form elsewhere"


def test_continue_to_the_hand_off_offer_resumes_the_form_with_nothing_else(client, app):
    """The reported case, as a person types it: the offer's own words, and the same said loosely."""
    for said in ("接着填", "接着填吧", "继续填"):
        user = f"p-{said}"
        _play(client, user, MENUS["hand-off offer"])
        replies = _send(client, user, said)
        assert len(replies) == 1 and "身份证号" in replies[0]["text"], replies  # the question again, nothing stacked
        assert "补习班" not in replies[0]["text"]
        assert state_of(app, user).step == "identity"
        _send(client, user, next(_IDS))
        assert state_of(app, user).step == "format"  # the form goes on from there


@pytest.fixture
def two_events(app):  # noqa: ANN001, ANN201
    with session_scope(app.state.sessionmaker) as s:
        for title, trade, days in (("电工农闲班", "电工", 5), ("中式烹调小灶班", "中式烹调", 6)):
            s.add(Event(kind="training", title=title, training_type=trade, township="江口镇", venue="江口镇就业扶贫站",
                        capacity=10, starts_at=datetime.now(UTC) + timedelta(days=days)))


def _known(app, user: str) -> None:  # noqa: ANN001
    with session_scope(app.state.sessionmaker) as s:
        labourer = Labourer(name="王小明", county="平昌县", township="江口镇")
        s.add(labourer)
        s.flush()
        s.add(ConversationState(channel="simulator", user_id=user, labourer_id=labourer.id, slots={}, context={}))


def test_a_listed_event_typed_by_its_label_signs_up_for_it(client, app, two_events):
    labels = [c for r in _play(client, "probe", ["最近有啥子培训"]) for c in r["choices"]]
    assert len(labels) == 2
    for number, label in enumerate(labels, 1):
        _known(app, f"n{number}")
        _known(app, f"l{number}")
        _send(client, f"n{number}", "最近有啥子培训")
        _send(client, f"l{number}", "最近有啥子培训")
        wanted = [r["text"] for r in _send(client, f"n{number}", str(number))]
        got = [r["text"] for r in _send(client, f"l{number}", label)]
        assert "报名成功" in wanted[0]
        assert got == wanted, label
    with app.state.sessionmaker() as session:
        assert session.scalars(select(ConversationState.dialog).where(ConversationState.dialog.is_not(None))).all() == []


def _records_menu(client, app, user: str) -> list[dict]:  # noqa: ANN001
    _play(client, user, TO_CONFIRM + ["确认提交"])
    return _send(client, user, "我的登记")


def test_the_records_menus_take_their_labels_as_the_choice(client, app):
    """我的登记 offers 改/撤回 each record, then 修改 or 撤回: each label typed is that choice."""
    labels = [c for r in _records_menu(client, app, "probe") for c in r["choices"]]
    assert labels and labels[0].startswith("改/撤回")
    _records_menu(client, app, "n")
    _records_menu(client, app, "l")
    wanted, got = _texts(_send(client, "n", "1")), _texts(_send(client, "l", labels[0]))
    assert got == wanted
    then = [c for r in _send(client, "probe", "1") for c in r["choices"]]
    assert len(then) == 2  # 修改 | 撤回
    for number, label in enumerate(then, 1):
        by_number, by_label = f"n{number}", f"l{number}"
        for user in (by_number, by_label):
            if user not in ("n", "l"):
                _records_menu(client, app, user)
                _send(client, user, "1")
        wanted, got = _texts(_send(client, by_number, str(number))), _texts(_send(client, by_label, label))
        assert got == wanted, label
        assert _where(app, by_label) == _where(app, by_number), label
