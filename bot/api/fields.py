"""Field types the HTTP APIs share: what the database can hold, refused as a 422 before it gets there."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field

from bot.validation import has_control_chars


def _no_control_chars(value: str) -> str:
    if has_control_chars(value):
        raise ValueError("control characters (such as NUL) are not allowed")
    return value


Text = Annotated[str, AfterValidator(_no_control_chars)]


def _aware_and_plausible(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone, e.g. 2026-03-10T09:00:00+08:00")
    # year 1 or 9999 with an offset cannot even be converted to UTC; no event or send is that far away
    if not 2000 <= value.year <= 2100:
        raise ValueError("give a date between the years 2000 and 2100")
    return value


Moment = Annotated[datetime, AfterValidator(_aware_and_plausible)]

# Row ids are the databases' INTEGER (32-bit on PostgreSQL): a larger number is a 422, not a 500.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
