"""Showing one piece of personal data in clear: permitted per role, inside the actor's area, always audited.

Everything else shows the masked copy stored beside the encrypted value (ID 5119**********1234, phone
139****4567). A reveal decrypts one value, for one row, and writes the audit row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from bot import pii
from bot.audit import audit
from bot.auth import Actor
from bot.errors import Forbidden, NotFound
from bot.models import Complaint, Labourer
from bot.scope import get_scoped


@dataclass(frozen=True)
class Revealable:
    model: type
    column: str  # the encrypted column
    roles: tuple[str, ...]


# (object type, field) → where it is stored and who may see it in clear.
REVEALABLE: dict[tuple[str, str], Revealable] = {
    ("labourer", "id_number"): Revealable(Labourer, "id_number_enc", ("admin", "official", "assistant")),
    ("labourer", "phone"): Revealable(Labourer, "phone_enc", ("admin", "official", "assistant")),
    ("complaint", "contact_phone"): Revealable(Complaint, "contact_phone_enc", ("admin", "helpdesk")),
}


def may_reveal(actor: Actor, object_type: str, field: str) -> bool:
    spec = REVEALABLE.get((object_type, field))
    return spec is not None and actor.role in spec.roles


def reveal(session: Session, actor: Actor, object_type: str, row_id: int, field: str, *, data_key: str,
           reason: str | None = None) -> str | None:
    """The value in clear (None when none is stored). NotFound for an unknown field or a row outside the
    actor's area; Forbidden when the actor's role may not see this field."""
    spec = REVEALABLE.get((object_type, field))
    if spec is None:
        raise NotFound(f"nothing to reveal as {object_type}.{field}")
    if actor.role not in spec.roles:  # before the look-up: the answer says nothing about the row
        raise Forbidden(f"a {actor.role} account may not see {object_type}.{field} in clear")
    row = get_scoped(session, spec.model, row_id, actor)
    token = getattr(row, spec.column)
    audit(session, actor, "reveal", object_type=object_type, object_id=row_id, detail={"field": field},
          note=(reason or "").strip() or None)
    return None if token is None else pii.decrypt(token, data_key)
