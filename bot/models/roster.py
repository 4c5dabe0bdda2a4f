"""Roster imports (一库 from the village rosters): one row per uploaded file, and the column mapping
officials chose for each spreadsheet template (a template is its set of headers).

The uploaded file and its valid rows are kept encrypted (they hold ID numbers and phones) only until committed;
the validation report (row, field, problem) stays, with the counts, as the record of the import.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.models.base import Base, utcnow

IMPORT_STATES = ("validated", "committing", "committed", "failed")


class RosterImport(Base):
    __tablename__ = "roster_import"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Who uploaded it (a plain id, like the audit log: accounts are never deleted, and a CLI import has none).
    staff_id: Mapped[int | None] = mapped_column(Integer, index=True)
    staff_name: Mapped[str] = mapped_column(String(64))
    # The uploader's area: staff whose area covers it see the import too (a township official their
    # village assistants' imports); None = seen by the uploader and by those who see everything.
    owner_county: Mapped[str | None] = mapped_column(String(32))
    owner_township: Mapped[str | None] = mapped_column(String(32))
    owner_village: Mapped[str | None] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    file_kind: Mapped[str] = mapped_column(String(8))  # xlsx | csv
    file_sha256: Mapped[str] = mapped_column(String(64))
    # The file and its valid rows, until committed (a row of their own: progress updates stay small).
    kept: Mapped[RosterImportFile | None] = relationship(cascade="all, delete-orphan", lazy="select")
    header_row: Mapped[int] = mapped_column(Integer, default=1)
    headers: Mapped[list[str]] = mapped_column(default=list)
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)  # field -> column index
    status: Mapped[str] = mapped_column(String(16), default="validated")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    valid: Mapped[int] = mapped_column(Integer, default=0)
    to_create: Mapped[int] = mapped_column(Integer, default=0)
    to_update: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(default=list)  # [{"row", "field", "problem"}]
    progress: Mapped[int] = mapped_column(Integer, default=0)  # rows written so far while committing
    created: Mapped[int | None] = mapped_column(Integer)
    updated: Mapped[int | None] = mapped_column(Integer)
    skipped: Mapped[int | None] = mapped_column(Integer)
    failure: Mapped[str | None] = mapped_column(String(255))
    committed_at: Mapped[datetime | None]


class RosterImportFile(Base):
    __tablename__ = "roster_import_file"

    import_id: Mapped[int] = mapped_column(ForeignKey("roster_import.id", ondelete="CASCADE"), primary_key=True)
    file_enc: Mapped[bytes] = mapped_column(LargeBinary)  # the uploaded file, encrypted
    rows_enc: Mapped[bytes | None] = mapped_column(LargeBinary)  # the valid rows as checked, encrypted


class RosterTemplate(Base):
    """The mapping chosen for a set of headers, used again for the next file with the same headers."""

    __tablename__ = "roster_template"

    id: Mapped[int] = mapped_column(primary_key=True)
    header_key: Mapped[str] = mapped_column(String(64), unique=True)
    headers: Mapped[list[str]] = mapped_column(default=list)
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
