"""The audit log: one function everyone calls. Append-only (a trigger refuses UPDATE and DELETE).

Recorded: sign-ins and failures, logouts, every reveal of personal data, every export, every change to a
complaint, campaign, event, staff account or knowledge entry. The row goes into the caller's transaction,
so a change and its audit row are committed together or not at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from bot.models import AuditLog, utcnow

if TYPE_CHECKING:
    from bot.auth import Actor


def audit(session: Session, actor: Actor | None, action: str, *, object_type: str | None = None,
          object_id: object = None, detail: dict[str, Any] | None = None, note: str | None = None,
          ip: str | None = None, actor_name: str | None = None) -> AuditLog:
    """Record that `actor` did `action` (to object_type/object_id). With no actor (a failed sign-in),
    `actor_name` says who it claimed to be."""
    row = AuditLog(
        created_at=utcnow(),
        actor=(actor.username if actor is not None else actor_name or "-")[:64],
        actor_id=actor.id if actor is not None else None,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id)[:64],
        ip=ip if ip is not None else (actor.ip if actor is not None else None),
        detail=detail or {},
        note=note,
    )
    session.add(row)
    session.flush()
    return row
