"""Staff accounts and how staff prove who they are: argon2 passwords, console sessions, API tokens, sign-in limits.

No account exists until `gongyou staff add` (or the development-only first admin of `gongyou serve`) makes
one. Session ids and tokens are 256-bit random values handed out once and stored only as their SHA-256.
Sign-in limits count the failures the audit log already records, so they hold across workers and restarts
and per account (slowapi keys a limit on the request alone: the username is in the form body, which its
key function cannot read, and its counters live in each process unless a Redis is configured).
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from pwdlib import PasswordHash
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.audit import audit
from bot.errors import Conflict, Invalid
from bot.models import AuditLog, Staff, StaffSession, utcnow
from bot.models.staff import ROLES
from bot.settings import Settings
from bot.validation import has_control_chars, mark_control_chars

MIN_PASSWORD_CHARS = 8
TOUCH_SECONDS = 60  # last_seen_at is written at most this often per session (each write is a transaction)
DEV_ADMIN = "admin"


@lru_cache(maxsize=1)
def hasher() -> PasswordHash:
    return PasswordHash.recommended()  # argon2id with the library's current parameters


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return hasher().hash(password)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise Invalid(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if has_control_chars(password):
        raise Invalid("a password may not contain control characters")
    return password


def random_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(20))


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# ---- areas ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Area:
    """A county, a township in it, or a village in that (None = the whole of the level above)."""

    county: str
    township: str | None = None
    village: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("county", self.county), ("township", self.township), ("village", self.village)) if v}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Area:
        return cls(raw["county"], raw.get("township"), raw.get("village"))

    @property
    def label(self) -> str:
        return "".join(part for part in (self.county, self.township, self.village) if part)


class AreaError(Invalid):
    pass


def _region_tree(regions: dict[str, Any]) -> dict[str, dict[str, set[str]]]:
    return {
        county["name"]: {t["name"]: set(t.get("villages") or ()) for t in county.get("townships") or ()}
        for county in regions.get("counties") or ()
    }


def resolve_areas(role: str, *, counties: Iterable[str] = (), township: str | None = None, village: str | None = None,
                  regions: dict[str, Any]) -> tuple[Area, ...]:
    """The areas an account of `role` gets from the command line's --county/--township/--village, checked
    against knowledge/regions.yaml. A township or village that is unique in the city needs no county."""
    if role not in ROLES:
        raise AreaError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    counties = [c for c in counties if c]
    tree = _region_tree(regions)
    for county in counties:
        if county not in tree:
            raise AreaError(f"unknown county {county!r}; known: {', '.join(tree)}")
    if role == "admin":
        if counties or township or village:
            raise AreaError("an admin has no area: leave out --county, --township and --village")
        return ()
    if role == "helpdesk":
        if township or village:
            raise AreaError("a help-desk account is scoped to counties only (--county, may repeat; none = all)")
        return tuple(Area(c) for c in dict.fromkeys(counties))
    if len(counties) > 1:
        raise AreaError(f"an {role} account has one area: give --county once")
    county = counties[0] if counties else None
    if role == "official":
        if village:
            raise AreaError("an official is scoped to a county or a township, not a village (that is an assistant)")
        if township is None:
            if county is None:
                raise AreaError("an official needs --county, or --township")
            return (Area(county),)
        return (_find_township(tree, county, township),)
    # assistant (协理员): one village
    if not village:
        raise AreaError("a village assistant needs --village (and --township when the village name is not unique)")
    places = [(c, t) for c, towns in tree.items() for t, villages in towns.items() if village in villages
              and (county is None or c == county) and (township is None or t == township)]
    if not places:
        raise AreaError(f"no village {village!r} in {Area(county or '', township).label or 'the regions list'}")
    if len(places) > 1:
        raise AreaError(f"village {village!r} is in {', '.join(c + t for c, t in places)}: give --township")
    return (Area(places[0][0], places[0][1], village),)


def _find_township(tree: dict[str, dict[str, set[str]]], county: str | None, township: str) -> Area:
    places = [c for c, towns in tree.items() if township in towns and (county is None or c == county)]
    if not places:
        raise AreaError(f"no township {township!r} in {county or 'the regions list'}")
    if len(places) > 1:
        raise AreaError(f"township {township!r} is in {', '.join(places)}: give --county")
    return Area(places[0], township)


# ---- who is asking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """A signed-in staff member for one request: a detached snapshot of the account, safe in any session."""

    id: int | None
    username: str
    role: str
    areas: tuple[Area, ...] = ()
    ip: str | None = None
    via: str = "token"  # token | console | cli
    session_id: int | None = None
    csrf_token: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, staff: Staff, **extra: Any) -> Actor:
        return cls(staff.id, staff.username, staff.role, tuple(Area.from_dict(a) for a in staff.areas or ()), **extra)

    def at(self, ip: str | None) -> Actor:
        return replace(self, ip=ip)


def cli_actor() -> Actor:
    """Whoever runs `gongyou` on the server: the operator, who can already read the database."""
    return Actor(None, "cli", "admin", via="cli")


# ---- accounts -----------------------------------------------------------------------------------


def _check_username(username: str) -> str:
    username = username.strip()
    if not 1 <= len(username) <= 64 or has_control_chars(username) or any(ch.isspace() for ch in username):
        raise Invalid("a username is 1–64 characters without spaces")
    return username


def find_staff(session: Session, username: str) -> Staff | None:
    return session.scalars(select(Staff).where(Staff.username == username)).one_or_none()


def create_staff(session: Session, by: Actor, *, username: str, password: str, role: str,
                 areas: tuple[Area, ...]) -> Staff:
    username = _check_username(username)
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r}")
    if find_staff(session, username) is not None:
        raise Conflict(f"staff account {username!r} already exists (use --update to change it)")
    staff = Staff(username=username, password_hash=hash_password(check_password(password)), role=role,
                  areas=[a.as_dict() for a in areas], active=True, created_by=by.username)
    session.add(staff)
    session.flush()
    audit(session, by, "staff_created", object_type="staff", object_id=username,
          detail={"role": role, "areas": staff.areas})
    return staff


def update_staff(session: Session, by: Actor, staff: Staff, *, password: str | None = None, role: str | None = None,
                 areas: tuple[Area, ...] | None = None, active: bool | None = None) -> Staff:
    """Change an account; a new password, a new role or area, or disabling it ends its sessions and tokens."""
    changed: dict[str, Any] = {}
    if password is not None:
        staff.password_hash = hash_password(check_password(password))
        staff.password_changed_at = utcnow()
        changed["password"] = "reset"
    if role is not None and role != staff.role:
        if role not in ROLES:
            raise Invalid(f"unknown role {role!r}")
        changed["role"] = [staff.role, role]
        staff.role = role
    if areas is not None and [a.as_dict() for a in areas] != staff.areas:
        changed["areas"] = [staff.areas, [a.as_dict() for a in areas]]
        staff.areas = [a.as_dict() for a in areas]
    if active is not None and active != staff.active:
        changed["active"] = active
        staff.active = active
    if changed:
        revoke_sessions(session, staff.id)
        action = "staff_password_reset" if set(changed) == {"password"} else (
            "staff_disabled" if changed.get("active") is False else "staff_updated")
        audit(session, by, action, object_type="staff", object_id=staff.username, detail=changed)
    session.flush()
    return staff


# ---- signing in -------------------------------------------------------------------------------


class SignInRefused(Exception):
    def __init__(self, reason: str) -> None:  # bad_credentials | rate_limited
        super().__init__(reason)
        self.reason = reason


def _recent_failures(session: Session, column: Any, value: str, since: datetime) -> int:
    return session.scalar(
        select(func.count()).select_from(AuditLog)
        .where(AuditLog.action == "login_failed", column == value, AuditLog.created_at >= since)
    ) or 0


def authenticate(session: Session, username: str, password: str, *, ip: str | None, settings: Settings,
                 now: datetime | None = None) -> Staff:
    """The active account these credentials open, or SignInRefused (the failure is audited either way:
    the caller must commit before answering)."""
    now = now or utcnow()
    # What was typed is recorded as the actor of a failure; control characters (NUL cannot even be stored
    # or queried on PostgreSQL) are shown as "?" and can match no account.
    typed = mark_control_chars(username.strip()[:64])
    since = now - timedelta(minutes=settings.login_window_minutes)
    limited = _recent_failures(session, AuditLog.actor, typed, since) >= settings.login_max_failures_per_account or (
        ip is not None and _recent_failures(session, AuditLog.ip, ip, since) >= settings.login_max_failures_per_address)
    if not limited:
        staff = find_staff(session, typed)
        # An unknown or disabled name costs the same time as a wrong password: the answer must not tell which.
        valid, rehashed = hasher().verify_and_update(password, staff.password_hash if staff else _dummy_hash())
        if valid and staff is not None and staff.active:
            if rehashed:  # the library's parameters moved on since this hash was made
                staff.password_hash = rehashed
            return staff
    reason = "rate_limited" if limited else "bad_credentials"
    audit(session, None, "login_failed", actor_name=typed or "-", ip=ip, object_type="staff", object_id=typed or None,
          detail={"reason": reason})
    raise SignInRefused(reason)


def open_session(session: Session, staff: Staff, *, kind: str, ip: str | None, user_agent: str | None,
                 settings: Settings, now: datetime | None = None) -> tuple[str, Actor]:
    """A new console session or API token; returns the secret (shown once) and the actor it stands for."""
    now = now or utcnow()
    secret = secrets.token_urlsafe(32)
    life = timedelta(hours=settings.console_session_hours if kind == "console" else settings.staff_token_hours)
    row = StaffSession(staff_id=staff.id, kind=kind, secret_hash=secret_digest(secret), ip=ip,
                       user_agent=(user_agent or "")[:256] or None, created_at=now, last_seen_at=now,
                       expires_at=now + life, csrf_token=secrets.token_urlsafe(32) if kind == "console" else None)
    session.add(row)
    session.flush()
    actor = Actor.of(staff, ip=ip, via=kind, session_id=row.id, csrf_token=row.csrf_token)
    audit(session, actor, "login", object_type="staff", object_id=staff.username, detail={"via": kind})
    return secret, actor


def actor_for_secret(session: Session, secret: str, *, kind: str, settings: Settings,
                     now: datetime | None = None) -> Actor | None:
    """Who a session id or token belongs to, or None when it is unknown, revoked, expired or idle too long,
    or its account is disabled."""
    if not secret or len(secret) > 128:
        return None
    now = now or utcnow()
    found = session.execute(
        select(StaffSession, Staff).join(Staff, Staff.id == StaffSession.staff_id)
        .where(StaffSession.secret_hash == secret_digest(secret), StaffSession.kind == kind)
    ).one_or_none()
    if found is None:
        return None
    row, staff = found
    idle = timedelta(minutes=settings.console_idle_minutes)
    if (row.revoked_at is not None or not staff.active or now >= row.expires_at
            or (kind == "console" and now - row.last_seen_at >= idle)):
        return None
    if (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS:
        row.last_seen_at = now
    return Actor.of(staff, ip=row.ip, via=kind, session_id=row.id, csrf_token=row.csrf_token)


def close_session(session: Session, actor: Actor) -> None:
    if actor.session_id is not None:
        session.execute(update(StaffSession).where(StaffSession.id == actor.session_id, StaffSession.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
        audit(session, actor, "logout", object_type="staff", object_id=actor.username, detail={"via": actor.via})


def revoke_sessions(session: Session, staff_id: int) -> None:
    session.execute(update(StaffSession).where(StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))


def create_dev_admin(session: Session, settings: Settings) -> str | None:
    """In development, with no account at all, make `admin` with a random password and return it (the only
    time it is shown). Never in production: there the first account is made with `gongyou staff add`."""
    if settings.env == "production" or session.scalar(select(func.count()).select_from(Staff)):
        return None
    password = random_password()
    create_staff(session, cli_actor(), username=DEV_ADMIN, password=password, role="admin", areas=())
    return password
