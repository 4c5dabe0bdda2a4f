"""Personal data: validation, protection at rest, masking.

ID numbers (GB 11643-1999) are checked with python-stdnum's cn.ric, phones with phonenumbers.
Values are encrypted with Fernet and looked up by an HMAC-SHA256 "blind index", so the database never
holds them in clear text and equality search still works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

import numpy as np
import phonenumbers
from cryptography.fernet import Fernet, InvalidToken
from stdnum import numdb
from stdnum.cn import ric

_DEV_KEY = "gongyou-development-only-data-key"


_FULL_WIDTH = str.maketrans("０１２３４５６７８９＋Ｘｘ", "0123456789+XX")


def fold_full_width(text: str) -> str:
    """Full-width digits, plus sign and X (as phone keyboards type them) in their ASCII form."""
    return text.translate(_FULL_WIDTH)


class InvalidPersonalData(ValueError):
    pass


@dataclass(frozen=True)
class Protected:
    encrypted: bytes
    lookup_hash: str
    masked: str


@lru_cache(maxsize=8)
def _keys(secret: str) -> tuple[Fernet, bytes]:
    secret = secret or _DEV_KEY
    mac = hashlib.sha256(b"gongyou-mac:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(_fernet_key(secret))), mac


def _fernet_key(secret: str) -> bytes:
    return hashlib.sha256(b"gongyou-enc:" + (secret or _DEV_KEY).encode()).digest()


def lookup_hash(value: str, secret: str) -> str:
    return hmac.digest(_keys(secret)[1], value.encode(), "sha256").hex()  # hmac.new(…).hexdigest(), in one C call


def encrypt(value: str, secret: str) -> bytes:
    return _keys(secret)[0].encrypt(value.encode())


def encrypt_many(values: list[str], secret: str) -> list[bytes]:
    """`encrypt` of each value (the same Fernet tokens, each with its own random IV), for a roster's 100,000
    rows: cryptography builds a cipher object per Fernet token, which costs more than the AES itself, so here
    CBC runs block by block over all values at once through one AES-ECB context (C = E(P xor previous C))."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = _fernet_key(secret)
    signing, encryption = key[:16], key[16:]
    tokens: list[bytes] = [b""] * len(values)
    groups: dict[int, list[int]] = {}  # blocks after padding → the values' positions
    plain = [value.encode() for value in values]
    for index, data in enumerate(plain):
        groups.setdefault(len(data) // 16 + 1, []).append(index)
    header = b"\x80" + int(time.time()).to_bytes(8, "big")
    ecb = Cipher(algorithms.AES(encryption), modes.ECB()).encryptor()
    for blocks, positions in groups.items():
        size = blocks * 16
        padded = b"".join(plain[i] + bytes([size - len(plain[i])]) * (size - len(plain[i])) for i in positions)
        grid = np.frombuffer(padded, dtype=np.uint8).reshape(len(positions), size)
        ivs = np.frombuffer(os.urandom(16 * len(positions)), dtype=np.uint8).reshape(len(positions), 16)
        cipher = np.empty_like(grid)
        previous = ivs
        for block in range(blocks):
            mixed = np.bitwise_xor(grid[:, block * 16:(block + 1) * 16], previous)
            previous = np.frombuffer(ecb.update(mixed.tobytes()), dtype=np.uint8).reshape(len(positions), 16)
            cipher[:, block * 16:(block + 1) * 16] = previous
        bodies = np.hstack([ivs, cipher]).tobytes()
        step = 16 + size
        for n, index in enumerate(positions):
            basic = header + bodies[n * step:(n + 1) * step]
            tokens[index] = base64.urlsafe_b64encode(basic + hmac.digest(signing, basic, "sha256"))
    return tokens


def encrypt_bytes(data: bytes, secret: str) -> bytes:
    """A file (an evidence photo) encrypted like a value."""
    return _keys(secret)[0].encrypt(data)


def decrypt_bytes(token: bytes, secret: str) -> bytes:
    try:
        return _keys(secret)[0].decrypt(token)
    except InvalidToken as exc:
        raise InvalidPersonalData("cannot decrypt with the configured GONGYOU_DATA_KEY") from exc


def decrypt(token: bytes, secret: str) -> str:
    try:
        return _keys(secret)[0].decrypt(token).decode()
    except InvalidToken as exc:  # wrong key: say so rather than return garbage
        raise InvalidPersonalData("cannot decrypt with the configured GONGYOU_DATA_KEY") from exc


# ---- ID numbers -------------------------------------------------------------------------------


def normalize_id_number(raw: str) -> str:
    """Return the canonical 18-character ID number, or raise InvalidPersonalData."""
    value = fold_full_width("".join(raw.split())).upper()  # any spaces, full-width ones too
    if len(value) != 18 or not value[:17].isdigit():
        raise InvalidPersonalData("身份证号应为18位")
    if value[-1] != ric.calc_check_digit(value):
        raise InvalidPersonalData("身份证号校验不通过")
    try:  # stdnum's get_birth_date cleans the number again first: a third of an import's checking time
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise InvalidPersonalData("身份证号里的出生日期不对") from exc
    if not date(1900, 1, 1) <= born <= date.today():
        raise InvalidPersonalData("身份证号里的出生日期不对")
    # The region code must exist, but not necessarily in the birth year: an ID carries the code in force
    # when it was issued (巴州区 511902 dates from 2000, yet its older residents hold it), so
    # stdnum's ric.validate, which ties the two, would turn real people away.
    if not _region_code_exists(value[:6]):
        raise InvalidPersonalData("身份证号里的地区代码不存在")
    return value


@lru_cache(maxsize=8192)
def _region_code_exists(code: str) -> bool:
    # numdb's look-up costs ~60 µs; a roster of 100,000 people shares a few dozen codes.
    return any(props for _part, props in numdb.get("cn/loc").info(code))


def id_birth_date(id_number: str) -> date:
    return ric.get_birth_date(id_number)


def id_gender(id_number: str) -> str:
    return "M" if int(id_number[16]) % 2 else "F"


def mask_id_number(id_number: str) -> str:
    return id_number[:4] + "*" * 10 + id_number[-4:]


def protect_id_number(raw: str, secret: str) -> Protected:
    value = normalize_id_number(raw)
    return Protected(encrypt(value, secret), lookup_hash(value, secret), mask_id_number(value))


# ---- Phones -----------------------------------------------------------------------------------


def normalize_phone(raw: str) -> str:
    """Return the 11-digit mainland mobile number (+86/0086/86 prefixes removed), or raise."""
    value = fold_full_width(raw.strip())
    digits = value if value.isascii() and value.isdigit() else "".join(ch for ch in value if ch.isdigit() or ch == "+")
    if digits.startswith("0086"):
        digits = "+86" + digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = "+" + digits
    if len(digits) == 11 and digits[0] == "1" and digits.isdigit():
        # Mainland mobiles are allocated in blocks of their first seven digits (号段): one look-up per block
        # (phonenumbers costs ~35 µs a number, a 100,000-row roster shares a few thousand blocks).
        if not _mobile_block_valid(digits[:7]):
            raise InvalidPersonalData("不是有效的手机号")
        return digits
    try:
        number = phonenumbers.parse(digits, "CN")
    except phonenumbers.NumberParseException as exc:
        raise InvalidPersonalData("手机号格式不对") from exc
    if (
        number.country_code != 86
        or phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE
        or not phonenumbers.is_valid_number(number)
    ):
        raise InvalidPersonalData("不是有效的手机号")
    return str(number.national_number)


@lru_cache(maxsize=65536)
def _mobile_block_valid(block: str) -> bool:
    try:
        number = phonenumbers.parse(block + "0000", "CN")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE and phonenumbers.is_valid_number(number)


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


def protect_phone(raw: str, secret: str) -> Protected:
    value = normalize_phone(raw)
    return Protected(encrypt(value, secret), lookup_hash(value, secret), mask_phone(value))


# ---- Free text ------------------------------------------------------------------------------------

# A run of digit groups as people type them: any Unicode decimal digit (full-width ０-９ too), an ID's
# final X, and between groups up to three separators (spaces, dashes, dots, brackets, a plus sign, in
# their ASCII, full-width or CJK forms), the way the validators above read them.
_SEPARATORS = " \t\u00a0\u3000-‐‑‒–—―－.．。·・()（）+＋/_"
_GROUP = r"\d+[XxＸｘ]?"
_RUN = re.compile(rf"{_GROUP}(?:[{re.escape(_SEPARATORS)}]{{1,3}}{_GROUP})*")
_GROUP_IN_RUN = re.compile(_GROUP)
_FOLD = {**{chr(c): str(unicodedata.decimal(chr(c))) for c in range(0x110000)
            if unicodedata.category(chr(c)) == "Nd" and not chr(c).isascii()},
         "Ｘ": "X", "ｘ": "X", "x": "X"}


def _folded(group: str) -> str:
    return "".join(_FOLD.get(ch, ch) for ch in group)


def _masked(digits: str) -> str | None:
    """The masked form of one ID number or mobile number written as `digits` (folded, no separators)."""
    if len(digits) == 18:
        try:
            return mask_id_number(normalize_id_number(digits))
        except InvalidPersonalData:
            return None
    if digits.isdigit() and (len(digits) == 11 and digits[0] == "1" or len(digits) in (13, 15) and digits.startswith(("86", "0086"))):
        try:
            return mask_phone(normalize_phone(digits))
        except InvalidPersonalData:
            return None
    return None


def _redact_run(run: str) -> str:
    groups = list(_GROUP_IN_RUN.finditer(run))
    folded = [_folded(g.group()) for g in groups]
    out, cursor, i = [], 0, 0
    while i < len(groups):
        found = None
        digits = ""
        for j in range(i, len(groups)):
            digits += folded[j]
            if len(digits) > 18:
                break
            masked = _masked(digits)
            if masked is not None:
                found = (j, masked)
                if len(digits) == 18:
                    break  # an ID number: nothing longer to look for
        if found is None:
            i += 1
            continue
        j, masked = found
        out.append(run[cursor:groups[i].start()])
        out.append(masked)
        cursor = groups[j].end()
        i = j + 1
    out.append(run[cursor:])
    return "".join(out)


def redact(text: str) -> str:
    """Mask ID numbers and mobile numbers wherever a person typed them (logs, transcripts, free-text fields),
    however they typed them: full-width digits, spaces, dashes, dots, a +86 or 0086 prefix.

    Only values that validate are masked, so amounts, dates and order numbers stay readable."""
    if not text:
        return text
    return _RUN.sub(lambda match: _redact_run(match.group()), text)
