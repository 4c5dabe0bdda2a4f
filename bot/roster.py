"""Roster import (一库): a village roster from Excel or CSV, validated before anything is written.

    upload = validate_upload(session, actor, filename=..., data=..., regions=..., data_key=...)
    # → a RosterImport with the counts and every problem as (row, field, problem); no labourer written
    counts = commit_import(factory, upload.id, actor, data_key=...)
    # → writes the valid rows only: new labourers created, known ones (same ID number) updated

Row numbers are the spreadsheet's own (the header is row 1 when it is the first row). Columns are mapped
from the Chinese headers officials use (姓名, 身份证号, 联系电话 …); a mapping an official corrects is
remembered for the next file with the same headers. Files are read with python-calamine (about ten times
faster than openpyxl on large sheets). A commit takes the rows the report found valid (kept encrypted
with the import), checks them again against the committer's area and the registry as it is then, and
writes in chunks of its own transactions, so a large file shows its progress and a second import of the
same people updates them instead of doubling anyone.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import itertools
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ARRAY, String, any_, bindparam, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from bot import pii
from bot.audit import audit
from bot.auth import Actor
from bot.db import session_scope
from bot.errors import Conflict, Invalid, NotFound
from bot.models import Labourer, RosterImport, RosterImportFile, RosterTemplate, utcnow
from bot.scope import covers, visible_areas
from bot.validation import has_control_chars

CHUNK = 10_000  # rows per transaction while committing (each one moves the progress bar). 25,000 wrote a third
# less on SQLite (each commit folds the WAL into the file: 263 MB against 389 MB for 99,000 new labourers) but
# took the peak memory of a 100,000-row import from 286 to 351 MB (the target is 400)
STALE_COMMIT = timedelta(minutes=10)  # a commit that has not moved for this long died with its worker
HEADER_SEARCH_ROWS = 5  # a title row or two above the header is common in village rosters
MAX_ERRORS_KEPT = 50_000
CHECK_BATCH = 2000  # rows checked against the registry in one look (their cells then freed)


@dataclass(frozen=True)
class Column:
    label: str  # what the console shows
    headers: tuple[str, ...]  # header texts that mean this column (after normalize_header)
    contains: tuple[str, ...] = ()  # or a header containing one of these
    required: bool = False


# The columns an import understands, in the order the console lists them.
COLUMNS: dict[str, Column] = {
    "name": Column("姓名", ("姓名", "劳动力姓名", "名字", "人员姓名"), ("姓名",), required=True),
    "id_number": Column("身份证号", ("身份证号", "身份证号码", "公民身份号码", "身份证", "证件号码", "证件号"),
                        ("身份证", "身份号码"), required=True),
    "phone": Column("联系电话", ("联系电话", "手机号", "手机号码", "电话", "手机", "联系方式", "电话号码"),
                    ("电话", "手机")),
    "county": Column("区县", ("区县", "县区", "县", "区", "所属区县", "县市区", "区（县）"), ("区县", "县区"),
                     required=True),
    "township": Column("乡镇", ("乡镇", "乡", "镇", "乡镇街道", "所属乡镇", "乡镇名称", "街道"), ("乡镇",),
                       required=True),
    "village": Column("村", ("村", "行政村", "村社区", "所属村", "村名", "村名称", "社区"), ("村",), required=True),
    "household_status": Column("户籍类型", ("户籍类型", "是否贫困户", "户类型", "户属性", "贫困户属性", "人员类型",
                                            "是否建档立卡贫困户", "是否建档立卡"), ("贫困",)),
    "employment_status": Column("就业状态", ("就业状态", "务工状态", "就业情况", "是否就业"), ("就业状态",)),
    "employment_channel": Column("就业渠道", ("就业渠道", "就业方式", "就业途径"), ("就业渠道",)),
    "wants_startup": Column("创业意愿", ("创业意愿", "是否有创业意愿", "有无创业意愿"), ("创业",)),
    "public_welfare_post": Column("公益性岗位", ("公益性岗位", "是否公益性岗位", "公益岗", "是否公益岗"), ("公益",)),
}
REQUIRED = tuple(name for name, col in COLUMNS.items() if col.required)
AREA_FIELDS = ("county", "township", "village")

HOUSEHOLD = {
    "registered_poor": ("是", "贫困户", "建档立卡贫困户", "建档立卡户", "建档立卡", "脱贫户", "已脱贫", "贫困",
                        "脱贫不稳定户", "边缘易致贫户", "监测户", "低保贫困户"),
    "general": ("否", "一般户", "一般", "非贫困户", "普通户", "一般农户"),
}
EMPLOYMENT = {
    "unemployed": ("未就业", "待业", "失业", "无业", "否"),
    "local": ("本地就业", "就近就业", "县内就业", "已就业", "是", "就业"),
    "working_away": ("外出务工", "转移就业", "省外务工", "市外务工", "外地务工", "务工"),
    "self_employed": ("自主创业", "创业", "个体经营"),
}
CHANNELS = {
    "local_enterprise": ("本地企业", "本地企业吸纳", "企业吸纳", "生产经营主体"),
    "public_welfare": ("公益性岗位", "公益岗", "公益性岗位安置"),
    "workshop": ("扶贫车间", "家庭工坊", "扶贫车间/家庭工坊", "就业扶贫车间"),
    "flexible": ("灵活就业", "居家灵活就业"),
    "labour_export": ("劳务输出", "劳务服务输出", "外出务工"),
}
YES = ("是", "有", "√", "✓", "1", "y", "yes", "true", "愿意")
NO = ("否", "无", "没有", "×", "0", "n", "no", "false", "不愿意", "")


# ---- reading the file -------------------------------------------------------------------------


class Lossy(str):
    """A cell Excel stored as a number too long for it: an 18-digit ID number has lost its last digits."""


@dataclass
class Sheet:
    header_row: int  # the spreadsheet's row number of the header
    headers: list[str]
    # (the spreadsheet's row number, cells as text), blank rows left out; read once, as the file is parsed,
    # so a 100,000-row sheet never exists as Python cells all at once
    rows: Iterator[tuple[int, list[str]]]


def file_kind(filename: str) -> str:
    lowered = filename.lower()
    for kind in ("xlsx", "csv"):
        if lowered.endswith("." + kind):
            return kind
    raise Invalid("只能导入 .xlsx 或 .csv 文件")


def read_sheet(data: bytes, kind: str) -> Sheet:
    """The first worksheet (xlsx) or the file (csv) as text cells. Invalid when it cannot be read."""
    grid = _xlsx_rows(data) if kind == "xlsx" else _csv_rows(data)
    head = list(itertools.islice(grid, HEADER_SEARCH_ROWS))
    header_at = _find_header(head)
    headers = list(head[header_at]) if head else []

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, cells in enumerate(itertools.chain(head, grid), start=1):
            if number > header_at + 1 and any(cells):  # cells are stripped already
                yield number, cells

    return Sheet(header_at + 1, headers, rows())


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        if not book.sheet_names:
            raise Invalid("Excel 文件里没有工作表")
        sheet = book.get_sheet_by_index(0)
    except (CalamineError, ValueError, OSError) as exc:  # not a workbook, a damaged one, a password
        if isinstance(exc, Invalid):
            raise
        raise Invalid("读不了这个 Excel 文件（请另存为 .xlsx 后再试）") from exc
    # iter_rows counts rows from the sheet's first row but columns from its first used one: pad them, so a
    # column's index is its place in the sheet whatever is left empty to its left
    pad = [""] * sheet.start[1] if sheet.start else []
    return ([*pad, *(v.strip() if type(v) is str else _cell_text(v) for v in row)] for row in sheet.iter_rows())


def _cell_text(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        if value.is_integer():
            text = str(int(value))
            return Lossy(text) if abs(value) >= 1e15 else text
        return repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _csv_rows(data: bytes) -> Iterator[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):  # gb18030 reads every GBK file, as Excel in China saves CSV
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise Invalid("CSV 文件的编码无法识别（请保存为 UTF-8 或 GBK）")
    try:  # read whole here: a malformed file is refused before any row is checked
        return iter([[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text, newline=""))])
    except csv.Error as exc:
        raise Invalid(f"CSV 文件格式不对：{exc}") from exc


def _find_header(grid: list[list[str]]) -> int:
    for index, cells in enumerate(grid[:HEADER_SEARCH_ROWS]):
        if len(auto_mapping(cells)) >= 2:
            return index
    return 0


# ---- mapping columns ----------------------------------------------------------------------------

_NOTE = re.compile(r"[（(][^）)]*[）)]|[\s*＊:：]")


def normalize_header(header: str) -> str:
    """"身份证号码（18位）*" → "身份证号码"; "县（区）" keeps its sense as "县"."""
    return _NOTE.sub("", header or "")


def auto_mapping(headers: list[str]) -> dict[str, int]:
    """field → column index, from the header texts: exact names first, then a header containing a keyword."""
    found: dict[str, int] = {}
    taken: set[int] = set()
    names = [normalize_header(h) for h in headers]
    for name, column in COLUMNS.items():
        for index, header in enumerate(names):
            if index not in taken and header in column.headers:
                found[name], _ = index, taken.add(index)
                break
    for name, column in COLUMNS.items():
        if name in found:
            continue
        for index, header in enumerate(names):
            if index not in taken and header and any(word in header for word in column.contains):
                found[name], _ = index, taken.add(index)
                break
    return found


def header_key(headers: list[str]) -> str:
    """What identifies a template: its headers, in order, as normalized."""
    return hashlib.sha256("\x1f".join(normalize_header(h) for h in headers).encode()).hexdigest()


def mapping_for(session: Session, headers: list[str]) -> tuple[dict[str, int], bool]:
    """The mapping remembered for these headers, else the automatic one; and whether it was remembered."""
    saved = session.scalar(select(RosterTemplate).where(RosterTemplate.header_key == header_key(headers)))
    if saved is not None:
        return clean_mapping(saved.mapping, len(headers)), True
    return auto_mapping(headers), False


def clean_mapping(raw: dict[str, Any], width: int) -> dict[str, int]:
    """A mapping as stored or sent: known fields, columns that exist, each column used once."""
    mapping: dict[str, int] = {}
    for name, index in raw.items():
        if name in COLUMNS and isinstance(index, int) and not isinstance(index, bool) and 0 <= index < width \
                and index not in mapping.values():
            mapping[name] = index
    return mapping


def remember_mapping(session: Session, actor: Actor, headers: list[str], mapping: dict[str, int]) -> None:
    key = header_key(headers)
    saved = session.scalar(select(RosterTemplate).where(RosterTemplate.header_key == key))
    if saved is None:
        saved = RosterTemplate(header_key=key, headers=list(headers))
        session.add(saved)
    saved.mapping, saved.updated_by = dict(mapping), actor.username
    session.flush()


# ---- places ---------------------------------------------------------------------------------------


class Places:
    """The counties, townships and villages of regions.yaml, by name or alias."""

    def __init__(self, regions: dict[str, Any]) -> None:
        self.counties: dict[str, str] = {}
        self.townships: dict[str, dict[str, str]] = {}  # county → name or alias → township
        self.villages: dict[tuple[str, str], set[str]] = {}
        self.township_counties: dict[str, set[str]] = {}
        for county in regions.get("counties") or ():
            cname = county["name"]
            for alias in (cname, *(county.get("aliases") or ())):
                self.counties.setdefault(alias, cname)
            towns = self.townships.setdefault(cname, {})
            for town in county.get("townships") or ():
                tname = town["name"]
                for alias in (tname, *(town.get("aliases") or ())):
                    towns.setdefault(alias, tname)
                    self.township_counties.setdefault(alias, set()).add(cname)
                self.villages[(cname, tname)] = set(town.get("villages") or ())

    def resolve(self, county: str, township: str, village: str) -> tuple[tuple[str, str, str], list[tuple[str, str]]]:
        """Canonical (county, township, village) and the problems found, as (field, problem)."""
        problems: list[tuple[str, str]] = []
        found_county = self.counties.get(county) if county else None
        if county and found_county is None:
            problems.append(("county", f"没有这个区县：{county}"))
        if not county and township and len(self.township_counties.get(township, ())) == 1:
            found_county = next(iter(self.township_counties[township]))  # a township names its county
        found_town = None
        if found_county and township:
            found_town = self.townships[found_county].get(township)
            if found_town is None:
                problems.append(("township", f"{found_county}没有这个乡镇：{township}"))
        found_village = None
        if found_county and found_town and village:
            known = self.villages[(found_county, found_town)]
            found_village = village if village in known else (village + "村" if village + "村" in known else None)
            if found_village is None:
                problems.append(("village", f"{found_town}没有这个村：{village}"))
        return (found_county or county, found_town or township, found_village or village), problems


# ---- validating -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    number: int
    values: dict[str, Any]
    problems: list[tuple[str, str]] = field(default_factory=list)
    id_hash: str | None = None
    labourer_id: int | None = None  # already registered: will be updated
    current: tuple[Any, ...] | None = None  # that labourer's _COMPARED values as registered now (the report: the place)


@dataclass
class Validation:
    """What checking a file found: counts, the problems, and the valid rows as checked (compressed JSON lines,
    see _pack_rows). Rows are checked in batches and not kept, so a large file's rows never all exist as
    Python objects at once."""

    rows: int = 0
    valid: int = 0
    to_update: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    packed: bytes = b""

    def counts(self) -> dict[str, int]:
        return {"rows": self.rows, "valid": self.valid, "to_create": self.valid - self.to_update,
                "to_update": self.to_update}


def _choice(value: str, table: dict[str, tuple[str, ...]]) -> str | None:
    folded = value.lower()
    for key, words in table.items():
        if folded in words:
            return key
    return None


def _parse_row(number: int, cells: list[str], mapping: dict[str, int], places: Places,
               defaults: dict[str, str]) -> Row:
    # Cells come stripped from read_sheet. This runs once per row of files of 100,000 rows: the common case
    # (no control character, a field that is there) costs one look each.
    width = len(cells)
    raw = {name: (cells[index] if index < width else "") for name, index in mapping.items()}
    row = Row(number, {})
    problems = row.problems
    values = row.values
    if has_control_chars("".join(raw.values())):
        for name, value in raw.items():
            if has_control_chars(value):
                problems.append((name, "含有无法显示的控制字符"))
                raw[name] = ""
    for name in AREA_FIELDS:
        if not raw.get(name) and defaults.get(name):
            raw[name] = defaults[name]
    for name in REQUIRED:
        if not raw.get(name):
            problems.append((name, f"必填项“{COLUMNS[name].label}”为空"))

    name = raw.get("name", "")
    if len(name) > 32:
        problems.append(("name", "姓名超过32个字"))
    values["name"] = name

    id_text = raw.get("id_number", "")
    if isinstance(id_text, Lossy):
        problems.append(("id_number", "身份证号被 Excel 存成了数字，后几位已丢失（请把这一列设为文本后重填）"))
    elif id_text:
        try:
            values["id_number"] = pii.normalize_id_number(id_text)
        except pii.InvalidPersonalData as exc:
            problems.append(("id_number", str(exc)))

    phone = raw.get("phone", "")
    if phone:
        try:
            values["phone"] = pii.normalize_phone(phone)
        except pii.InvalidPersonalData as exc:
            problems.append(("phone", str(exc)))

    (values["county"], values["township"], values["village"]), place_problems = places.resolve(
        raw.get("county", ""), raw.get("township", ""), raw.get("village", ""))
    problems.extend(place_problems)

    for name, table, hint in _CHOICES:
        value = raw.get(name)
        if value:
            chosen = _choice(value, table)
            if chosen is None:
                problems.append((name, f"{COLUMNS[name].label}看不懂：{value}（{hint}）"))
            values[name] = chosen
    for name in ("wants_startup", "public_welfare_post"):
        if name in raw:
            value = raw[name].lower()
            if value in YES:
                values[name] = True
            elif value in NO:
                values[name] = False if value else None
            else:
                problems.append((name, f"{COLUMNS[name].label}请填“是”或“否”：{raw[name]}"))
    return row


_CHOICES = (("household_status", HOUSEHOLD, "填“贫困户”或“一般户”"),
            ("employment_status", EMPLOYMENT, "填“未就业”“本地就业”“外出务工”或“自主创业”"),
            ("employment_channel", CHANNELS, "填本地企业、公益性岗位、扶贫车间、灵活就业或劳务输出"))


def validate_rows(session: Session, sheet: Sheet, mapping: dict[str, int], *, actor: Actor,
                  regions: dict[str, Any], data_key: str) -> Validation:
    """Every row checked: fields, places, duplicates in the file, the actor's area, who is registered already.
    Consumes `sheet.rows`."""
    places = Places(regions)
    areas = visible_areas(actor)
    defaults = areas[0].as_dict() if areas and len(areas) == 1 else {}
    checked = Validation()
    packer = zlib.compressobj(1)
    packed: list[bytes] = [packer.compress(PACKED_HEADER)]
    first_seen: dict[str, int] = {}  # ID number → the row it was first seen on
    batch: list[Row] = []

    def settle() -> None:
        check_registry(session, batch, actor, compare=False)
        for row in batch:
            if row.problems:
                if len(checked.errors) < MAX_ERRORS_KEPT:
                    checked.errors.extend({"row": row.number, "field": f, "problem": p} for f, p in row.problems)
                continue
            checked.valid += 1
            checked.to_update += row.labourer_id is not None
        good = [[row.number, row.values] for row in batch if not row.problems]
        if good:  # one JSON line a batch (json's C encoder takes the whole list in one call)
            packed.append(packer.compress(json.dumps(good, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"))
        batch.clear()

    for number, cells in sheet.rows:
        row = _parse_row(number, cells, mapping, places, defaults)
        checked.rows += 1
        batch.append(row)
        id_number = row.values.get("id_number")
        if id_number is not None:
            row.id_hash = pii.lookup_hash(id_number, data_key)
            if id_number in first_seen:
                row.problems.append(("id_number", f"与第{first_seen[id_number]}行的身份证号重复"))
            else:
                first_seen[id_number] = row.number
        if len(batch) >= CHECK_BATCH:
            settle()
    settle()
    packed.append(packer.flush())
    checked.errors = checked.errors[:MAX_ERRORS_KEPT]
    checked.packed = b"".join(packed)
    return checked


PACKED_HEADER = b"rows/2\n"  # then a JSON array of [row number, values] a line, a line per batch checked


def check_registry(session: Session, rows: list[Row], actor: Actor, *, compare: bool = True) -> None:
    """The checks that depend on who imports and on the registry as it is now (done again at commit): the
    row's place inside the actor's area, and the person registered already (updated) or elsewhere.
    `compare`: also read what the commit compares (`row.current`); the report needs only the place."""
    for row in rows:
        v = row.values
        if not row.problems and not covers(actor, v["county"], v["township"], v["village"]):
            row.problems.append(("village", f"{v['county']}{v['township']}{v['village']}不在您的管辖范围内"))
    known = _registered(session, [r.id_hash for r in rows if r.id_hash and not r.problems],
                        _COMPARED if compare else AREA_FIELDS)
    for row in rows:
        row.labourer_id = row.current = None
        if row.problems or row.id_hash not in known:
            continue
        labourer_id, county, township, village, *current = known[row.id_hash]
        if not covers(actor, county, township, village):
            # The person is registered in another area: moving them is for someone who sees both.
            row.problems.append(("id_number", "此人已在您管辖范围以外的地区登记，请联系上级核实"))
        else:
            row.labourer_id, row.current = labourer_id, (county, township, village, *current)


# What an update compares with the labourer as registered (the ID number itself matched by its hash).
_COMPARED = ("county", "township", "village", "name", "verified", "gender", "birth_date", "phone_hash",
             "household_status", "employment_status", "employment_channel", "wants_startup", "public_welfare_post")


def _registered(session: Session, hashes: list[str], names: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """ID number hash → (labourer id, *names) of those registered (names: _COMPARED, or its first three)."""
    found: dict[str, tuple[Any, ...]] = {}
    columns = [Labourer.__table__.c[name] for name in names]
    query = select(Labourer.id_number_hash, Labourer.id, *columns)
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter for the whole batch (one round trip, one plan), planned for this array each
        # time: psycopg prepares a statement run five times, and PostgreSQL keeps the generic plan it made
        # while the table was small (a first import grows it from nothing): a sequential scan comparing
        # every row with every hash, a second per batch at 100,000 labourers. LOCAL: this transaction only.
        transaction = session.get_transaction()
        if session.info.get("custom_plans") is not transaction:  # once a transaction (a report's has 50 batches)
            session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
            session.info["custom_plans"] = transaction
        query = query.where(Labourer.id_number_hash == any_(bindparam("hashes", type_=ARRAY(String))))
        for digest, *rest in session.execute(query, {"hashes": hashes}) if hashes else ():
            found[digest] = tuple(rest)
        return found
    for start in range(0, len(hashes), 1000):  # SQLite: an IN list (its limit of parameters is lower)
        chunk = hashes[start:start + 1000]
        for digest, *rest in session.execute(query.where(Labourer.id_number_hash.in_(chunk))):
            found[digest] = tuple(rest)
    return found


# ---- the import record ----------------------------------------------------------------------------


def _protect_file(data: bytes, data_key: str) -> bytes:
    return pii.encrypt(base64.b64encode(data).decode(), data_key)


def _file_bytes(upload: RosterImport, data_key: str) -> bytes:
    if upload.kept is None:
        raise Conflict("这次导入的文件已不再保存（导入完成后即删除）")
    return base64.b64decode(pii.decrypt(upload.kept.file_enc, data_key))


def validate_upload(session: Session, actor: Actor, *, filename: str, data: bytes, regions: dict[str, Any],
                    data_key: str) -> RosterImport:
    """Read and check a roster file; record the import (counts and problems) and audit the upload.
    Writes no labourer."""
    kind = file_kind(filename)
    sheet = read_sheet(data, kind)
    if not sheet.headers or not any(sheet.headers):
        raise Invalid("文件是空的：第一行应为表头（姓名、身份证号……）")
    mapping, _remembered = mapping_for(session, sheet.headers)
    checked = validate_rows(session, sheet, mapping, actor=actor, regions=regions, data_key=data_key)
    areas = visible_areas(actor)
    owner = areas[0] if areas and len(areas) == 1 else None
    upload = RosterImport(
        staff_id=actor.id, staff_name=actor.username, owner_county=owner and owner.county,
        owner_township=owner and owner.township, owner_village=owner and owner.village,
        filename=_safe_filename(filename), file_kind=kind, file_sha256=hashlib.sha256(data).hexdigest(),
        kept=RosterImportFile(file_enc=_protect_file(data, data_key)),
        header_row=sheet.header_row, headers=sheet.headers, mapping=mapping,
    )
    _store_report(upload, checked, data_key)
    session.add(upload)
    session.flush()
    audit(session, actor, "roster_upload", object_type="roster_import", object_id=upload.id,
          detail={"file": upload.filename, **checked.counts(), "errors": len(upload.errors)})
    return upload


def _store_report(upload: RosterImport, checked: Validation, data_key: str) -> None:
    counts = checked.counts()
    upload.rows, upload.valid = counts["rows"], counts["valid"]
    upload.to_create, upload.to_update = counts["to_create"], counts["to_update"]
    upload.errors = checked.errors
    assert upload.kept is not None
    # The valid rows as checked (normalized values), encrypted: the commit writes these without reading
    # and checking the file's fields again.
    upload.kept.rows_enc = pii.encrypt(base64.b64encode(checked.packed).decode(), data_key)


def _valid_rows(upload: RosterImport, data_key: str, size: int) -> Iterator[list[Row]]:
    """The rows the report found valid, `size` at a time, unpacked as they are read (the stored report is
    read at once, while `upload` is in its session)."""
    if upload.kept is None or upload.kept.rows_enc is None:
        raise Conflict("这次导入的检查结果已不再保存，请重新上传")
    packed = base64.b64decode(pii.decrypt(upload.kept.rows_enc, data_key))
    step = 1 << 16

    def rows() -> Iterator[Row]:
        unpacker = zlib.decompressobj()
        rest = unpacker.decompress(packed[:step])
        if not rest.startswith(PACKED_HEADER):  # a report stored before rows were packed by batch: one array
            for number, values in json.loads(rest + unpacker.decompress(packed[step:]) + unpacker.flush()):
                yield Row(number, values, id_hash=pii.lookup_hash(values["id_number"], data_key))
            return
        rest = rest[len(PACKED_HEADER):]
        for start in range(step, len(packed) + step, step):
            rest += unpacker.decompress(packed[start:start + step]) if start < len(packed) else unpacker.flush()
            *lines, rest = rest.split(b"\n")
            for line in lines:
                for number, values in json.loads(line):
                    yield Row(number, values, id_hash=pii.lookup_hash(values["id_number"], data_key))

    def chunks() -> Iterator[list[Row]]:
        stream = rows()
        while chunk := list(itertools.islice(stream, size)):
            yield chunk

    return chunks()


def _safe_filename(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join("?" if has_control_chars(ch) else ch for ch in name)[:255] or "roster"


def _sees(actor: Actor, upload: RosterImport) -> bool:
    return (upload.staff_id is not None and upload.staff_id == actor.id) or \
        covers(actor, upload.owner_county, upload.owner_township, upload.owner_village)


def get_import(session: Session, import_id: int, actor: Actor) -> RosterImport:
    """An import its uploader, staff whose area covers the uploader's, or an admin may see; NotFound for
    anyone else, as for one that does not exist."""
    upload = session.get(RosterImport, import_id)
    if upload is None or not _sees(actor, upload):
        raise NotFound("no such roster import")
    return upload


def list_imports(session: Session, actor: Actor, *, limit: int = 20) -> list[RosterImport]:
    recent = session.scalars(select(RosterImport).order_by(RosterImport.id.desc()).limit(limit * 10))
    return [upload for upload in recent if _sees(actor, upload)][:limit]


def remap_import(session: Session, actor: Actor, upload: RosterImport, mapping: dict[str, Any], *,
                 regions: dict[str, Any], data_key: str) -> RosterImport:
    """Validate the file again with a corrected column mapping, and remember it for this template."""
    if upload.status not in ("validated", "failed"):
        raise Conflict("这次导入已经开始写入，不能再改列")
    chosen = clean_mapping(mapping, len(upload.headers))
    sheet = read_sheet(_file_bytes(upload, data_key), upload.file_kind)
    checked = validate_rows(session, sheet, chosen, actor=actor, regions=regions, data_key=data_key)
    upload.mapping = chosen
    _store_report(upload, checked, data_key)
    remember_mapping(session, actor, upload.headers, chosen)
    session.flush()
    return upload


# ---- committing -----------------------------------------------------------------------------------


def _claim(session: Session, upload: RosterImport) -> bool:
    """Move the import to committing, unless another worker holds it; False when it is committed already."""
    if upload.status == "committed":
        return False
    if upload.status == "committing" and upload.updated_at > utcnow() - STALE_COMMIT:
        raise Conflict("这次导入正在写入，请稍候")
    conditions = [RosterImport.id == upload.id, RosterImport.status == upload.status]
    if upload.status == "committing":
        conditions.append(RosterImport.updated_at < utcnow() - STALE_COMMIT)
    claimed = session.execute(
        update(RosterImport).where(*conditions)
        .values(status="committing", progress=0, failure=None, updated_at=utcnow())
    ).rowcount
    if not claimed:
        raise Conflict("这次导入正在写入，请稍候")
    return True


# A new labourer gets every column a roster row can give …
_INSERT_COLUMNS = ("name", "county", "township", "village", "verified", "updated_at", "id_number_enc",
                   "id_number_hash", "id_number_masked", "gender", "birth_date", "phone_enc", "phone_hash",
                   "phone_masked", "household_status", "employment_status", "employment_channel", "wants_startup",
                   "public_welfare_post", "source", "subscribed_wechat", "subscribed_sms", "created_at")
# … a known one (matched by the ID number's hash, so the number's own columns stay as they are) these …
_SET = ("name", "county", "township", "village", "verified", "updated_at", "gender", "birth_date")
# … and these when the row says (None: the row leaves it empty, the labourer keeps theirs).
_OPTIONAL = ("phone_enc", "phone_hash", "phone_masked", "household_status", "employment_status",
             "employment_channel", "wants_startup", "public_welfare_post")
_UPDATE_COLUMNS = ("id", *_SET, *_OPTIONAL)
SQLITE_IMPORT_CACHE_KIB = 65_536  # the page cache while a chunk is written: the hash indexes are written at random


@dataclass(frozen=True)
class _Stored:
    """How one database takes a date and a time through the driver, computed once per chunk (sqlite3 gets
    SQLAlchemy's own text form; psycopg the Python values)."""

    now: Any
    date: Callable[[date], Any]

    @classmethod
    def of(cls, dialect: Any, now: datetime) -> _Stored:
        if dialect.name == "sqlite":
            # the dialect's own processor (the type's alone gives back a datetime, which sqlite3 then adapts
            # per row: 200,000 calls a 100,000-row import, in a form without the microseconds when they are 0)
            stamp = Labourer.__table__.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
            return cls(stamp(now) if stamp else now, date.isoformat)
        return cls(now, lambda day: day)


def _born(id_number: str) -> date:
    # checked when the row was read; stdnum's own reading costs more than the slicing
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def _new_labourers(rows: list[Row], data_key: str, stored: _Stored) -> list[tuple[Any, ...]]:
    """The rows of new labourers, as _INSERT_COLUMNS, with the model's defaults where the row says nothing."""
    ids = pii.encrypt_many([r.values["id_number"] for r in rows], data_key)
    phones = iter(pii.encrypt_many([r.values["phone"] for r in rows if r.values.get("phone")], data_key))
    out = []
    for row, id_enc in zip(rows, ids, strict=True):
        v = row.values
        id_number, phone = v["id_number"], v.get("phone")  # normalized when the row was checked
        out.append((
            v["name"], v["county"], v["township"], v["village"], True, stored.now, id_enc, row.id_hash,
            pii.mask_id_number(id_number), pii.id_gender(id_number), stored.date(_born(id_number)),
            next(phones) if phone else None, pii.lookup_hash(phone, data_key) if phone else None,
            pii.mask_phone(phone) if phone else None, v.get("household_status") or "general",
            v.get("employment_status") or "unknown", v.get("employment_channel"), bool(v.get("wants_startup")),
            bool(v.get("public_welfare_post")), "roster", True, True, stored.now,
        ))
    return out


def _changed_labourers(rows: list[Row], data_key: str, stored: _Stored) -> list[tuple[Any, ...]]:
    """The rows of known labourers that change anything, as _UPDATE_COLUMNS: a person imported again as they
    are is not written (nor their phone encrypted again)."""
    changes = []
    for row in rows:
        v = row.values
        id_number, phone = v["id_number"], v.get("phone")
        phone_hash = pii.lookup_hash(phone, data_key) if phone else None
        compared = (v["county"], v["township"], v["village"], v["name"], True, pii.id_gender(id_number),
                    _born(id_number), phone_hash, v.get("household_status"), v.get("employment_status"),
                    v.get("employment_channel"), v.get("wants_startup"), v.get("public_welfare_post"))
        assert row.current is not None
        if all(new is None or new == old for new, old in zip(compared, row.current, strict=True)) \
                and all(compared[i] == row.current[i] for i in range(7)):  # the always-set columns
            continue
        new_phone = phone is not None and phone_hash != row.current[_COMPARED.index("phone_hash")]
        changes.append((row, phone if new_phone else None, phone_hash if new_phone else None, compared))
    encrypted = iter(pii.encrypt_many([phone for _row, phone, _h, _c in changes if phone], data_key))
    return [(row.labourer_id, *compared[3:4], *compared[:3], True, stored.now, compared[5], stored.date(compared[6]),
             next(encrypted) if phone else None, phone_hash, pii.mask_phone(phone) if phone else None, *compared[8:])
            for row, phone, phone_hash, compared in changes]


def _write_chunk(session: Session, rows: list[Row], data_key: str) -> tuple[int, int]:
    """Insert the new labourers and update the known ones (by id) in the session's transaction: COPY on
    PostgreSQL, one executemany per statement on SQLite (the ORM's and Core's per-row parameter processing
    cost more than the writing itself at 100,000 rows). (created, updated: every known one, changed or not)"""
    connection = session.connection()
    stored = _Stored.of(connection.dialect, utcnow())
    new = _new_labourers([r for r in rows if r.labourer_id is None], data_key, stored)
    known = [r for r in rows if r.labourer_id is not None]
    changed = _changed_labourers(known, data_key, stored)
    assign = ", ".join(f"{c} = {{new}}.{c}" for c in _SET) + ", " + \
        ", ".join(f"{c} = COALESCE({{new}}.{c}, labourer.{c})" for c in _OPTIONAL)
    if connection.dialect.name == "postgresql":
        with connection.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            # Binary COPY: the server parses no text (the encrypted values no hex) and the driver writes none;
            # its types are the columns' own, as the server has them
            cursor.execute("SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = 'labourer'::regclass "
                           "AND attnum > 0 AND NOT attisdropped")
            types = dict(cursor.fetchall())
            if new:
                with cursor.copy(f"COPY labourer ({', '.join(_INSERT_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types([types[c] for c in _INSERT_COLUMNS])
                    for values in new:
                        copy.write_row(values)
            if changed:
                cursor.execute(f"CREATE TEMPORARY TABLE roster_update ON COMMIT DROP AS "
                               f"SELECT {', '.join(_UPDATE_COLUMNS)} FROM labourer WITH NO DATA")
                with cursor.copy(f"COPY roster_update ({', '.join(_UPDATE_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types([types[c] for c in _UPDATE_COLUMNS])
                    for values in changed:
                        copy.write_row(values)
                cursor.execute(f"UPDATE labourer SET {assign.format(new='u')} FROM roster_update AS u "
                               "WHERE labourer.id = u.id")
        return len(new), len(known)
    (cache,) = connection.exec_driver_sql("PRAGMA cache_size").one()
    connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}")
    try:
        if new:
            marks = ", ".join("?" for _ in _INSERT_COLUMNS)
            connection.exec_driver_sql(f"INSERT INTO labourer ({', '.join(_INSERT_COLUMNS)}) VALUES ({marks})", new)
        if changed:
            sets = ", ".join(f"{c} = ?" for c in _SET) + ", " + \
                ", ".join(f"{c} = COALESCE(?, {c})" for c in _OPTIONAL)
            connection.exec_driver_sql(f"UPDATE labourer SET {sets} WHERE id = ?", [(*v[1:], v[0]) for v in changed])
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {int(cache)}")
    return len(new), len(known)


def _fast_chunk_commit(session: Session) -> None:
    """A chunk's transaction does not wait for its WAL to reach the disk (PostgreSQL; LOCAL: this transaction
    only, never the server's setting). A crash may lose the last chunks written, with their progress in the
    same transaction: the import is then a stale commit, taken up again and written idempotently (by ID
    number). The transaction that marks the import committed, and audits it, waits as usual."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def commit_import(factory: sessionmaker[Session], import_id: int, actor: Actor, *, data_key: str,
                  on_chunk: Callable[[int], None] | None = None) -> dict[str, int]:
    """Write the valid rows of an import: {"created", "updated", "skipped"}. The rows are those the report
    found valid, checked again against the committer's area and the registry as it is now, a chunk at a time,
    each chunk in one transaction. Committing an import a second time answers the first commit's counts and
    writes nothing."""
    with session_scope(factory) as session:
        upload = get_import(session, import_id, actor)
        if not _claim(session, upload):
            return {"created": upload.created or 0, "updated": upload.updated or 0, "skipped": upload.skipped or 0}
        chunks, total = _valid_rows(upload, data_key, CHUNK), upload.rows
    late: list[dict[str, Any]] = []  # rows valid in the report but not any more (another import, another committer)
    created = updated = done = 0
    try:
        for rows in chunks:
            with session_scope(factory) as session:
                _fast_chunk_commit(session)
                check_registry(session, rows, actor)
                late.extend({"row": r.number, "field": f, "problem": p} for r in rows for f, p in r.problems)
                chunk = [r for r in rows if not r.problems]
                made, changed = _write_chunk(session, chunk, data_key)
                created, updated, done = created + made, updated + changed, done + len(chunk)
                session.execute(update(RosterImport).where(RosterImport.id == import_id)
                                .values(progress=done, updated_at=utcnow()))
            if on_chunk is not None:
                on_chunk(done)
    except Exception as exc:
        with session_scope(factory) as session:
            session.execute(update(RosterImport).where(RosterImport.id == import_id)
                            .values(status="failed", failure=f"{type(exc).__name__}"[:255], updated_at=utcnow()))
        raise
    counts = {"created": created, "updated": updated, "skipped": total - done}
    with session_scope(factory) as session:
        upload = session.get(RosterImport, import_id)
        assert upload is not None
        if late:
            upload.errors = sorted([*upload.errors, *late], key=lambda e: e["row"])[:MAX_ERRORS_KEPT]
        upload.valid, upload.to_create, upload.to_update = done, created, updated
        upload.status, upload.committed_at, upload.kept = "committed", utcnow(), None
        upload.created, upload.updated, upload.skipped = counts["created"], counts["updated"], counts["skipped"]
        upload.progress = done
        audit(session, actor, "roster_import", object_type="roster_import", object_id=import_id,
              detail={"file": upload.filename, "rows": total, **counts})
    return counts


# ---- the error file ------------------------------------------------------------------------------


def error_workbook(upload: RosterImport, data_key: str) -> bytes:
    """The rows with problems as an Excel file: the original cells as typed (while the file is kept), and a
    last column saying what is wrong, so the official can fix them and import the file again."""
    from openpyxl import Workbook

    by_row: dict[int, list[str]] = {}
    for error in upload.errors:
        label = COLUMNS[error["field"]].label if error["field"] in COLUMNS else error["field"]
        by_row.setdefault(error["row"], []).append(f"{label}：{error['problem']}")
    cells: dict[int, list[str]] = {}
    if upload.kept is not None:
        sheet = read_sheet(_file_bytes(upload, data_key), upload.file_kind)
        cells = {number: row for number, row in sheet.rows if number in by_row}
    book = Workbook(write_only=True)
    out = book.create_sheet("有问题的行")
    out.append(["原表行号", *upload.headers, "问题"])
    width = len(upload.headers)
    for number in sorted(by_row):
        row = list(cells.get(number, []))[:width]
        out.append([number, *row, *([""] * (width - len(row))), "；".join(by_row[number])])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
