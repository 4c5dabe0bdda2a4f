"""Help-desk service levels counted in Chinese working time.

A target is a number of working hours: the desk's office hours (default 09:00–12:00 and 13:30–17:30,
local time) on working days. Working days follow the State Council's holiday notices through the
maintained `chinese-calendar` package: statutory holidays are off, and the make-up working days (调休,
often a Saturday or Sunday) are on. For a year the package does not know yet, Monday–Friday are worked.
The clock stops while a ticket waits for the labourer (bot.helpdesk keeps the paused working seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

DEFAULT_WORK_HOURS = "09:00-12:00,13:30-17:30"
# (first response, resolution) in working hours, by the first key that applies: "urgent", the
# category (欠薪, 工伤 …), the kind ("handoff"), else "default".
DEFAULT_TARGETS: dict[str, tuple[float, float]] = {
    "urgent": (2, 16),
    "工伤": (4, 24),
    "handoff": (2, 8),
    "default": (8, 40),
}
MAX_DAYS = 3 * 366  # no target reaches further; a runaway loop would


def is_working_day(day: date) -> bool:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # a year the package has no holiday notice for yet
        return day.weekday() < 5


def parse_work_hours(spec: str) -> tuple[tuple[time, time], ...]:
    """"09:00-12:00,13:30-17:30" → ((09:00, 12:00), (13:30, 17:30)); a bad spec raises ValueError."""
    windows = []
    for part in spec.replace("，", ",").split(","):
        if not part.strip():
            continue
        start, _, end = part.strip().partition("-")
        window = (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
        if window[0] >= window[1]:
            raise ValueError(f"working hours {part!r}: the start must be before the end")
        windows.append(window)
    if not windows:
        raise ValueError("working hours: give at least one window such as 09:00-17:00")
    ordered = tuple(sorted(windows))
    if any(a[1] > b[0] for a, b in zip(ordered, ordered[1:])):
        raise ValueError(f"working hours {spec!r}: the windows overlap")
    return ordered


@dataclass(frozen=True)
class SlaPolicy:
    timezone: str = "Asia/Shanghai"
    work_hours: tuple[tuple[time, time], ...] = field(default_factory=lambda: parse_work_hours(DEFAULT_WORK_HOURS))
    targets: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_TARGETS))

    @classmethod
    def of(cls, settings) -> "SlaPolicy":  # noqa: ANN001 - bot.settings.Settings
        targets = {k: (float(v[0]), float(v[1])) for k, v in settings.helpdesk_sla_hours.items()}
        return cls(timezone=settings.timezone, work_hours=parse_work_hours(settings.helpdesk_work_hours),
                   targets={**DEFAULT_TARGETS, **targets})

    def target(self, *, kind: str, category: str | None, urgent: bool) -> tuple[float, float]:
        for key in ("urgent" if urgent else None, category, kind):
            if key and key in self.targets:
                return self.targets[key]
        return self.targets["default"]

    # ---- working time ------------------------------------------------------------------------------

    def _windows(self, day: date) -> list[tuple[datetime, datetime]]:
        if not is_working_day(day):
            return []
        tz = ZoneInfo(self.timezone)
        return [(datetime.combine(day, a, tz), datetime.combine(day, b, tz)) for a, b in self.work_hours]

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working time between two moments, in seconds (0 when end <= start)."""
        if end <= start:
            return 0.0
        tz = ZoneInfo(self.timezone)
        day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
        total = 0.0
        while day <= last:
            for a, b in self._windows(day):
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def add_working(self, start: datetime, seconds: float) -> datetime:
        """The moment `seconds` of working time after `start`."""
        tz = ZoneInfo(self.timezone)
        day = start.astimezone(tz).date()
        left = max(seconds, 0.0)
        for _ in range(MAX_DAYS):
            for a, b in self._windows(day):
                lo = max(a, start)
                if b <= lo:
                    continue
                room = (b - lo).total_seconds()
                if left <= room:
                    return (lo + timedelta(seconds=left)).astimezone(start.tzinfo)
                left -= room
            day += timedelta(days=1)
        raise ValueError("a service-level target beyond three years of working time")
