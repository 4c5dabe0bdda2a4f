"""human_handoff: record the request with the conversation so far, for the help desk."""

from __future__ import annotations

from sqlalchemy import select

from bot.channels.base import Reply
from bot.conversation import Turn
from bot.helpdesk_sla import SlaPolicy
from bot.models import Handoff, MessageLog
from bot.models.complaints import open_ticket

TRANSCRIPT_MESSAGES = 30


def human_handoff(turn: Turn) -> list[Reply]:
    msg, session = turn.message, turn.session
    open_request = session.scalars(
        select(Handoff).where(Handoff.channel == msg.channel, Handoff.user_id == msg.user_id, Handoff.status == "open")
    ).first()
    if open_request is not None:
        return [Reply(turn.say("handoff_exists", id=open_request.id))]
    recent = session.scalars(
        select(MessageLog)
        .where(MessageLog.channel == msg.channel, MessageLog.user_id == msg.user_id)
        .order_by(MessageLog.id.desc())
        .limit(TRANSCRIPT_MESSAGES)
    ).all()
    transcript = [
        {"direction": m.direction, "text": m.text, "at": m.created_at.isoformat(), "intent": m.intent}
        for m in reversed(recent)
    ]
    request = Handoff(
        channel=msg.channel,
        user_id=msg.user_id,
        labourer_id=turn.state.labourer_id,
        reason=turn.text,
        transcript=transcript,
    )
    labourer = turn.labourer()
    if labourer is not None:  # the help desk's area scope (bot.scope) follows the registered township
        request.county, request.township = labourer.county, labourer.township
    session.add(request)
    session.flush()
    open_ticket(session, handoff=request, sla=SlaPolicy.of(turn.settings))  # the help desk's queue
    return [Reply(turn.say("handoff_ok", id=request.id))]


HANDLERS = {
    "human_handoff": human_handoff,
}
