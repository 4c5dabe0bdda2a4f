"""Rotating the data key (GONGYOU_DATA_KEY): every protected value re-encrypted, every look-up hash recomputed.

    GONGYOU_NEW_DATA_KEY=… gongyou rotate-data-key [--dry-run]

reads the current key from GONGYOU_DATA_KEY and the new one from GONGYOU_NEW_DATA_KEY (environment only:
a key on the command line would show in `ps` and the shell history). What the key protects:
- the Fernet columns and their HMAC look-up hashes (`ENCRYPTED` below);
- the SMS channel's user id, which *is* the look-up hash of the number: every table with `channel` and
  `user_id` columns (the message log, conversation state, outbox, hand-offs, complaints, …) has its SMS
  rows' user id mapped from the old hash to the new one, found from the numbers themselves;
- `labourer.sms_number_hash`, the same hash;
- protected values inside a dialog's slots (bot.dialogs.validators stores {"kind", "enc", "hash", "masked"}).

All of it happens in one transaction: a failure leaves the database on the old key, whole. A value already
under the new key (a second run after an interrupted first one) is left as it is, so the command can be run
again. Stop the web workers, dispatchers and schedulers first: a process still on the old key would write
rows the new configuration cannot read. A column added later that holds a protected value needs a row in
`ENCRYPTED` (tests/test_deploy_rotation.py fails for a LargeBinary or *_hash column nobody declared).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.orm import Session

from bot import pii


@dataclass(frozen=True)
class Encrypted:
    table: str
    enc: str
    hash: str | None  # its look-up hash, when it has one
    kind: str  # "phone" | "id_number": how the clear value is normalised before hashing; "file": a whole file


ENCRYPTED = (
    Encrypted("labourer", "id_number_enc", "id_number_hash", "id_number"),
    Encrypted("labourer", "phone_enc", "phone_hash", "phone"),
    Encrypted("sms_number", "number_enc", "number_hash", "phone"),
    Encrypted("complaint", "contact_phone_enc", "contact_phone_hash", "phone"),
    # A roster file not yet committed, and its checked rows (bot.roster): encrypted whole, no look-up hash.
    Encrypted("roster_import_file", "file_enc", None, "file"),
    Encrypted("roster_import_file", "rows_enc", None, "file"),
    # An evidence photo fetched for a complaint or hand-off (bot.helpdesk): a whole binary file.
    Encrypted("complaint_evidence", "content", None, "file"),
)
# Look-up hashes of SMS numbers kept without their ciphertext.
NUMBER_HASHES = (("labourer", "sms_number_hash"),)
# Columns that look protected but are not derived from the data key.
NOT_DATA_KEY = {("apscheduler_jobs", "job_state"), ("staff", "password_hash"), ("staff_session", "secret_hash"),
                ("idempotency_key", "request_hash")}


class RotationError(Exception):
    pass


def _decrypt_raw(token: bytes | str, old: str, new: str) -> tuple[bytes, bool]:
    """(clear bytes, True when they were under the old key); raises when neither key opens them."""
    raw = token.encode("ascii") if isinstance(token, str) else bytes(token)
    for key, is_old in ((old, True), (new, False)):
        try:
            return pii._keys(key)[0].decrypt(raw), is_old  # noqa: SLF001 - the module's own key derivation
        except InvalidToken:
            continue
    raise RotationError("a value opens with neither the current nor the new key")


def _decrypt(token: bytes | str, old: str, new: str) -> tuple[str, bool]:
    """(clear value, True when it was under the old key)."""
    data, is_old = _decrypt_raw(token, old, new)
    return data.decode(), is_old


def rotate(engine: Engine, old: str, new: str, *, dry_run: bool = False) -> Counter[str]:
    """Re-key everything; returns what was changed, per "table.column"."""
    if not new or new == old:
        raise RotationError("the new key must be set and differ from the current one")
    from bot.models import Base

    metadata = Base.metadata
    changed: Counter[str] = Counter()
    number_map: dict[str, str] = {}  # old look-up hash of a number -> new one
    with engine.begin() as conn:
        for spec in ENCRYPTED:
            table = metadata.tables.get(spec.table)
            if table is None or spec.enc not in table.c:
                continue
            _rotate_column(conn, table, spec, old, new, changed, number_map)
        for table_name, column in NUMBER_HASHES:
            table = metadata.tables.get(table_name)
            if table is not None and column in table.c:
                _remap(conn, table, table.c[column], None, number_map, changed)
        for table in metadata.sorted_tables:
            if "channel" in table.c and "user_id" in table.c:
                _remap(conn, table, table.c.user_id, table.c.channel == "sms", number_map, changed)
        conversation = metadata.tables.get("conversation_state")
        if conversation is not None:
            _rotate_slots(conn, conversation, old, new, changed)
        if dry_run:
            conn.rollback()
            return changed
        from bot.audit import audit
        from bot.auth import cli_actor

        with Session(bind=conn) as session:  # in the rotation's own transaction
            audit(session, cli_actor(), "data_key.rotate", object_type="database", detail=dict(changed))
    return changed


def _rotate_column(conn: Connection, table: Table, spec: Encrypted, old: str, new: str, changed: Counter[str],
                   number_map: dict[str, str]) -> None:
    key = table.primary_key.columns.values()[0]
    enc = table.c[spec.enc]
    has_hash = spec.hash is not None and spec.hash in table.c
    rows = conn.execute(select(key, enc).where(enc.is_not(None))).all()
    for row_id, token in rows:
        if spec.kind == "file":  # bytes as they are (a photo is no text)
            data, was_old = _decrypt_raw(token, old, new)
            if was_old:
                conn.execute(update(table).where(key == row_id).values({spec.enc: pii.encrypt_bytes(data, new)}))
                changed[f"{table.name}.{spec.enc}"] += 1
            continue
        value, was_old = _decrypt(token, old, new)
        if spec.kind == "phone":
            number_map[pii.lookup_hash(value, old)] = pii.lookup_hash(value, new)
        if not was_old:
            continue
        values: dict[str, Any] = {spec.enc: pii.encrypt(value, new)}
        if has_hash:
            values[spec.hash] = pii.lookup_hash(value, new)
        conn.execute(update(table).where(key == row_id).values(**values))
        changed[f"{table.name}.{spec.enc}"] += 1


def _remap(conn: Connection, table: Table, column: Any, where: Any, number_map: dict[str, str],
           changed: Counter[str]) -> None:
    query = select(column).distinct().where(column.is_not(None))
    if where is not None:
        query = query.where(where)
    for (digest,) in conn.execute(query).all():
        target = number_map.get(digest)
        if target is None or target == digest:
            continue
        stmt = update(table).where(column == digest)
        if where is not None:
            stmt = stmt.where(where)
        changed[f"{table.name}.{column.name}"] += conn.execute(stmt.values({column.name: target})).rowcount or 0


def _rotate_slots(conn: Connection, table: Table, old: str, new: str, changed: Counter[str]) -> None:
    """Dialog slots holding a protected value ({"kind", "enc", "hash", "masked"}), in a dialog in progress."""
    for row_id, slots in conn.execute(select(table.c.id, table.c.slots).where(table.c.slots.is_not(None))).all():
        if isinstance(slots, str):
            slots = json.loads(slots)
        if not isinstance(slots, dict):
            continue
        touched = False
        for name, slot in list(slots.items()):
            if isinstance(slot, dict) and {"enc", "hash"} <= set(slot):
                value, was_old = _decrypt(slot["enc"], old, new)
                if was_old:
                    slots[name] = {**slot, "enc": pii.encrypt(value, new).decode("ascii"),
                                   "hash": pii.lookup_hash(value, new)}
                    touched = True
        if touched:
            conn.execute(update(table).where(table.c.id == row_id).values(slots=slots))
            changed["conversation_state.slots"] += 1
