"""Roster files for the import tests: Excel (openpyxl, as officials' files are) and CSV in a chosen encoding."""

from __future__ import annotations

import csv
import io
from typing import Any

from stdnum.cn import ric

HEADERS = ["序号", "姓名", "身份证号码", "联系电话", "区县", "乡镇", "村", "是否贫困户"]


def id_number(serial: int, birth: str = "19800101", region: str = "511923") -> str:
    """A checksummed ID number; `serial` (0–999) tells people apart."""
    body = f"{region}{birth}{serial:03d}"
    return body + ric.calc_check_digit(body + "0")


def bad_checksum(number: str) -> str:
    last = "0" if number[-1] != "0" else "1"
    return number[:-1] + last


def xlsx(rows: list[list[Any]], headers: list[str] = HEADERS, *, title: str | None = None) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    if title:
        sheet.append([title])
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(rows: list[list[Any]], headers: list[str] = HEADERS, *, encoding: str = "utf-8-sig") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def person(serial: int, name: str = "", *, phone: str = "", village: str = "长沙村", township: str = "白衣镇",
           county: str = "平昌县", poor: str = "是") -> list[Any]:
    return [serial, name or f"工友{serial}", id_number(serial), phone, county, township, village, poor]
