"""register_training, register_job, rights_complaint: open the dialog that fills the list.

"已经在外务工" under register_job opens the working-away dialog (转移就业名单) instead of a job wish.
"""

from __future__ import annotations

import re

from bot import dialogs
from bot.channels.base import Reply
from bot.conversation import Turn

WORKING_AWAY = re.compile(r"(已经|现在|目前|正)在(外面|外地|外头|省外|浙江|广东|江苏|福建|上海|北京|深圳|成都|[\u4e00-\u9fff]{2,3}(?=打工|务工|上班))"
                          r"|在外(务工|打工)|出去打工了|已经出去"
                          # 我现在人在江苏苏州，在一个电子厂上班: where they are now, and working there (not a wish)
                          r"|(已经|现在|目前|如今)人?在(?![家屋])[^想要准找愿]{1,20}?(打工|务工|上班|做工)")


def start_registration(turn: Turn) -> list[Reply]:
    name = turn.action["intent"]
    if name == "register_job" and WORKING_AWAY.search(turn.text or ""):
        name = "working_away"
    if turn.state.dialog == name:
        prompt = dialogs.current_prompt(turn)
        return [prompt] if prompt else []
    return dialogs.start(turn, name)


HANDLERS = {
    "register_training": start_registration,
    "register_job": start_registration,
    "rights_complaint": start_registration,
}
