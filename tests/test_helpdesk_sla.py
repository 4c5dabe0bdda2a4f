"""Service levels in Chinese working time: office hours on working days (weekends and statutory holidays
off, make-up working days on, from chinese-calendar), the clock stopped while the desk waits for the
labourer; the overdue filter; urgent cases."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.db import session_scope
from bot.helpdesk_sla import SlaPolicy, parse_work_hours
from bot.models import Complaint, Ticket
from bot.models.complaints import is_urgent, open_ticket, transition_ticket

CN = ZoneInfo("Asia/Shanghai")
SLA = SlaPolicy()  # 09:00-12:00, 13:30-17:30; (first response, resolution) 8 and 40 working hours by default


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CN)


def test_a_target_skips_the_weekend():
    assert SLA.add_working(at("2026-03-06 16:30"), 2 * 3600) == at("2026-03-09 10:00")  # Friday → Monday


def test_a_target_skips_the_national_day_holiday():
    # 8 working hours from Wednesday 30 September 16:00: 1.5 h that day, then 1–7 October are off.
    due = SLA.add_working(at("2026-09-30 16:00"), 8 * 3600)
    assert due == at("2026-10-08 17:00")
    assert SLA.working_seconds(at("2026-09-30 17:30"), at("2026-10-08 09:00")) == 0


def test_a_make_up_saturday_is_worked():
    # Saturday 14 February 2026 is a make-up working day (调休) before the Spring Festival holiday.
    assert SLA.add_working(at("2026-02-13 17:00"), 2 * 3600) == at("2026-02-14 10:30")
    # … and the festival week itself is off: Friday 20 February to Tuesday 24 February is one working day.
    assert SLA.working_seconds(at("2026-02-20 09:00"), at("2026-02-24 09:00")) == 0


def test_lunch_and_evenings_do_not_count():
    assert SLA.working_seconds(at("2026-03-02 11:00"), at("2026-03-02 14:30")) == 2 * 3600
    assert SLA.working_seconds(at("2026-03-02 18:00"), at("2026-03-03 08:00")) == 0


def test_working_hours_are_checked():
    for bad in ("", "17:00-09:00", "09:00-12:00,11:00-14:00", "9点-5点"):
        with pytest.raises(ValueError):
            parse_work_hours(bad)


def _ticket(session, created: datetime, *, category: str = "欠薪", workers: int = 1) -> Ticket:  # noqa: ANN001
    complaint = Complaint(ticket_no=f"WQ-{created:%Y%m%d}-{workers:04d}", channel="sms", user_id="u",
                          category=category, employer="某公司", workers_affected=workers,
                          urgent=is_urgent(category, workers, created.date()), county="平昌县", created_at=created)
    session.add(complaint)
    session.flush()
    return open_ticket(session, complaint=complaint, sla=SLA, now=created)


def test_overdue_across_a_holiday_and_paused_while_waiting(app):
    with session_scope(app.state.sessionmaker) as session:
        ticket = _ticket(session, at("2026-09-30 16:00"))
        assert ticket.first_response_due_at == at("2026-10-08 17:00")
        assert not ticket.overdue(at("2026-10-07 20:00"))  # a week later, but the holiday does not count
        assert ticket.overdue(at("2026-10-08 17:01"))

        paused = _ticket(session, at("2026-03-02 09:00"), workers=2)
        assert paused.resolve_due_at == at("2026-03-09 15:30")  # 40 h: five 7-hour days and 5 h
        transition_ticket(session, paused, "waiting_on_labourer", actor="desk", sla=SLA, now=at("2026-03-03 09:00"))
        assert paused.resolve_due_at is None and not paused.overdue(at("2026-04-01 09:00"))
        transition_ticket(session, paused, "in_progress", actor="labourer", sla=SLA, now=at("2026-03-05 09:00"))
        assert paused.paused_seconds == 14 * 3600  # two working days waited
        assert paused.resolve_due_at == at("2026-03-11 15:30")
        transition_ticket(session, paused, "resolved", actor="desk", sla=SLA, now=at("2026-03-12 09:00"))
        assert not paused.overdue(at("2026-03-12 09:00"))  # done is never overdue


def test_the_overdue_filter_and_the_targets_by_urgency(client, app, make_staff):
    with session_scope(app.state.sessionmaker) as session:
        late = _ticket(session, at("2026-09-30 16:00")).ticket_no
        injury = _ticket(session, datetime.now(CN), category="工伤", workers=3)
        assert injury.urgent and injury.first_response_due_at is not None
        fresh_first, _ = SLA.target(kind="complaint", category="工伤", urgent=True)
        assert SLA.working_seconds(injury.created_at, injury.first_response_due_at) == fresh_first * 3600
    desk = make_staff("desk-pc", "helpdesk", [{"county": "平昌县"}])
    overdue = client.get("/api/helpdesk/tickets", params={"overdue": "true"}, headers=desk).json()
    assert [t["ticket_no"] for t in overdue["items"]] == [late] and overdue["items"][0]["overdue"] is True
    urgent = client.get("/api/helpdesk/tickets", params={"urgent": "true"}, headers=desk).json()
    assert [t["urgent"] for t in urgent["items"]] == [True] and urgent["items"][0]["ticket_no"] != late


def test_targets_come_from_the_settings(make_settings):
    policy = SlaPolicy.of(make_settings(helpdesk_sla_hours={"欠薪": [4, 24]}, helpdesk_work_hours="08:30-17:00"))
    assert policy.target(kind="complaint", category="欠薪", urgent=False) == (4, 24)
    assert policy.target(kind="complaint", category="欠薪", urgent=True) == (2, 16)  # urgent goes first
    assert policy.target(kind="handoff", category=None, urgent=False) == (2, 8)
    assert policy.add_working(at("2026-03-02 16:00"), 2 * 3600) == at("2026-03-03 09:30")


@pytest.mark.parametrize(("category", "workers", "day", "urgent"), [
    ("欠薪", 3, date(2027, 1, 20), True),  # a crew unpaid two weeks before the Spring Festival (6 Feb 2027)
    ("欠薪", 3, date(2027, 2, 6), True),
    ("欠薪", 1, date(2027, 1, 20), False),  # one worker: the usual targets
    ("欠薪", 3, date(2027, 3, 20), False),  # after the festival
    ("欠薪", 10, date(2027, 6, 1), True),  # many workers
    ("工伤", 1, date(2027, 6, 1), True),
    ("社保", 5, date(2027, 1, 20), False),
])
def test_urgent_cases(category, workers, day, urgent):
    assert is_urgent(category, workers, day) is urgent


def test_the_assignee_is_reminded_of_a_target_two_hours_away(client, app, make_staff):
    from datetime import timedelta

    from bot.models import utcnow

    from test_console import login

    with session_scope(app.state.sessionmaker) as session:
        soon = _ticket(session, datetime.now(CN), category="工伤")
        soon.assignee = "desk-pc"
        soon.first_response_due_at = utcnow() + timedelta(minutes=50)
        later = _ticket(session, datetime.now(CN), workers=2)
        later.assignee = "desk-pc"
        later.first_response_due_at = utcnow() + timedelta(hours=5)
        later.resolve_due_at = utcnow() + timedelta(days=3)
        numbers = soon.ticket_no, later.ticket_no
    make_staff("desk-pc", "helpdesk", [{"county": "平昌县"}])
    login(client, "desk-pc")
    page = client.get("/console/helpdesk").text
    assert "1 件工单</a>两小时内就要到期" in page
    reminded = client.get("/console/helpdesk", params={"view": "due_soon"}).text
    assert numbers[0] in reminded and numbers[1] not in reminded


def test_the_assignee_is_reminded_once_when_a_target_comes_near_in_the_console_and_by_webhook(
        client, app, make_settings, make_staff):
    from scheduler.jobs import CampaignScheduler
    from tests.fakes.wecom_robot import FakeWeComRobot

    from test_console import csrf_of, login

    with session_scope(app.state.sessionmaker) as session:
        late = _ticket(session, at("2026-09-30 16:00"))  # first response due 8 October 17:00 (after the holiday)
        later = _ticket(session, at("2026-10-08 09:00"), workers=2)  # due 9 October 10:00
        late.assignee = later.assignee = "desk-pc"
        numbers = late.ticket_no, later.ticket_no
    make_staff("desk-pc", "helpdesk", [{"county": "平昌县"}])
    make_staff("desk-pc-2", "helpdesk", [{"county": "平昌县"}])

    with FakeWeComRobot() as robot:
        settings = make_settings(helpdesk_reminder_webhook=robot.url)
        moments = iter([at("2026-10-07 20:00"), at("2026-10-08 15:30"), at("2026-10-08 15:31"), at("2026-10-08 17:05")])
        scheduler = CampaignScheduler(settings, app.state.engine, app.state.sessionmaker, clock=lambda: next(moments))
        robot.down = True
        assert scheduler.desk_sweep()["reminded"] == 0  # the evening before: nothing is near
        assert scheduler.desk_sweep() == {"reminded": 1, "pushed": 0, "fetched": 0}  # 90 minutes left; robot away
        robot.down = False
        assert scheduler.desk_sweep() == {"reminded": 0, "pushed": 1, "fetched": 0}  # tried again, not made again
        assert scheduler.desk_sweep()["reminded"] == 0  # overdue now, but already reminded of this target
    [posted] = robot.posted
    assert numbers[0] in posted["text"]["content"] and "desk-pc" in posted["text"]["content"]
    assert "首次回复" in posted["text"]["content"] and "10月08日 17:00" in posted["text"]["content"]

    login(client, "desk-pc")
    assert 'hx-get="/console/helpdesk/reminders"' in client.get("/console/").text  # asked for on every page
    page = client.get("/console/helpdesk").text
    assert "到期提醒" in page and numbers[0] in page.split('id="reminders"')[1].split("</section>")[0]
    assert numbers[1] not in page.split('id="reminders"')[1].split("</section>")[0]
    with session_scope(app.state.sessionmaker) as session:
        from bot.models import StaffNotification

        reminder_id = session.scalars(select(StaffNotification.id)).one()
    login(client, "desk-pc-2")
    assert "到期提醒" not in client.get("/console/helpdesk/reminders").text  # only the assignee is reminded
    other = client.post(f"/console/helpdesk/reminders/{reminder_id}/read",
                        data={"csrf_token": csrf_of(client, "/console/helpdesk")})
    assert other.status_code == 404
    login(client, "desk-pc")
    token = csrf_of(client, "/console/helpdesk")
    read = client.post(f"/console/helpdesk/reminders/{reminder_id}/read", data={"csrf_token": token},
                       headers={"HX-Request": "true"})
    assert read.status_code == 200 and "到期提醒" not in read.text
    assert "到期提醒" not in client.get("/console/helpdesk").text
