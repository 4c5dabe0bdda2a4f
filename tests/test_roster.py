"""Roster import over the API (POST /api/admin/roster/imports, …/commit) and the CLI: a report of every bad
row before anything is written, then the valid rows written once, updated (never doubled) on re-import,
only inside the importer's area, recorded and audited."""

from __future__ import annotations

import subprocess
import sys
from io import BytesIO

import pytest
from sqlalchemy import func, select

from bot.models import AuditLog, Labourer, RosterImport, RosterImportFile
from bot import pii

from roster_support import HEADERS, bad_checksum, csv_bytes, id_number, person, xlsx
from test_dialog_support import db, rows

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def upload(client, auth, data: bytes, name: str = "长沙村花名册.xlsx"):
    return client.post("/api/admin/roster/imports", files={"file": (name, data, XLSX)}, headers=auth)


def labourers(app) -> list[Labourer]:
    return rows(app, Labourer)


def problems(report) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for error in report["errors"]:
        assert set(error) == {"row", "field", "problem"}
        found.setdefault(error["row"], {})[error["field"]] = error["problem"]
    return found


def test_a_roster_with_bad_rows_is_reported_row_by_row_and_nothing_is_written(client, app, admin_auth):
    good = person(1, "张大山", phone="13912344567")
    rows_in = [
        good,
        [2, "李秀英", bad_checksum(id_number(2)), "", "平昌县", "白衣镇", "长沙村", "否"],
        [3, "王小明", id_number(3, birth="19801340"), "", "平昌县", "白衣镇", "长沙村", "是"],  # 13th month
        [4, "赵四", id_number(4), "12345", "平昌县", "白衣镇", "长沙村", "是"],
        [5, "钱五", id_number(1), "", "平昌县", "白衣镇", "长沙村", "是"],  # the same person as row 2
        [6, "孙六", id_number(6), "", "平昌县", "白衣镇", "桃花村", "是"],
        [7, "", id_number(7), "", "平昌县", "白衣镇", "长沙村", "是"],
        [8, "周八", id_number(8), "", "平昌县", "不存在镇", "长沙村", "是"],
        [9, "吴九", id_number(9), "", "没有县", "白衣镇", "长沙村", "是"],
        [],  # a blank row is not a row
        person(10, "郑十"),
    ]
    response = upload(client, admin_auth, xlsx(rows_in))
    assert response.status_code == 201, response.text
    report = response.json()
    assert set(report) == {"id", "rows", "valid", "to_create", "to_update", "errors"}
    assert (report["rows"], report["valid"], report["to_create"], report["to_update"]) == (10, 2, 2, 0)
    found = problems(report)
    # Row numbers are the spreadsheet's own: the header is row 1, the first person row 2.
    assert set(found) == {3, 4, 5, 6, 7, 8, 9, 10}
    assert "校验" in found[3]["id_number"]
    assert "出生日期" in found[4]["id_number"]
    assert "手机号" in found[5]["phone"]
    assert "第2行" in found[6]["id_number"]
    assert "桃花村" in found[7]["village"]
    assert "姓名" in found[8]["name"]
    assert "不存在镇" in found[9]["township"]
    assert "没有县" in found[10]["county"]
    assert labourers(app) == []  # the report writes nobody

    committed = client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=admin_auth)
    assert committed.status_code == 200, committed.text
    assert committed.json() == {"created": 2, "updated": 0, "skipped": 8}
    people = {p.name: p for p in labourers(app)}
    assert set(people) == {"张大山", "郑十"}
    zhang = people["张大山"]
    assert zhang.phone_masked == "139****4567" and zhang.household_status == "registered_poor"
    assert zhang.id_number_masked == pii.mask_id_number(id_number(1))
    assert pii.decrypt(zhang.id_number_enc, app.state.settings.data_key) == id_number(1)
    assert zhang.birth_date.isoformat() == "1980-01-01" and zhang.source == "roster"
    assert (zhang.county, zhang.township, zhang.village) == ("平昌县", "白衣镇", "长沙村")

    with db(app) as session:
        recorded = session.get(RosterImport, report["id"])
        assert recorded.staff_name == "test-admin" and recorded.filename == "长沙村花名册.xlsx"
        assert (recorded.status, recorded.created, recorded.updated, recorded.skipped) == ("committed", 2, 0, 8)
        assert recorded.kept is None  # the file with ID numbers is not kept after the commit
        actions = session.scalars(select(AuditLog.action).where(AuditLog.object_type == "roster_import")).all()
    assert sorted(actions) == ["roster_import", "roster_upload"]


