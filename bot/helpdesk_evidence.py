"""Evidence the labourer sends (photos of wage slips, attendance sheets, the site): fetched and stored.

WeChat pushes only a MediaId for a photo; the file itself stays on WeChat's side for three days as
temporary media (GET cgi-bin/media/get, `WeChatApi.get_media`). `fetch_pending` downloads what is not
stored yet and keeps it encrypted with the data key (such photos show names and ID numbers). It runs
after the message that brought the photo is committed (bot.helpdesk's hook), in the scheduler's minute
sweep (photos the complaint dialog collected, retries), and when a case is opened (a few never tried,
so a desk without a scheduler still sees them); a failure that may pass (WeChat busy, the network) is
tried again up to MAX_ATTEMPTS times, an unknown or expired media id (40007) is final. No provider call
is made while a database transaction is open.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from bot import pii
from bot.db import session_scope
from bot.models import ComplaintEvidence, Ticket, utcnow

log = logging.getLogger(__name__)

FETCHABLE_CHANNELS = ("wechat",)
MAX_BYTES = 10 * 1024 * 1024  # WeChat's limit for an image
MAX_ATTEMPTS = 5
KEPT_BY_WECHAT = timedelta(days=3)
GONE = 40007  # invalid media id: never was, or expired
SHOWN_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp")


class MediaSource(Protocol):
    def get_media(self, media_id: str) -> tuple[bytes, str]: ...


def pending_ids(session: Session, *, evidence_ids: Iterable[int] | None = None,
                media_ids: Iterable[str] | None = None, now: datetime | None = None, limit: int = 50,
                untried: bool = False) -> list[int]:
    """Evidence rows still to fetch: from a fetchable channel, not stored, not given up on, young enough
    (`untried`: never tried yet — what a page may fetch while someone waits; retries are the sweep's)."""
    now = now or utcnow()
    query = select(ComplaintEvidence.id).where(
        ComplaintEvidence.channel.in_(FETCHABLE_CHANNELS), ComplaintEvidence.fetched_at.is_(None),
        ComplaintEvidence.fetch_attempts < (1 if untried else MAX_ATTEMPTS),
        ComplaintEvidence.created_at > now - KEPT_BY_WECHAT,
    ).order_by(ComplaintEvidence.id).limit(limit)
    if evidence_ids is not None:
        query = query.where(ComplaintEvidence.id.in_(list(evidence_ids)))
    if media_ids is not None:
        query = query.where(ComplaintEvidence.media_id.in_(list(media_ids)))
    return list(session.scalars(query))


def fetch_pending(factory: sessionmaker[Session], source: MediaSource | None, data_key: str, *,
                  evidence_ids: Iterable[int] | None = None, media_ids: Iterable[str] | None = None,
                  now: datetime | None = None, limit: int = 50) -> int:
    """Fetch and store the pending files (all, or those of `evidence_ids`); returns how many were stored."""
    from bot.channels.wechat_api import WeChatApiError

    if source is None:
        return 0
    with session_scope(factory) as session:
        todo = [(row.id, row.media_id) for row in session.execute(
            select(ComplaintEvidence.id, ComplaintEvidence.media_id)
            .where(ComplaintEvidence.id.in_(pending_ids(
                session, evidence_ids=evidence_ids, media_ids=media_ids, now=now, limit=limit))))]
    stored = 0
    for evidence_id, media_id in todo:
        data, content_type, error, final = b"", "", None, False
        try:
            data, content_type = source.get_media(media_id)
        except WeChatApiError as exc:
            error, final = f"{exc.errcode}: {exc.errmsg}"[:200], exc.errcode == GONE
        except Exception as exc:  # noqa: BLE001 - a provider answer we did not expect: record it, try later
            log.warning("evidence fetch failed", extra={"evidence_id": evidence_id}, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"[:200]
        if error is None and len(data) > MAX_BYTES:
            error, final = f"too large: {len(data)} bytes", True
        with session_scope(factory) as session:
            row = session.get(ComplaintEvidence, evidence_id)
            if row is None or row.fetched_at is not None:
                continue
            row.fetch_attempts += 1
            if error is None:
                row.content = pii.encrypt_bytes(data, data_key)
                row.content_type, row.size, row.fetched_at, row.fetch_error = content_type, len(data), utcnow(), None
                stored += 1
            else:
                row.fetch_error = error
                if final:
                    row.fetch_attempts = MAX_ATTEMPTS
    return stored


def case_evidence(session: Session, complaint_id: int | None, ticket_ids: list[int]) -> list[ComplaintEvidence]:
    """The evidence of a case: its complaint's, and what was sent on its tickets (merged ones included)."""
    conditions = [ComplaintEvidence.ticket_id.in_(ticket_ids)]
    if complaint_id is not None:
        conditions.append(ComplaintEvidence.complaint_id == complaint_id)
    return list(session.scalars(select(ComplaintEvidence).where(or_(*conditions)).order_by(ComplaintEvidence.id)))


def evidence_file(session: Session, ticket: Ticket, ticket_ids: list[int], evidence_id: int,
                  data_key: str) -> tuple[bytes, str] | None:
    """The stored file of one piece of the case's evidence, decrypted; None when not stored or not the case's."""
    row = session.get(ComplaintEvidence, evidence_id)
    if row is None or row.fetched_at is None or row.content is None:
        return None
    if not (row.ticket_id in ticket_ids or (ticket.complaint_id is not None and row.complaint_id == ticket.complaint_id)):
        return None
    return pii.decrypt_bytes(row.content, data_key), row.content_type or "application/octet-stream"


def state_of(row: ComplaintEvidence, now: datetime | None = None) -> str:
    """stored | fetching (will be tried again) | lost (WeChat no longer has it, or it cannot be fetched)."""
    if row.fetched_at is not None:
        return "stored"
    now = now or utcnow()
    if row.channel in FETCHABLE_CHANNELS and row.fetch_attempts < MAX_ATTEMPTS and now - row.created_at < KEPT_BY_WECHAT:
        return "fetching"
    return "lost"
