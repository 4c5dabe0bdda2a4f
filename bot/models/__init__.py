"""All tables. One module per area; importing this package registers every table on Base.metadata."""

from bot.models.base import Base, UTCDateTime, utcnow
from bot.models.campaigns import (
    Audience,
    Campaign,
    CampaignStep,
    Delivery,
    Event,
    IdempotencyKey,
    SchedulerJob,
    SignUp,
)
from bot.models.channels import OutboundMessage, SmsNumber, WeChatFollower, WeChatToken
from bot.models.complaints import (
    Complaint,
    ComplaintEvidence,
    StaffNotification,
    Ticket,
    TicketCounter,
    TicketEvent,
    TicketMessage,
)
from bot.models.conversation import ConversationState, Handoff, MessageLog
from bot.models.registry import FiguresSnapshot, JobWish, Labourer, TrainingNeed, WorkingAway
from bot.models.roster import RosterImport, RosterImportFile, RosterTemplate
from bot.models.staff import AuditLog, Staff, StaffSession
from bot.models.knowledge import KnowledgeRevision
from bot.models.security import RateCounter, ReplayNonce

__all__ = [
    "AuditLog",
    "Audience",
    "Base",
    "Complaint",
    "ComplaintEvidence",
    "Campaign",
    "CampaignStep",
    "Delivery",
    "Event",
    "IdempotencyKey",
    "SchedulerJob",
    "SignUp",
    "StaffNotification",
    "ConversationState",
    "Handoff",
    "JobWish",
    "KnowledgeRevision",
    "FiguresSnapshot",
    "Labourer",
    "MessageLog",
    "OutboundMessage",
    "RateCounter",
    "ReplayNonce",
    "RosterImport",
    "RosterImportFile",
    "RosterTemplate",
    "SmsNumber",
    "Staff",
    "StaffSession",
    "Ticket",
    "TicketCounter",
    "TicketEvent",
    "TicketMessage",
    "TrainingNeed",
    "UTCDateTime",
    "WeChatFollower",
    "WeChatToken",
    "WorkingAway",
    "utcnow",
]