def test_reimporting_updates_by_id_number_and_never_doubles_anyone(client, app, admin_auth):
    first = upload(client, admin_auth, xlsx([person(1, "张大山"), person(2, "李秀英")])).json()
    assert client.post(f"/api/admin/roster/imports/{first['id']}/commit", headers=admin_auth).json() == \
        {"created": 2, "updated": 0, "skipped": 0}
    # Committing the same import again writes nothing more and answers the same counts.
    assert client.post(f"/api/admin/roster/imports/{first['id']}/commit", headers=admin_auth).json() == \
        {"created": 2, "updated": 0, "skipped": 0}

    again = [person(1, "张大山", phone="13812345678", village="凤凰村", poor="否"), person(3, "王小明")]
    second = upload(client, admin_auth, csv_bytes(again, encoding="gbk"), name="白衣镇.csv").json()
    assert (second["rows"], second["valid"], second["to_create"], second["to_update"]) == (2, 2, 1, 1)
    assert second["errors"] == []
    assert client.post(f"/api/admin/roster/imports/{second['id']}/commit", headers=admin_auth).json() == \
        {"created": 1, "updated": 1, "skipped": 0}
    people = {p.name: p for p in labourers(app)}
    assert len(labourers(app)) == 3
    zhang = people["张大山"]
    assert zhang.village == "凤凰村" and zhang.phone_masked == "138****5678" and zhang.household_status == "general"


def test_an_official_imports_only_inside_their_area(client, app, make_staff):
    official = make_staff("bai-official", "official", [{"county": "平昌县", "township": "白衣镇"}])
    outside = person(2, "外镇人", township="江口镇", village="茶园村")
    report = upload(client, official, xlsx([person(1, "本镇人"), outside])).json()
    assert (report["rows"], report["valid"]) == (2, 1)
    assert "管辖范围" in problems(report)[3]["village"]

    # Someone already registered in another township is not moved by this official's file.
    other = make_staff("jk-official", "official", [{"county": "平昌县", "township": "江口镇"}])
    theirs = upload(client, other, xlsx([outside])).json()
    client.post(f"/api/admin/roster/imports/{theirs['id']}/commit", headers=other)
    moved = person(2, "外镇人")  # the same ID number, now said to live in 白衣镇
    report = upload(client, official, xlsx([moved])).json()
    assert report["valid"] == 0 and "管辖范围以外" in problems(report)[2]["id_number"]

    # Another official cannot see, commit or download someone else's import.
    assert client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=other).status_code == 404
    assert client.get(f"/api/admin/roster/imports/{report['id']}", headers=other).status_code == 404


def test_a_village_assistant_s_file_may_leave_out_the_place_columns(client, app, make_staff):
    assistant = make_staff("cs-assistant", "assistant", [{"county": "平昌县", "township": "白衣镇", "village": "长沙村"}])
    data = xlsx([["张大山", id_number(1), "13912344567"]], headers=["姓名", "身份证号", "手机号"],
                title="白衣镇长沙村贫困劳动力花名册")
    report = upload(client, assistant, data).json()
    assert report["errors"] == [] and report["valid"] == 1
    client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=assistant)
    [zhang] = labourers(app)
    assert (zhang.county, zhang.township, zhang.village) == ("平昌县", "白衣镇", "长沙村")


def test_excel_numbers_headers_and_wrong_files(client, app, admin_auth):
    # An ID typed into a number cell has lost its last digits; a phone in a number cell is fine.
    data = xlsx([["张大山", float(id_number(1)[:17] + "1"), 13912344567, "平昌", "白衣", "长沙", "贫困户"]],
                headers=["姓名*", "公民身份号码（18位）", "手机号码", "县（区）", "乡（镇）", "村（社区）", "户类型"])
    report = upload(client, admin_auth, data).json()
    assert set(problems(report)[2]) == {"id_number"} and "文本" in problems(report)[2]["id_number"]

    assert upload(client, admin_auth, b"not a workbook").status_code == 422
    assert upload(client, admin_auth, b"a,b", name="roster.txt").status_code == 422
    assert upload(client, admin_auth, b"", name="empty.csv").status_code == 422
    assert client.post("/api/admin/roster/imports", headers=admin_auth).status_code == 422
    assert labourers(app) == []


