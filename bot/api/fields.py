"""Field types the HTTP APIs share: what the database can hold, refused as a 422 before it gets there."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field, StrictBool, StrictFloat, StrictInt

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
RowId = Annotated[StrictInt, Field(ge=1, le=MAX_ROW_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]

# Bodies are JSON: a number is a number and a flag is true or false. Pydantic's lax mode takes "yes", "1"
# and 1 as true and true as the number 1, so a client's mistake would be stored as a meaning nobody chose.
Flag = StrictBool
Count = StrictInt
Number = StrictInt | StrictFloat
