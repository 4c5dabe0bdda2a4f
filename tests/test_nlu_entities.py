"""Entities a labourer's message carries: amounts, durations, head counts, trades and places."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.knowledge import CatalogueItem, load_knowledge
from bot.nlu.entities import (
    extract_entities,
    match_job_type,
    match_place,
    match_training_type,
    parse_count,
    parse_duration,
    parse_money,
    parse_number,
)

REPO_KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"


def _catalogue(rows):
    return tuple(CatalogueItem(name=r["name"], aliases=tuple(r["aliases"]), category=r.get("category")) for r in rows)


@pytest.fixture(scope="module")
def kb():
    """A small knowledge base in the documented catalogue/regions format, independent of the real files."""
    return SimpleNamespace(
        training_types=_catalogue([
            {"name": "焊工", "category": "建筑", "aliases": ["电焊", "电焊工", "气焊"]},
            {"name": "挖掘机操作", "category": "机械", "aliases": ["挖机", "挖掘机", "勾机"]},
            {"name": "中式烹调", "category": "餐饮", "aliases": ["厨师", "烹饪", "炒菜"]},
            {"name": "机动车驾驶", "category": "交通", "aliases": ["驾驶", "开车", "驾照"]},
        ]),
        job_types=_catalogue([
            {"name": "挖掘机操作", "aliases": ["挖机", "挖掘机司机", "勾机"]},
            {"name": "普工", "aliases": ["厂里", "流水线", "普通工人"]},
            {"name": "建筑工", "aliases": ["工地", "泥水匠", "砌砖"]},
        ]),
        formats=(),
        regions={
            "city": "巴中市",
            "counties": [
                {"name": "平昌县", "code": "511923", "aliases": ["平昌"], "townships": [
                    {"name": "江口镇", "aliases": [], "villages": ["青凤村", "龙岗村"]},
                    {"name": "驷马镇", "aliases": [], "villages": []},
                ]},
                {"name": "通江县", "code": "511921", "aliases": ["通江"], "townships": [
                    {"name": "沙溪镇", "aliases": [], "villages": []},
                ]},
            ],
            "destinations": [
                {"name": "丽水", "province": "浙江", "aliases": ["丽水市"]},
                {"name": "东莞", "province": "广东", "aliases": []},
            ],
        },
    )


@pytest.mark.parametrize("text, value", [
    ("三千五", 3500), ("3千5", 3500), ("3.5k", 3500), ("两万", 20000), ("一万二", 12000),
    ("五六千", 5000), ("二十", 20), ("1200", 1200), ("十几", 10), ("两", 2),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "没有", "你好"])
def test_parse_number_none(text):
    assert parse_number(text) is None


@pytest.mark.parametrize("text, value", [
    ("两万块", 20000), ("3500元", 3500), ("三千五", 3500), ("一千多块钱", 1000), ("3.5k", 3500),
    ("老板欠我三个月工资两万块", 20000), ("欠了五千", 5000), ("工资3000", 3000),
])
def test_parse_money(text, value):
    assert parse_money(text) == value


@pytest.mark.parametrize("text, value", [
    ("三个月", {"value": 3, "unit": "month"}), ("两个月", {"value": 2, "unit": "month"}),
    ("半年", {"value": 6, "unit": "month"}), ("一年多", {"value": 1, "unit": "year"}),
    ("十来天", {"value": 10, "unit": "day"}), ("一年半", {"value": 18, "unit": "month"}),
    ("两个多月", {"value": 2, "unit": "month"}), ("干了三年", {"value": 3, "unit": "year"}),
])
def test_parse_duration(text, value):
    assert parse_duration(text) == value


@pytest.mark.parametrize("text", ["2019年来的", "3月5号", "没多久"])
def test_dates_are_not_durations(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("text, value", [
    ("十几个人", 10), ("二三十个工友", 20), ("我们有8个人", 8), ("十几个", 10), ("五个老乡", 5),
])
def test_parse_count(text, value):
    assert parse_count(text) == value


def test_match_training_type(kb):
    assert match_training_type("我想学电焊", kb) == "焊工"
    assert match_training_type("学开挖机", kb) == "挖掘机操作"
    assert match_training_type("想学电汗", kb) == "焊工"  # homophone typo
    assert match_training_type("学个烹饪手艺", kb) == "中式烹调"
    assert match_training_type("今天天气好", kb) is None


def test_match_job_type(kb):
    assert match_job_type("找个开挖机的活", kb) == "挖掘机操作"
    assert match_job_type("能帮我找个厂里的活不", kb) == "普工"
    assert match_job_type("你好", kb) is None


def test_match_place(kb):
    assert match_place("我是平昌江口镇的", kb) == {
        "county": "平昌县", "township": "江口镇", "village": None, "destination": None, "province": None}
    assert match_place("江口青凤村", kb)["village"] == "青凤村"
    assert match_place("驷马", kb)["township"] == "驷马镇"  # without 镇
    assert match_place("想去丽水市上班", kb)["destination"] == "丽水"
    assert match_place("想去浙江", kb)["province"] == "浙江"
    assert match_place("东莞", kb)["province"] == "广东"
    assert match_place("在家", kb) is None


def test_extract_entities_wage_arrears(kb):
    ents = extract_entities("老板欠我三个月工资两万块", kb)
    by_type = {e.type: e for e in ents}
    assert by_type["money"].value == 20000
    assert by_type["money"].text == "两万块"
    assert by_type["duration"].value == {"value": 3, "unit": "month"}
    assert "count" not in by_type


def test_extract_entities_training_and_place(kb):
    ents = extract_entities("我想学电焊，平昌江口镇的，我们村十几个人都想学", kb)
    by_type = {e.type: e for e in ents}
    assert by_type["training_type"].value == "焊工"
    assert by_type["place"].value["township"] == "江口镇"
    assert by_type["count"].value == 10
    for e in ents:
        assert e.text == "我想学电焊，平昌江口镇的，我们村十几个人都想学"[e.start:e.end]


def test_extract_entities_nothing_to_find(kb):
    assert extract_entities("", kb) == []
    assert extract_entities("你好", kb) == []


@pytest.mark.skipif(not (REPO_KNOWLEDGE / "training_types.yaml").exists(), reason="catalogue not committed yet")
def test_real_catalogue_welding():
    kb = load_knowledge(REPO_KNOWLEDGE)
    assert match_training_type("我想学电焊", kb) == "焊工"