def test_the_mapping_can_be_corrected_and_is_remembered_for_the_template(client, app, admin_auth):
    headers = ["名", "证", "电话", "区县", "乡镇", "村"]  # 名 and 证 are not recognised
    data = xlsx([["张大山", id_number(1), "", "平昌县", "白衣镇", "长沙村"]], headers=headers)
    report = upload(client, admin_auth, data).json()
    assert report["valid"] == 0 and {"name", "id_number"} <= set(problems(report)[2])
    detail = client.get(f"/api/admin/roster/imports/{report['id']}", headers=admin_auth).json()
    mapping = {**detail["mapping"], "name": 0, "id_number": 1}
    fixed = client.put(f"/api/admin/roster/imports/{report['id']}/mapping", json={"mapping": mapping},
                       headers=admin_auth).json()
    assert fixed["valid"] == 1 and fixed["errors"] == []
    # The next file with the same headers is read with the corrected mapping straight away.
    later = upload(client, admin_auth, xlsx([["李秀英", id_number(2), "", "平昌县", "白衣镇", "长沙村"]],
                                            headers=headers)).json()
    assert later["valid"] == 1


def test_the_error_file_says_what_is_wrong_and_is_audited(client, app, admin_auth):
    from openpyxl import load_workbook

    report = upload(client, admin_auth, xlsx([person(1), [2, "李秀英", "123", "", "平昌县", "白衣镇", "长沙村", "是"]])).json()
    response = client.get(f"/api/admin/roster/imports/{report['id']}/errors.xlsx", headers=admin_auth)
    assert response.status_code == 200 and response.headers["content-type"].startswith(XLSX)
    sheet = load_workbook(BytesIO(response.content)).active
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0][0] == "原表行号" and table[0][-1] == "问题" and table[0][1:-1] == HEADERS
    assert len(table) == 2 and table[1][0] == 3 and table[1][2] == "李秀英" and "18位" in table[1][-1]
    with db(app) as session:
        assert session.scalar(select(func.count()).select_from(AuditLog).where(
            AuditLog.action == "export", AuditLog.object_type == "roster_import")) == 1


