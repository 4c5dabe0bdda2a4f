"""An official's roster import in Debian's chromium against the real HTTP server: upload an Excel roster
with bad rows and a header the import does not know, read the report, fix the mapping, commit and watch
the progress bar, then find a labourer and reveal a phone (audited), and import the file again: every row an
update, nothing written before the commit, nobody doubled. Screenshots in `artifacts`."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.models import AuditLog, Labourer
from conftest import STAFF_PASSWORD

from roster_support import bad_checksum, id_number, xlsx
from test_dialog_support import db

pytestmark = pytest.mark.browser
HEADERS = ["序号", "名字", "证件", "联系电话", "区县", "乡镇", "村", "是否贫困户"]  # 名字 is known, 证件 is not


def test_an_official_imports_a_roster_fixes_the_mapping_and_reveals_a_phone(live_server, browser_page, make_staff,
                                                                             app, artifacts, tmp_path):
    make_staff("bai-official", "official", [{"county": "平昌县", "township": "白衣镇"}])
    people = [[n, f"工友{n}", id_number(n % 1000, birth=f"19{60 + n // 1000}0101"), f"139{n:08d}", "平昌县", "白衣镇",
               "长沙村" if n % 2 else "凤凰村", "是"] for n in range(1, 2501)]
    people[0][1], people[0][3] = "张大山", "13912344567"
    people[4][2] = bad_checksum(people[4][2])  # spreadsheet row 6
    people[9][6] = "桃花村"  # row 11: no such village in 白衣镇
    people[14][3] = "1234"  # row 16: not a phone
    path = tmp_path / "白衣镇花名册.xlsx"
    path.write_bytes(xlsx(people, headers=HEADERS))

    page = browser_page
    page.set_default_timeout(90_000)  # a shared CI machine: 2,500 rows are checked twice on the way
    page.on("dialog", lambda dialog: dialog.accept())  # the "write N rows?" confirmation
    page.goto(f"{live_server.url}/console/login")
    page.fill("input[name=username]", "bai-official")
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.click("nav >> text=导入名册")
    page.set_input_files("input[type=file]", str(path))
    page.click("text=上传并检查")
    page.wait_for_url("**/console/roster/imports/*")
    assert page.inner_text("#count-rows") == "2500" and page.inner_text("#count-valid") == "0"
    assert "身份证号" in page.inner_text("#problems")  # no column maps to it yet
    page.screenshot(path=str(artifacts / "1-report-unmapped.png"), full_page=True)
    with db(app) as session:
        assert session.scalar(select(func.count()).select_from(Labourer)) == 0

    page.select_option("select[name=col_id_number]", label="证件")
    page.click("text=按此对应重新检查")
    page.wait_for_selector("#count-valid >> text=2497")
    problems = page.inner_text("#problems")
    assert "第 6 行" in problems and "第 11 行" in problems and "第 16 行" in problems and "桃花村" in problems
    assert page.inner_text("#count-create") == "2497"
    page.screenshot(path=str(artifacts / "2-report-mapped.png"), full_page=True)

    page.click("#commit-button")
    page.wait_for_selector("#roster-progress progress")
    page.wait_for_selector("#commit-result")
    result = page.inner_text("#commit-result").replace(" ", "")
    assert "新登记2497人" in result and "跳过有问题的3行" in result
    assert page.inner_text("#import-state") == "已导入" and page.locator("#mapping-form").count() == 0
    page.screenshot(path=str(artifacts / "3-committed.png"), full_page=True)
    with db(app) as session:
        assert session.scalar(select(func.count()).select_from(Labourer)) == 2497

    page.click("nav >> text=劳动力")
    page.fill("input[name=q]", "张大山")
    page.click("form.filters button[type=submit]")
    page.click("#labourers >> text=张大山")
    assert page.inner_text("#phone-value") == "139****4567"
    page.click("#reveal-phone")
    page.wait_for_selector("#phone-value >> text=13912344567")
    page.screenshot(path=str(artifacts / "4-labourer-revealed.png"), full_page=True)
    with db(app) as session:
        [row] = session.scalars(select(AuditLog).where(AuditLog.action == "reveal")).all()
        assert (row.actor, row.detail) == ("bai-official", {"field": "phone"})

    # The same people again, one with a new phone: the remembered mapping applies, everyone is an update.
    people[0][3] = "13700001111"
    again = tmp_path / "白衣镇花名册（更新）.xlsx"
    again.write_bytes(xlsx(people, headers=HEADERS))
    page.click("nav >> text=导入名册")
    page.set_input_files("input[type=file]", str(again))
    page.click("text=上传并检查")
    page.wait_for_url("**/console/roster/imports/*")
    assert page.inner_text("#count-update") == "2497" and page.inner_text("#count-create") == "0"
    page.screenshot(path=str(artifacts / "5-reimport-report.png"), full_page=True)
    with db(app) as session:  # nothing written before the commit
        assert session.scalar(select(Labourer.phone_masked).where(Labourer.name == "张大山")) == "139****4567"
    page.click("#commit-button")
    page.wait_for_selector("#commit-result")
    assert "更新2497人" in page.inner_text("#commit-result").replace(" ", "")
    page.screenshot(path=str(artifacts / "6-reimport-committed.png"), full_page=True)
    with db(app) as session:
        assert session.scalar(select(func.count()).select_from(Labourer)) == 2497
        assert session.scalar(select(Labourer.phone_masked).where(Labourer.name == "张大山")) == "137****1111"
