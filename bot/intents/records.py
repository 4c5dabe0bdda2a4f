"""my_records: what this person registered and where each stands, complaints with their latest public reply."""

from __future__ import annotations

from bot.channels.base import Reply
from bot.conversation import Turn
from bot.registry import list_records


def my_records(turn: Turn) -> list[Reply]:
    labourer = turn.labourer()
    records = list_records(turn.session, labourer_id=labourer.id if labourer else None,
                           channel=turn.message.channel, user_id=turn.message.user_id)
    if records.empty:
        return [Reply(turn.say("my_records"))]
    status = turn.kb.texts["record_status"]
    lines = [turn.say("records.title")]
    for need in records.training_needs:
        lines.append(turn.say("records.training", training_type=need.training_type,
                              status=status["training"].get(need.status, need.status)))
    for wish in records.job_wishes:
        lines.append(turn.say("records.job", job_type=wish.job_type, status=status["job"].get(wish.status, wish.status)))
    for away in records.working_away:
        lines.append(turn.say("records.working_away", place=away.place or ""))
    for complaint, reply in records.complaints:
        lines.append(turn.say("records.complaint", ticket=complaint.ticket_no, category=complaint.category,
                              status=status["complaint"].get(complaint.status, complaint.status)))
        if reply:
            lines.append(turn.say("records.reply", reply=reply))
    return [Reply("\n".join(lines))]


HANDLERS = {
    "my_records": my_records,
}