def test_cli_roster_import_dry_run_then_for_real(tmp_path, settings):
    path = tmp_path / "roster.csv"
    path.write_bytes(csv_bytes([person(1, "张大山"), [2, "坏行", "123", "", "平昌县", "白衣镇", "长沙村", "是"]]))
    env = {"GONGYOU_DATABASE_URL": settings.database_url, "GONGYOU_LOG_JSON": "false", "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bot", "roster", "import", *args], env=env, capture_output=True,
                              text=True, timeout=120)

    dry = run(str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "rows 2  valid 1" in dry.stdout and "row 3" in dry.stdout and "nothing written" in dry.stdout
    from bot.db import make_engine

    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Labourer)).scalar() == 0
    real = run(str(path))
    assert real.returncode == 0, real.stderr
    assert "created 1  updated 0  skipped 1" in real.stdout
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Labourer)).scalar() == 1
    engine.dispose()
    missing = run(str(tmp_path / "nope.xlsx"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_a_commit_checks_the_registry_again_as_it_is_then(client, app, admin_auth):
    # Two files with the same person, both checked while nobody was registered: the second commit updates.
    first = upload(client, admin_auth, xlsx([person(1, "张大山")])).json()
    second = upload(client, admin_auth, xlsx([person(1, "张大山", village="凤凰村")])).json()
    assert first["to_create"] == second["to_create"] == 1
    assert client.post(f"/api/admin/roster/imports/{second['id']}/commit", headers=admin_auth).json() == \
        {"created": 1, "updated": 0, "skipped": 0}
    assert client.post(f"/api/admin/roster/imports/{first['id']}/commit", headers=admin_auth).json() == \
        {"created": 0, "updated": 1, "skipped": 0}
    [zhang] = labourers(app)
    assert zhang.village == "长沙村"
    with db(app) as session:
        kept = session.scalars(select(RosterImportFile)).all()
    assert kept == []  # nothing with personal data is kept once committed


def test_phones_checked_by_number_block_agree_with_phonenumbers():
    # A roster's phones are checked once per 7-digit block (bot.pii): the answer must be phonenumbers' own.
    import phonenumbers

    def by_phonenumbers(number: str) -> bool:
        try:
            parsed = phonenumbers.parse(number, "CN")
        except phonenumbers.NumberParseException:
            return False
        return phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE and \
            phonenumbers.is_valid_number(parsed)

    for block in range(1_000_000, 2_000_000, 997):
        for tail in ("0000", "5831", "9999"):
            number = f"{block}{tail}"
            try:
                ours = pii.normalize_phone(number) == number
            except pii.InvalidPersonalData:
                ours = False
            assert ours == by_phonenumbers(number), number


def test_an_import_not_yet_committed_survives_a_data_key_rotation(client, app, admin_auth):
    from bot.auth import cli_actor
    from bot.roster import commit_import
    from bot.rotation import rotate

    report = upload(client, admin_auth, xlsx([person(1, "张大山", phone="13912344567")])).json()
    old = app.state.settings.data_key
    changed = rotate(app.state.engine, old, "a-brand-new-data-key")
    assert changed["roster_import_file.file_enc"] == 1 and changed["roster_import_file.rows_enc"] == 1
    counts = commit_import(app.state.sessionmaker, report["id"], cli_actor(), data_key="a-brand-new-data-key")
    assert counts == {"created": 1, "updated": 0, "skipped": 0}
    [zhang] = labourers(app)
    assert pii.decrypt(zhang.phone_enc, "a-brand-new-data-key") == "13912344567"
    assert zhang.id_number_hash == pii.lookup_hash(id_number(1), "a-brand-new-data-key")


def test_a_file_checked_and_written_in_many_batches_reports_and_writes_every_row_once(client, app, admin_auth,
                                                                                     monkeypatch):
    import bot.roster

    # Small batches and chunks, so a file of 40 rows crosses many of both (a real file: 2,000 and 10,000).
    monkeypatch.setattr(bot.roster, "CHECK_BATCH", 3)
    monkeypatch.setattr(bot.roster, "CHUNK", 7)
    people = [person(n, phone=f"139{n:08d}" if n % 2 else "") for n in range(1, 41)]
    people[10] = person(5)  # row 12 repeats row 6, in another batch
    people[20][2] = bad_checksum(people[20][2])  # row 22
    report = upload(client, admin_auth, xlsx(people)).json()
    assert (report["rows"], report["valid"], report["to_create"]) == (40, 38, 38)
    assert {(e["row"], e["field"]) for e in report["errors"]} == {(12, "id_number"), (22, "id_number")}
    assert client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=admin_auth).json() == \
        {"created": 38, "updated": 0, "skipped": 2}
    written = {p.id_number_hash: p for p in labourers(app)}
    assert len(written) == 38
    key = app.state.settings.data_key
    seventh = written[pii.lookup_hash(id_number(7), key)]
    assert pii.decrypt(seventh.id_number_enc, key) == id_number(7) and pii.decrypt(seventh.phone_enc, key) == "13900000007"
    assert seventh.birth_date.isoformat() == "1980-01-01" and seventh.household_status == "registered_poor"

    # Again, with phones for all: every row an update, none doubled, the phones left empty before filled now.
    again = [person(n, phone=f"138{n:08d}", poor="否") for n in range(1, 41)]
    report = upload(client, admin_auth, xlsx(again)).json()
    assert (report["valid"], report["to_update"], report["to_create"]) == (40, 38, 2)
    assert client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=admin_auth).json() == \
        {"created": 2, "updated": 38, "skipped": 0}
    written = {p.id_number_hash: p for p in labourers(app)}
    assert len(written) == 40
    assert all(p.phone_masked.startswith("138") and p.household_status == "general" for p in written.values())

    # The same file once more: everyone known and counted, but a person imported as they are is not rewritten.
    report = upload(client, admin_auth, xlsx(again)).json()
    assert client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=admin_auth).json() == \
        {"created": 0, "updated": 40, "skipped": 0}
    assert {(p.id_number_hash, p.updated_at, p.phone_enc) for p in labourers(app)} == \
        {(p.id_number_hash, p.updated_at, p.phone_enc) for p in written.values()}


