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
