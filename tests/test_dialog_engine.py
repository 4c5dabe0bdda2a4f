"""The engine refuses bad dialog definitions at start-up; the validators read what labourers type."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from bot.dialogs import engine
from bot.dialogs import validators as v
from bot.dialogs.engine import Dialog, Slot
from bot.app import create_app
from bot.dialogs.definitions import DIALOGS
from bot.knowledge import KnowledgeError, load_knowledge
from bot.settings import default_knowledge_dir

from test_dialog_support import valid_id_number


def _done(run):  # noqa: ANN001, ANN202
    return []


def test_a_malformed_dialog_is_refused_when_declared():
    with pytest.raises(ValueError, match="duplicate"):
        Dialog("d", (Slot("a", v.parse_name), Slot("a", v.parse_name)), _done)
    with pytest.raises(ValueError, match="no parser"):
        Dialog("d", (Slot("a", None),), _done)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no slots"):
        Dialog("d", (), _done)
    with pytest.raises(ValueError, match="completion"):
        Dialog("d", (Slot("a", v.parse_name),), None)  # type: ignore[arg-type]


def test_a_missing_text_stops_the_start(tmp_path: Path, make_settings):  # noqa: ANN001
    knowledge = tmp_path / "knowledge"
    shutil.copytree(default_knowledge_dir(), knowledge)
    texts = yaml.safe_load((knowledge / "dialogs.yaml").read_text(encoding="utf-8"))
    del texts["register_job"]["slots"]["pay"]["reask"]
    (knowledge / "dialogs.yaml").write_text(yaml.safe_dump(texts, allow_unicode=True), encoding="utf-8")
    with pytest.raises(KnowledgeError, match="register_job.slots.pay.reask"):
        create_app(make_settings(knowledge_dir=knowledge), configure_logs=False)
    engine.check(DIALOGS, load_knowledge(default_knowledge_dir()).dialog_texts)


@pytest.fixture(scope="module")
def ctx() -> v.SlotContext:
    return v.SlotContext(kb=load_knowledge(default_knowledge_dir()), data_key="test", today=date(2026, 11, 26))


def with_options(ctx: v.SlotContext, *options: str) -> v.SlotContext:
    return v.SlotContext(kb=ctx.kb, data_key=ctx.data_key, today=ctx.today, options=options)


@pytest.mark.parametrize("text, expected", [
    ("三千五", 3500), ("3千5", 3500), ("3.5k", 3500), ("两万", 20000), ("一万二", 12000), ("4000块", 4000),
    ("三千五一个月", 3500), ("200一天", 5200),
])
def test_monthly_pay(ctx, text, expected):
    assert v.parse_monthly_pay(text, ctx) == expected


@pytest.mark.parametrize("text", ["5", "好多", "一百万"])
def test_monthly_pay_refuses_nonsense(ctx, text):
    with pytest.raises(v.Invalid):
        v.parse_monthly_pay(text, ctx)


@pytest.mark.parametrize("text, expected", [
    ("下个月", "2026-12-01"), ("3月份", "2027-03-01"), ("农历正月之后", "2027-02-06"), ("过完年", "2027-02-13"),
    ("明年三月", "2027-03-01"), ("12月5号", "2026-12-05"), ("随时", "2026-11-26"), ("两周后", "2026-12-10"),
    ("15号", "2026-12-15"), ("秋收后", "2027-10-01"), ("农闲的时候", None),
])
def test_dates(ctx, text, expected):
    found = v.parse_when(text, ctx)
    assert (found["text"], found["date"]) == (text, expected)


@pytest.mark.parametrize("text, start, until", [
    ("3月到5月", "2027-03-01", "2027-05-31"), ("开春", "2027-03-01", "2027-05-31"), ("下个月", "2026-12-01", "2026-12-31"),
    ("明年开春", "2027-03-01", "2027-05-31"), ("过完年", "2027-02-13", None),
    # in the season already (today is 26 November): from today to its end, not next year's
    ("入冬以后", "2026-11-26", "2027-02-28"), ("冬天有空", "2026-11-26", "2027-02-28"),
    ("冬月间", "2026-12-09", "2027-01-06"),  # a lunar month: about 29 days
    ("晚上", None, None), ("到时候再说", None, None),
])
def test_when_ranges(ctx, text, start, until):
    found = v.parse_when(text, ctx)
    assert (found["date"], found["until"]) == (start, until)


@pytest.mark.parametrize("text", ["13812345678", "+86 138 1234 5678", "008613812345678", "86-138-1234-5678", "１３８１２３４５６７８"])
def test_phones_are_normalised(ctx, text):
    value = v.parse_phone(text, ctx)
    assert value["masked"] == "138****5678" and v.reveal(value, "test") == "13812345678"


@pytest.mark.parametrize("text", ["12345678901", "1381234567", "02888888888"])
def test_phones_outside_the_mobile_ranges_are_refused(ctx, text):
    with pytest.raises(v.Invalid):
        v.parse_phone(text, ctx)


def test_id_numbers(ctx):
    good = valid_id_number("511921", "20040229", "042")
    value = v.parse_id_or_phone(f"我的身份证是{good.lower()}", ctx)
    assert value["kind"] == "id" and value["masked"] == good[:4] + "*" * 10 + good[-4:]
    for bad, key in ((good[:-1] + ("1" if good[-1] != "1" else "2"), "id_checksum"),  # checksum
                     (good[:10] + "0230" + good[14:], "id_checksum"),  # 2月30日
                     ("990000" + good[6:], "id_checksum"),  # no such region
                     (good[:16], "id_length")):
        with pytest.raises(v.Invalid) as caught:
            v.parse_id_or_phone(bad, ctx)
        assert caught.value.key in (key, "phone_invalid", None)


@pytest.mark.parametrize("text, expected", [("电焊", "焊工"), ("挖机", "挖掘机操作"), ("学厨师", "中式烹调"), ("电汗", "焊工")])
def test_training_types(ctx, text, expected):
    assert v.parse_training_type(text, ctx) == expected


def test_places(ctx):
    assert v.parse_township("平昌县江口镇", ctx)["township"] == "江口镇"
    with pytest.raises(v.Invalid) as caught:
        v.parse_township("平昌", ctx)
    assert caught.value.key == "township_needed"
    options = with_options(ctx, "本地（本乡镇）", "县内", "市内（巴中）", "省内", "省外", "都可以")
    assert v.parse_place_wish("丽水", options) == {"scope": "省外", "place": "丽水"}
    assert v.parse_place_wish("成都", options)["scope"] == "省内"
    assert v.parse_place_wish("本地（本乡镇）", options)["scope"] == "本地"
    assert v.parse_place_wish("哪里都行", options)["scope"] == "不限"


def test_choices_yes_no_and_categories(ctx):
    yes_no = with_options(ctx, "愿意", "不愿意")
    assert v.parse_yes_no("不愿意", yes_no) is False
    assert v.parse_yes_no("要得", yes_no) is True
    assert v.parse_yes_no("不得行", yes_no) is False
    formats = with_options(ctx, "农闲班", "流动班", "小灶班", "网络班", "补习班", "都可以")
    assert v.parse_format("网课", formats) == "网络班"
    assert v.parse_format("随便", formats) == "不限"
    with pytest.raises(v.Invalid) as caught:
        v.parse_format("有啥区别", formats)
    assert caught.value.counts is False
    assert v.parse_category("老板拖欠工资", ctx) == "欠薪"
    assert v.parse_category("在工地受伤了", ctx) == "工伤"
    assert v.parse_workers("就我一个", ctx) == 1 and v.parse_workers("十几个人", ctx) == 10
    assert v.parse_period("半年", ctx) == {"value": 6, "unit": "month"}