def test_a_report_stored_before_batching_still_commits(client, app, admin_auth):
    import base64
    import json
    import zlib

    from bot.db import session_scope

    report = upload(client, admin_auth, xlsx([person(1, "张大山", phone="13912344567"), person(2)])).json()
    key = app.state.settings.data_key
    # The rows as main stored them until now: one JSON array of [row, values], compressed, encrypted.
    old = [[2, {"name": "张大山", "id_number": id_number(1), "phone": "13912344567", "county": "平昌县",
                "township": "白衣镇", "village": "长沙村", "household_status": "registered_poor"}],
           [3, {"name": "工友2", "id_number": id_number(2), "county": "平昌县", "township": "白衣镇",
                "village": "长沙村", "household_status": "registered_poor"}]]
    packed = base64.b64encode(zlib.compress(json.dumps(old, ensure_ascii=False).encode(), 1)).decode()
    with session_scope(app.state.sessionmaker) as session:
        session.get(RosterImportFile, report["id"]).rows_enc = pii.encrypt(packed, key)
    assert client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=admin_auth).json() == \
        {"created": 2, "updated": 0, "skipped": 0}
    assert sorted(p.name for p in labourers(app)) == ["工友2", "张大山"]


def test_many_values_encrypted_at_once_are_the_tokens_one_at_a_time_would_be():
    from cryptography.fernet import Fernet

    values = [id_number(n) for n in range(50)] + ["13912344567", "", "王" * 20, "x" * 16, "y" * 15]
    tokens = pii.encrypt_many(values, "some-key")
    assert [pii.decrypt(t, "some-key") for t in tokens] == values
    assert len(set(tokens)) == len(tokens)  # each its own IV: the same value twice is two tokens
    assert pii.encrypt_many(["a", "a"], "some-key")[0] != pii.encrypt_many(["a", "a"], "some-key")[1]
    fernet = pii._keys("some-key")[0]
    assert isinstance(fernet, Fernet) and fernet.decrypt(tokens[0]).decode() == values[0]


def test_an_import_s_own_database_settings_end_with_its_transactions(client, app, admin_auth, monkeypatch):
    """The commit writes its chunks without waiting for the WAL flush and plans its registry look-ups per batch
    (PostgreSQL), with a larger page cache (SQLite): for its own transactions only. Every pooled connection
    the app keeps afterwards has the settings it had before, and the import is written whole."""
    import bot.roster

    monkeypatch.setattr(bot.roster, "CHUNK", 4)
    engine = app.state.engine
    settings = {"postgresql": ("synchronous_commit", "plan_cache_mode"), "sqlite": ("cache_size",)}[engine.dialect.name]

    def pooled() -> list[tuple[str, ...]]:
        connections = [engine.connect() for _ in range(max(1, engine.pool.checkedin()))]
        try:
            return [tuple(str(c.exec_driver_sql(("SHOW " if engine.dialect.name == "postgresql" else "PRAGMA ") + name)
                              .scalar()) for name in settings) for c in connections]
        finally:
            for c in connections:
                c.close()

    before = set(pooled())
    report = upload(client, admin_auth, xlsx([person(n) for n in range(1, 15)])).json()
    assert client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=admin_auth).json() == \
        {"created": 14, "updated": 0, "skipped": 0}
    assert set(pooled()) == before
    assert len(labourers(app)) == 14
    with db(app) as session:
        assert session.get(RosterImport, report["id"]).status == "committed"


def test_an_imported_labourer_s_times_are_stored_as_the_models_store_them(client, app, admin_auth, monkeypatch):
    """SQLite keeps times as text: an import writes them in SQLAlchemy's own form (microseconds always), as
    every other writer of the table does, so they compare as text with theirs (sqlite3's own adapter drops
    the microseconds when they are 0)."""
    from datetime import datetime, timezone

    import bot.roster

    if app.state.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL stores times as times")
    monkeypatch.setattr(bot.roster, "utcnow", lambda: datetime(2026, 12, 3, 15, 0, 0, tzinfo=timezone.utc))
    report = upload(client, admin_auth, xlsx([person(1)])).json()
    assert client.post(f"/api/admin/roster/imports/{report['id']}/commit", headers=admin_auth).json()["created"] == 1
    with app.state.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT created_at, updated_at FROM labourer").one()
    assert tuple(stored) == ("2026-12-03 15:00:00.000000", "2026-12-03 15:00:00.000000")
