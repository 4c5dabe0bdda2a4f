"""Personal data: ID numbers and phones validated, stored encrypted, found by keyed hash, shown masked."""

from __future__ import annotations

import pytest

from bot import pii

from test_dialog_support import valid_id_number


def test_id_numbers_are_protected_and_masked():
    number = valid_id_number("511922", "20050607", "318")
    protected = pii.protect_id_number(f" {number[:-1]}{number[-1].lower()} ", "key-a")
    assert protected.masked == "5119**********" + number[-4:]
    assert number.encode() not in protected.encrypted
    assert pii.decrypt(protected.encrypted, "key-a") == number
    assert protected.lookup_hash == pii.lookup_hash(number, "key-a") != pii.lookup_hash(number, "key-b")
    assert pii.id_gender(number) == "F" and str(pii.id_birth_date(number)) == "2005-06-07"
    with pytest.raises(pii.InvalidPersonalData):
        pii.decrypt(protected.encrypted, "key-b")


@pytest.mark.parametrize("raw", ["51192220050607318", "5119222005060731800", "511922200513073180"])
def test_malformed_id_numbers_are_refused(raw):
    with pytest.raises(pii.InvalidPersonalData):
        pii.normalize_id_number(raw)


@pytest.mark.parametrize("raw", ["13812345678", "+8613812345678", "0086 138 1234 5678", "86 13812345678"])
def test_phones_are_normalised_and_masked(raw):
    protected = pii.protect_phone(raw, "key-a")
    assert protected.masked == "138****5678"
    assert pii.decrypt(protected.encrypted, "key-a") == "13812345678"


@pytest.mark.parametrize("raw", ["10012345678", "0838-1234567", "+1 650 253 0000", "138123"])
def test_non_mobile_numbers_are_refused(raw):
    with pytest.raises(pii.InvalidPersonalData):
        pii.normalize_phone(raw)


@pytest.mark.parametrize(
    ("region", "born"),
    [("511902", "19600101"), ("511903", "19550505"), ("511921", "19721130"), ("511923", "19880229")],
)
def test_older_residents_ids_are_accepted(region, born):
    """An ID carries the region code in force when it was issued (巴州区's 511902 dates from 2000): a
    villager born in 1960 holds it all the same and must not be turned away."""
    number = valid_id_number(region, born, "017")
    assert pii.normalize_id_number(number) == number


@pytest.mark.parametrize(
    ("region", "born", "why"),
    [("999999", "19800101", "地区代码"), ("511902", "20990101", "出生日期"), ("511902", "19801301", "出生日期")],
)
def test_impossible_regions_and_birth_dates_are_refused(region, born, why):
    with pytest.raises(pii.InvalidPersonalData, match=why):
        pii.normalize_id_number(valid_id_number(region, born, "001"))


def test_personal_numbers_are_masked_in_free_text():
    number = valid_id_number("511902", "19600101", "017")
    text = f"我叫王大山 身份证{number} 电话+86 138-1234-5678 工资欠了3000块 订单号20240101"
    redacted = pii.redact(text)
    assert number not in redacted and "5119**********" + number[-4:] in redacted
    assert "138****5678" in redacted and "1234" not in redacted.replace(number[-4:], "")
    assert "3000块" in redacted and "20240101" in redacted  # other numbers are left alone
