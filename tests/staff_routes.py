"""The permission table: every staff route, who may use it, and how its area is checked.

tests/test_permissions.py runs each row with no login, an expired token or session, every role, staff of
another area, and (console forms) without the CSRF token; and it fails when a staff route of the app has
no row here. Add a row with each new route:

    StaffRoute("GET", "/api/helpdesk/tickets/{ticket_no}", DESK, area="detail"),

`path` is the route's own template; its placeholders are filled from the World (ids of rows seeded in
area A, see `seed_world`) and then from `values`. `area="detail"` means staff of another area must get
404; `area="list"` means the World's marker text for that route (`marker`) must not be in their answer.
`ok` lists what an allowed role may get (the route's own tests check the content).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot import pii
from bot.auth import Actor, Area
from bot.models.complaints import open_ticket
from bot.roster import validate_upload
from bot.models import Audience, Campaign, Complaint, ComplaintEvidence, ConversationState, Event, KnowledgeRevision, Labourer, \
    MessageLog, Staff, StaffNotification

ALL = ("admin", "official", "assistant", "helpdesk")
ADMIN = ("admin",)
OFFICIALS = ("admin", "official")
REGISTRY = ("admin", "official", "assistant")
DESK = ("admin", "helpdesk")

# Area A holds the seeded rows and the staff of every role; area B holds the "wrong area" staff.
AREA_A = {"county": "平昌县", "township": "白衣镇", "village": "长沙村"}
AREA_B = {"county": "巴州区", "township": "曾口镇", "village": "三合村"}


def staff_areas(role: str, area: dict[str, str]) -> list[dict[str, str]]:
    """The area an account of `role` gets inside `area`."""
    return {
        "admin": [],
        "official": [{"county": area["county"], "township": area["township"]}],
        "assistant": [dict(area)],
        "helpdesk": [{"county": area["county"]}],
    }[role]


@dataclass(frozen=True)
class StaffRoute:
    method: str
    path: str
    roles: tuple[str, ...]
    area: str | None = None  # "detail" | "list" | None
    body: dict[str, Any] | None = None  # JSON for /api, form fields for /console (csrf_token added)
    files: dict[str, Any] | None = None  # multipart files (with `body` as the other form fields)
    headers: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    marker: str = ""  # for area="list": text of the World's row that other areas must not see
    ok: tuple[int, ...] = (200, 201, 204, 303)

    @property
    def console(self) -> bool:
        return self.path.startswith("/console")

    def url(self, world: dict[str, Any]) -> str:
        values = {k: v.format(**world) if isinstance(v, str) else v for k, v in self.values.items()}
        return self.path.format(**{**world, **values})


# A one-person roster of area A (a checksummed ID number of a 平昌县 person).
ROSTER_CSV = "姓名,身份证号,区县,乡镇,村\n甲区新人,511923198001010018,平昌县,白衣镇,长沙村\n".encode()


def _soon() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _future() -> str:
    return (datetime.now(UTC) + timedelta(days=10)).isoformat()


STAFF_ROUTES: list[StaffRoute] = [
    # auth
    StaffRoute("GET", "/api/auth/me", ALL),
    StaffRoute("POST", "/api/auth/logout", ALL),
    # events
    StaffRoute("GET", "/api/admin/events", OFFICIALS, area="list", marker="甲区招聘会"),
    StaffRoute("POST", "/api/admin/events", OFFICIALS,
               body={"kind": "job_fair", "title": "权限测试招聘会", "starts_at": _future()}),
    StaffRoute("GET", "/api/admin/events/{event_id}", OFFICIALS, area="detail"),
    StaffRoute("POST", "/api/admin/events/{event_id}/cancel", OFFICIALS, area="detail"),
    # campaigns
    StaffRoute("GET", "/api/admin/campaigns", OFFICIALS, area="list", marker="甲区通知"),
    StaffRoute("POST", "/api/admin/campaigns", OFFICIALS, headers={"Idempotency-Key": "perm-1"},
               body={"name": "权限测试通知", "audience": {"filter": {}}, "channels": ["sms"]}),
    StaffRoute("GET", "/api/admin/campaigns/{campaign_id}", OFFICIALS, area="detail"),
    StaffRoute("GET", "/api/admin/campaigns/{campaign_id}/preview", OFFICIALS, area="detail"),
    StaffRoute("POST", "/api/admin/campaigns/{campaign_id}/{action}", OFFICIALS, area="detail",
               values={"action": "schedule"}, ok=(200, 409)),
    StaffRoute("GET", "/api/admin/campaigns/{campaign_id}/report", OFFICIALS, area="detail"),
    StaffRoute("GET", "/api/admin/campaigns/{campaign_id}/report.csv", OFFICIALS, area="detail"),
    StaffRoute("GET", "/api/admin/campaigns/{campaign_id}/report.xlsx", OFFICIALS, area="detail"),
    StaffRoute("GET", "/api/admin/campaigns/{campaign_id}/timeline", OFFICIALS, area="detail"),
    # (another area's official names no place: their count is of their own area, never of area A's labourer)
    StaffRoute("POST", "/api/admin/campaigns/audience", OFFICIALS, body={"filter": {}, "channels": ["sms"]}),
    # events and campaigns in the console
    StaffRoute("GET", "/console/events", OFFICIALS, area="list", marker="甲区招聘会"),
    StaffRoute("POST", "/console/events", OFFICIALS, body={"kind": "training", "title": "权限测试培训班",
                                                            "starts_at": "2030-05-01T09:00"}),
    StaffRoute("POST", "/console/events/{event_id}/cancel", OFFICIALS, area="detail"),
    StaffRoute("GET", "/console/campaigns", OFFICIALS, area="list", marker="甲区通知"),
    StaffRoute("GET", "/console/campaigns/new", OFFICIALS),
    StaffRoute("POST", "/console/campaigns/audience", OFFICIALS, body={"channels": "sms"}),
    StaffRoute("POST", "/console/campaigns", OFFICIALS, body={"name": "权限测试通知", "channels": "sms"}),
    StaffRoute("GET", "/console/campaigns/{campaign_id}", OFFICIALS, area="detail"),
    StaffRoute("GET", "/console/campaigns/{campaign_id}/progress", OFFICIALS, area="detail"),
    StaffRoute("POST", "/console/campaigns/{campaign_id}/{action}", OFFICIALS, area="detail",
               values={"action": "pause"}),
    StaffRoute("GET", "/console/campaigns/{campaign_id}/export.xlsx", OFFICIALS, area="detail"),
    # knowledge (city-wide: no area of its own; the unanswered messages follow the labourer)
    StaffRoute("GET", "/api/admin/knowledge/entries", OFFICIALS),
    StaffRoute("PUT", "/api/admin/knowledge/entries/{entry_id}", OFFICIALS, values={"entry_id": "pwp_kinds"},
               body={"topic": "public_welfare_post", "title": "权限测试", "questions": ["权限测试问法"],
                     "answer": "权限测试回答。"}, ok=(200, 422)),
    StaffRoute("PUT", "/api/admin/knowledge/texts/{key}", OFFICIALS, values={"key": "texts:greeting"},
               body={"text": "您好呀！"}, ok=(200, 422)),
    StaffRoute("PUT", "/api/admin/knowledge/catalogues/{catalogue}/{name}", OFFICIALS,
               values={"catalogue": "training_types", "name": "焊工"}, body={"aliases": ["电焊"]}, ok=(200, 422)),
    StaffRoute("GET", "/api/admin/knowledge/revisions", OFFICIALS),
    StaffRoute("POST", "/api/admin/knowledge/revisions/{revision_id}/revert", OFFICIALS, ok=(200, 404, 422)),
    StaffRoute("POST", "/api/admin/knowledge/try", OFFICIALS, body={"text": "公益岗咋个申请"}),
    StaffRoute("GET", "/api/admin/knowledge/unanswered", OFFICIALS, area="list", marker="甲区没答上的话"),
    StaffRoute("GET", "/console/knowledge", OFFICIALS),
    StaffRoute("GET", "/console/knowledge/entries/new", OFFICIALS),
    StaffRoute("POST", "/console/knowledge/entries/new", OFFICIALS, ok=(303, 422),
               body={"topic": "village_service", "title": "权限测试条目", "questions": "权限测试新问法",
                     "answer": "权限测试回答。"}),
    StaffRoute("GET", "/console/knowledge/entries/{entry_id}", OFFICIALS, values={"entry_id": "pwp_kinds"}),
    StaffRoute("POST", "/console/knowledge/entries/{entry_id}", OFFICIALS, values={"entry_id": "pwp_kinds"},
               ok=(303, 422), body={"topic": "public_welfare_post", "title": "公益性岗位种类", "questions": "公益岗",
                                    "answer": "权限测试回答。"}),
    StaffRoute("POST", "/console/knowledge/try", OFFICIALS, body={"text": "公益岗咋个申请"}),
    StaffRoute("GET", "/console/knowledge/texts", OFFICIALS),
    StaffRoute("POST", "/console/knowledge/texts", OFFICIALS, body={"key": "texts:greeting", "text": "您好呀！"},
               ok=(200, 422)),
    StaffRoute("GET", "/console/knowledge/catalogues", OFFICIALS),
    StaffRoute("POST", "/console/knowledge/catalogues", OFFICIALS, ok=(200, 422),
               body={"catalogue": "training_types", "name": "焊工", "aliases": "电焊"}),
    StaffRoute("GET", "/console/knowledge/history", OFFICIALS),
    StaffRoute("POST", "/console/knowledge/revisions/{revision_id}/revert", OFFICIALS, ok=(200, 404, 422)),
    StaffRoute("GET", "/console/knowledge/unanswered", OFFICIALS, area="list", marker="甲区没答上的话"),
    StaffRoute("POST", "/console/knowledge/unanswered", OFFICIALS, ok=(200, 422),
               body={"entry_id": "pwp_kinds", "question": "甲区没答上的话"}),
    # labourers
    StaffRoute("GET", "/api/admin/labourers", REGISTRY, area="list", marker="甲区工友"),
    StaffRoute("GET", "/api/admin/labourers/{labourer_id}", REGISTRY, area="detail"),
    StaffRoute("POST", "/api/admin/labourers/{labourer_id}/reveal", REGISTRY, area="detail", body={"field": "phone"}),
    # roster imports (an import is seen by its uploader and by staff whose area covers the uploader's)
    StaffRoute("POST", "/api/admin/roster/imports", REGISTRY, ok=(201,), files={"file": ("r.csv", ROSTER_CSV)}),
    StaffRoute("GET", "/api/admin/roster/imports/{import_id}", REGISTRY, area="detail"),
    StaffRoute("PUT", "/api/admin/roster/imports/{import_id}/mapping", REGISTRY, area="detail",
               body={"mapping": {"name": 0, "id_number": 1, "county": 2, "township": 3, "village": 4}}),
    StaffRoute("POST", "/api/admin/roster/imports/{import_id}/commit", REGISTRY, area="detail"),
    StaffRoute("GET", "/api/admin/roster/imports/{import_id}/errors.xlsx", REGISTRY, area="detail"),
    StaffRoute("GET", "/console/roster", REGISTRY),
    StaffRoute("POST", "/console/roster/imports", REGISTRY, files={"file": ("r.csv", ROSTER_CSV)}),
    StaffRoute("GET", "/console/roster/imports/{import_id}", REGISTRY, area="detail"),
    StaffRoute("POST", "/console/roster/imports/{import_id}/mapping", REGISTRY, area="detail",
               body={"col_name": "0", "col_id_number": "1", "col_county": "2", "col_township": "3", "col_village": "4"}),
    StaffRoute("POST", "/console/roster/imports/{import_id}/commit", REGISTRY, area="detail"),
    StaffRoute("GET", "/console/roster/imports/{import_id}/progress", REGISTRY, area="detail"),
    StaffRoute("GET", "/console/roster/imports/{import_id}/errors.xlsx", REGISTRY, area="detail"),
    # labourers and the five lists in the console (area A's labourer is on the public-welfare list)
    StaffRoute("GET", "/console/labourers", REGISTRY, area="list", marker="甲区工友"),
    StaffRoute("GET", "/console/labourers/{labourer_id}", REGISTRY, area="detail"),
    StaffRoute("POST", "/console/labourers/{labourer_id}/flags", REGISTRY, area="detail", body={"flag": "startup", "on": "1"}),
    StaffRoute("GET", "/console/lists", REGISTRY),
    StaffRoute("GET", "/console/lists/{key}", REGISTRY, area="list", marker="甲区工友",
               values={"key": "public_welfare_post"}),
    StaffRoute("GET", "/console/lists/{key}/export.xlsx", REGISTRY, values={"key": "public_welfare_post"}),
    StaffRoute("GET", "/console/dashboard", REGISTRY),  # the area: tests/test_dashboard.py
    StaffRoute("GET", "/console/dashboard/export.xlsx", REGISTRY),
    # help desk
    StaffRoute("POST", "/api/helpdesk/complaints/{complaint_id}/reveal", DESK, area="detail",
               body={"field": "contact_phone"}),
    StaffRoute("GET", "/api/helpdesk/tickets", DESK, area="list", marker="WQ-20260301-0001"),
    StaffRoute("GET", "/api/helpdesk/tickets/{ticket_no}", DESK, area="detail"),
    StaffRoute("POST", "/api/helpdesk/tickets/{ticket_no}/messages", DESK, area="detail",
               body={"body": "权限测试备注", "visibility": "internal"}),
    StaffRoute("POST", "/api/helpdesk/tickets/{ticket_no}/transition", DESK, area="detail",
               body={"to": "in_progress"}, ok=(200, 409)),
    StaffRoute("POST", "/api/helpdesk/tickets/{ticket_no}/assign", DESK, area="detail", body={"assignee": "admin-A"}),
    StaffRoute("GET", "/console/helpdesk", DESK, area="list", marker="WQ-20260301-0001"),
    StaffRoute("GET", "/console/helpdesk/export.xlsx", DESK),
    StaffRoute("GET", "/console/helpdesk/reminders", DESK),
    # (a reminder is its assignee's: another member gets 404, the route's own test shows it)
    StaffRoute("POST", "/console/helpdesk/reminders/{notification_id}/read", DESK, area="detail", ok=(303, 404)),
    StaffRoute("GET", "/console/helpdesk/{ticket_no}", DESK, area="detail"),
    StaffRoute("GET", "/console/helpdesk/{ticket_no}/evidence/{evidence_id}", DESK, area="detail"),
    StaffRoute("POST", "/console/helpdesk/{ticket_no}/messages", DESK, area="detail",
               body={"body": "权限测试备注", "visibility": "internal"}),
    StaffRoute("POST", "/console/helpdesk/{ticket_no}/transition", DESK, area="detail", body={"to": "in_progress"},
               ok=(303, 409)),
    StaffRoute("POST", "/console/helpdesk/{ticket_no}/assign", DESK, area="detail", body={"assignee": "admin-A"}),
    StaffRoute("POST", "/console/helpdesk/{ticket_no}/merge", DESK, area="detail", body={"into": "WQ-20260301-0001"},
               ok=(409,)),
    StaffRoute("POST", "/console/helpdesk/{ticket_no}/link", DESK, area="detail",
               body={"others": "WQ-20260301-0001"}, ok=(422,)),
    StaffRoute("POST", "/console/helpdesk/{ticket_no}/recovered", DESK, area="detail", body={"amount": "8000"}),
    StaffRoute("POST", "/console/helpdesk/{ticket_no}/area", DESK, area="detail",
               body={"county": "平昌县", "township": "白衣镇"}, ok=(303, 422)),
    # staff accounts and the audit log
    StaffRoute("GET", "/api/admin/staff", ADMIN),
    StaffRoute("POST", "/api/admin/staff", ADMIN,
               body={"username": "perm-new", "password": "password-123", "role": "official", "counties": ["平昌县"]}),
    StaffRoute("POST", "/api/admin/staff/{username}/disable", ADMIN),
    StaffRoute("POST", "/api/admin/staff/{username}/enable", ADMIN),
    StaffRoute("POST", "/api/admin/staff/{username}/password", ADMIN, body={"password": "another-pass-1"}),
    StaffRoute("GET", "/api/admin/audit", ADMIN),
    # console
    StaffRoute("GET", "/console/", ALL),
    StaffRoute("POST", "/console/logout", ALL),
    StaffRoute("GET", "/console/staff", ADMIN),
    StaffRoute("POST", "/console/staff", ADMIN,
               body={"username": "perm-console", "password": "password-123", "role": "helpdesk", "counties": ""}),
    StaffRoute("POST", "/console/staff/{username}/disable", ADMIN),
    StaffRoute("POST", "/console/staff/{username}/enable", ADMIN),
    StaffRoute("POST", "/console/staff/{username}/password", ADMIN, body={"password": "another-pass-2"}),
    StaffRoute("GET", "/console/audit", ADMIN),
    StaffRoute("POST", "/console/reveal/{object_type}/{row_id}/{field}", REGISTRY, area="detail",
               values={"object_type": "labourer", "row_id": "{labourer_id}", "field": "id_number"}),
    StaffRoute("POST", "/console/reveal/{object_type}/{row_id}/{field}", DESK, area="detail",
               values={"object_type": "complaint", "row_id": "{complaint_id}", "field": "contact_phone"}),
]
# Not staff routes: signing in is open to anyone (and rate-limited), and so are the static files.
PUBLIC_PREFIXES = ("/api/auth/token", "/console/login", "/console/static")


def seed_world(session: Session, data_key: str) -> dict[str, Any]:
    """Rows in area A that the table's placeholders point at; returns their ids."""
    phone = pii.protect_phone("13912344567", data_key)
    id_number = pii.protect_id_number("511923199001011234", data_key)
    labourer = Labourer(name="甲区工友", county=AREA_A["county"], township=AREA_A["township"], village=AREA_A["village"],
                        phone_enc=phone.encrypted, phone_hash=phone.lookup_hash, phone_masked=phone.masked,
                        id_number_enc=id_number.encrypted, id_number_hash=id_number.lookup_hash,
                        id_number_masked=id_number.masked, public_welfare_post=True)
    session.add(labourer)
    session.flush()
    complaint = Complaint(ticket_no="WQ-20260301-0001", labourer_id=labourer.id, channel="sms", user_id="x",
                          category="欠薪", employer="某建筑公司", county=AREA_A["county"], township=AREA_A["township"],
                          contact_phone_enc=phone.encrypted, contact_phone_hash=phone.lookup_hash,
                          contact_phone_masked=phone.masked)
    event = Event(kind="job_fair", title="甲区招聘会", starts_at=datetime.now(UTC) + timedelta(days=5),
                  county=AREA_A["county"], township=AREA_A["township"], owner_county=AREA_A["county"],
                  owner_township=AREA_A["township"])
    audience = Audience(name="甲区", filter={"county": [AREA_A["county"]]})
    session.add_all([complaint, event, audience])
    session.flush()
    ticket = open_ticket(session, complaint=complaint)
    photo = ComplaintEvidence(complaint_id=complaint.id, ticket_id=ticket.id, channel="wechat", media_id="perm-media",
                              content=pii.encrypt_bytes(b"\x89PNG\r\n\x1a\n", data_key), content_type="image/png",
                              size=8, fetched_at=datetime.now(UTC))
    campaign = Campaign(name="甲区通知", event_id=event.id, audience_id=audience.id, template="t", sms_template="t",
                        channels=["sms"], state="draft", owner_county=AREA_A["county"],
                        owner_township=AREA_A["township"])
    target = Staff(username="perm-target", password_hash="x", role="assistant", areas=[dict(AREA_A)])
    # A message of area A's labourer the bot could not answer, and a knowledge change to revert.
    state = ConversationState(channel="simulator", user_id="perm-labourer", labourer_id=labourer.id, slots={},
                              context={})
    asked = MessageLog(channel="simulator", user_id="perm-labourer", direction="in", text="甲区没答上的话",
                       intent="out_of_scope", confidence=0.9)
    revision = KnowledgeRevision(kind="text", key="texts:greeting", value={"text": "您好！！"}, author="perm")
    # A roster import a village assistant of area A uploaded (checked as bot.roster does on upload).
    uploader = Actor(None, "perm-target", "assistant", areas=(Area(**AREA_A),))
    regions = {"counties": [{"name": AREA_A["county"], "townships": [{"name": AREA_A["township"],
                                                                      "villages": [AREA_A["village"]]}]}]}
    upload = validate_upload(session, uploader, filename="r.csv", data=ROSTER_CSV, regions=regions, data_key=data_key)
    session.add_all([campaign, target, state, asked, revision, upload, photo])
    session.flush()
    reminder = StaffNotification(username="helpdesk-A", ticket_id=ticket.id, kind="resolve", due_at=_soon(),
                                 text="工单 WQ-20260301-0001 的办结时限快到了")
    session.add(reminder)
    session.flush()
    return {"labourer_id": labourer.id, "complaint_id": complaint.id, "event_id": event.id,
            "campaign_id": campaign.id, "username": target.username, "revision_id": revision.id,
            "ticket_no": ticket.ticket_no, "import_id": upload.id, "evidence_id": photo.id,
            "notification_id": reminder.id}
