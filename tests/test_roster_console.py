"""Roster import in the console: upload, the report grouped by kind of problem with the first rows, the
error file, the mapping step (remembered for the template), and the commit with its progress fragment."""

from __future__ import annotations

import re

from sqlalchemy import select

from bot.models import Labourer, RosterImport, RosterTemplate

from roster_support import bad_checksum, id_number, person, xlsx
from test_console import csrf_of, login
from test_dialog_support import db, rows

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_upload_report_mapping_and_commit(client, app, make_staff):
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")
    token = csrf_of(client, "/console/roster")
    bad = [[n, f"错号{n}", bad_checksum(id_number(n)), "", "平昌县", "白衣镇", "长沙村", "是"] for n in range(2, 10)]
    data = xlsx([person(1, "张大山", phone="13912344567"), *bad],
                headers=["序号", "名字", "证件", "联系电话", "区县", "乡镇", "村", "是否贫困户"])
    sent = client.post("/console/roster/imports", data={"csrf_token": token},
                       files={"file": ("长沙村.xlsx", data, XLSX)}, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    page = client.get(sent.headers["location"])
    assert page.status_code == 200
    # "证件" is not a header the import knows: every row lacks its ID number, one kind of problem.
    assert re.search(r'id="count-valid">0<', page.text) and 'class="problem-kind"' in page.text
    assert "身份证号" in page.text and "第 2 行" in page.text and "第 7 行" not in page.text  # the first rows only
    assert rows(app, Labourer) == []

    import_id = int(sent.headers["location"].rsplit("/", 1)[1])
    fixed = client.post(f"/console/roster/imports/{import_id}/mapping", follow_redirects=False, data={
        "csrf_token": token, "col_name": "1", "col_id_number": "2", "col_phone": "3", "col_county": "4",
        "col_township": "5", "col_village": "6", "col_household_status": "7"})
    assert fixed.status_code == 303
    page = client.get(f"/console/roster/imports/{import_id}")
    assert re.search(r'id="count-valid">1<', page.text) and re.search(r'id="count-bad">8<', page.text)
    assert "校验不通过" in page.text and "第 3 行" in page.text
    with db(app) as session:
        assert session.scalar(select(RosterTemplate.mapping))["id_number"] == 2

    errors = client.get(f"/console/roster/imports/{import_id}/errors.xlsx")
    assert errors.status_code == 200 and errors.headers["content-type"].startswith(XLSX)

    started = client.post(f"/console/roster/imports/{import_id}/commit", headers={"HX-Request": "true",
                                                                                 "X-CSRF-Token": token})
    assert started.status_code == 200 and 'id="roster-progress"' in started.text
    progress = client.get(f"/console/roster/imports/{import_id}/progress")
    assert 'id="commit-result"' in progress.text and "every 1s" not in progress.text  # done: polling stops
    assert "新登记 <b>1</b>" in progress.text and "跳过有问题的 <b>8</b>" in progress.text
    [zhang] = rows(app, Labourer)
    assert zhang.name == "张大山" and zhang.phone_masked == "139****4567"
    with db(app) as session:
        assert session.get(RosterImport, import_id).status == "committed"
    # The next file with these headers is read with the mapping chosen here.
    sent = client.post("/console/roster/imports", data={"csrf_token": token}, follow_redirects=False,
                       files={"file": ("again.xlsx", xlsx([person(5, "李秀英")], headers=["序号", "名字", "证件", "联系电话",
                                                                                        "区县", "乡镇", "村", "是否贫困户"]), XLSX)})
    assert re.search(r'id="count-valid">1<', client.get(sent.headers["location"]).text)


def test_a_file_that_cannot_be_read_is_refused_with_the_reason(client, make_staff):
    make_staff("bai", "official", [{"county": "平昌县", "township": "白衣镇"}])
    login(client, "bai")
    token = csrf_of(client, "/console/roster")
    sent = client.post("/console/roster/imports", data={"csrf_token": token},
                       files={"file": ("roster.pdf", b"%PDF", "application/pdf")})
    assert sent.status_code == 422 and "只能导入 .xlsx 或 .csv 文件" in sent.text
