"""register_training, register_job, rights_complaint: open the dialog that fills the list.

"已经在外务工" under register_job opens the working-away dialog (转移就业名单) instead of a job wish.

The pre-route hook `registration_stated` opens one when the router took a statement that carries the
registration's facts for something else: "报培训，想学直播带货" is a training registration, not the
e-commerce policy; "欠薪投诉" is a complaint, not a question about which of two things was meant.
"""

from __future__ import annotations

import re

from bot import dialogs
from bot.channels.base import Reply
from bot.conversation import Turn
from bot.dialogs.validators import CLAUSES, compact, looks_like_question

WORKING_AWAY = re.compile(r"(已经|现在|目前|正)在(外面|外地|外头|省外|浙江|广东|江苏|福建|上海|北京|深圳|成都|[\u4e00-\u9fff]{2,3}(?=打工|务工|上班))"
                          r"|在外(务工|打工)|出[去来](打工|务工|上班)了|已经出去|我是外出(务工|打工)|外出(务工|打工)(的|人员)(登记|报)"
                          # 我现在人在江苏苏州，在一个电子厂上班: where they are now, and working there (not a wish)
                          r"|(已经|现在|目前|如今)人?在(?![家屋])[^想要准找愿]{1,20}?(打工|务工|上班|做工)")


# 想正规学一下月嫂: learning a trade is a training registration, whichever the router leaned to
# (学做短视频: a message that opens with the learning)
LEARNING = re.compile(r"(想学|要学|学一下|学个|学点|学门|学学|去学|参加培训|报个班|报培训|培训一下|^学(?![费校历生习]))")
# 我在新疆摘棉花, 帮我儿子登记一下 他在广东中山的灯具厂: where the person (or the one spoken for) is now, and no
# wish (想, 要, 找 …) for somewhere else
HERE_NOW = re.compile(r"[我他她](现在|目前|已经|这会儿)?人?在(?![家屋])")
WISH = re.compile(r"想|要|找|准备|打算|愿意|希望")
# 我在广东佛山的家具厂上班, 我在浙江绍兴打工 在纺织厂: the person states where they work now (a clause ends so)
WORKING_NOW = re.compile(r"(上班|打工|务工|做工|干活)(了|的|哦|嘛|呢)?$")
# 我屋头老汉想当护林员: a wish to do a kind of work is a job registration, whichever the router leaned to
WORK_WISH = re.compile(r"(想|要|愿意|打算)(去)?(当|做|干|找个|找份|找)")
# A statement that opens a registration by what it says, whatever the router answered: (the words, the
# registration, the fact it must state)
STATED_WISHES = ((LEARNING, "register_training", "training_type"), (WORK_WISH, "register_job", "job_type"))
# The fact without which a message is not that registration, though the router chose it (想去西藏开挖机 工资一万左右
# is a job wish: no grievance, no complaint)
KEY_FACTS = {"rights_complaint": "category"}
# The words without which a message is not that registration: 过完年想去内蒙古开大车 一个月1万2 names a trade
# one can learn, but says nothing of learning — a job wish (its place, pay and start) is not a training one
KEY_WORDS = {"register_training": re.compile(r"学|培训|班|课|教")}


def _dialog_for(turn: Turn, intent: str) -> str:
    said = turn.text or ""
    if intent == "register_job" and WORKING_AWAY.search(said):
        return "working_away"
    if intent == "register_job" and LEARNING.search(said) and "training_type" in dialogs.facts_said(turn, "register_training", said):
        return "register_training"
    if intent == "register_job" and HERE_NOW.search(said) and not WISH.search(said) \
            and "place" in dialogs.facts_said(turn, "working_away", said):
        return "working_away"
    return intent


def start_registration(turn: Turn) -> list[Reply]:
    name = _dialog_for(turn, turn.action["intent"])
    if turn.state.dialog == name:
        prompt = dialogs.current_prompt(turn)
        return [prompt] if prompt else []
    return dialogs.start(turn, name)


HANDLERS = {
    "register_training": start_registration,
    "register_job": start_registration,
    "rights_complaint": start_registration,
}

# Router answers a statement may be mistaken for; a command (退订, 人工, 我的登记 …) is never overridden.
OVERRIDABLE = ("policy_question", "out_of_scope", "greeting", "help")
PLAUSIBLE = 0.3  # the registration must be among the router's candidates at least this confidently,
MANY_FACTS = 3  # or the message state this many of its facts
MANY_FACTS_ASKED = 4  # a message that reads as a question needs this many to be a registration
# Questions without a question mark, as people here ask them: 能领奖补不, 包不包工作, 还招人不招, 工资好多,
# 在巴中哪里, 签几年, 去劳动局还是法院, 有木有, 我帮老汉儿问一哈.
_ASKS = re.compile(r"(不|没|吗|么|呢|没得|没有)[哦啊呀嘛]?$|(.)[不没]\2|不[\u4e00-\u9fff]$|好多(钱|款|$|[啊哦嘛呢])|是好多"
                   r"|哪|几[年号点时天月个]|多久|多长|还是|请问|问一[哈下]|问下|有木有|有莫得")
# A statement of what the person wants or went through (a bare topic word, 电商 or 工伤, is the router's)
_WANTS = re.compile(r"想|要|报|登记|投诉|帮我|找|学|欠|拖|不给|没给|摔|受伤|伤了|压了|跑了|(打工|务工|上班)了")
# An errand asked of us (帮我点个外卖, 帮我订张票, 帮我充个话费): a trade's word in it is no wish to do that work.
_ERRAND = re.compile(r"(帮我|给我)(点|订|叫|买|充|交)")


# Around a command said alone: 我要投诉嘛, 投诉一下
_AROUND_COMMAND = re.compile(r"^(?:我|我们)?(?:要|想)?(.+?)(?:一下|一哈|下)?(?:吧|嘛|哈|哦|啊|呀|噻|撒|呢)*$")


def _commanded(turn: Turn, said: str) -> str | None:
    """The registration whose own command (knowledge/dialogs.yaml `commands`) the message is, word for word:
    a bare 投诉 opens the complaint, however close the router found 我的投诉."""
    found = _AROUND_COMMAND.match(compact(said))
    if found is None:
        return None
    for intent in HANDLERS:
        if found.group(1) in (turn.kb.dialog_texts.get(intent) or {}).get("commands") or ():
            return intent
    return None


def _other_registration(turn: Turn, intent: str, said: str) -> list[Reply] | None:
    """The router's registration lacks its key fact: another whose facts the message states (two or more, and
    more than the router's) is started instead; else the router's choice stands (None)."""
    own = dialogs.facts_said(turn, _dialog_for(turn, intent), said)
    key = KEY_FACTS[intent] in own if intent in KEY_FACTS else bool(KEY_WORDS[intent].search(compact(said)))
    if key or not WISH.search(compact(said)):  # 去年在上海工地干活 …: no wish, no job wish
        return None
    others = sorted(((len(dialogs.facts_said(turn, _dialog_for(turn, other), said)), other)
                     for other in HANDLERS if other != intent), reverse=True)
    most, other = others[0]
    if most < 2 or most <= len(own):
        return None
    turn.action = {"intent": other}
    return start_registration(turn)


def registration_stated(turn: Turn) -> list[Reply] | None:
    """A statement (not a question) the router took for a policy question or hesitated over, that states
    facts of a registration the router also considered (a trade, a place, pay, an amount owed …): that
    registration, its facts kept. Inside a dialog the dialog decides."""
    parse, said = turn.parse, turn.text or ""
    if turn.state.dialog or parse is None or not said.strip():
        return None
    commanded = _commanded(turn, said)
    if commanded is not None:
        turn.action = {"intent": commanded}
        return start_registration(turn)
    if parse.intent in KEY_FACTS and not looks_like_question(said):
        return _other_registration(turn, parse.intent, said)
    if parse.intent in KEY_WORDS and not looks_like_question(said):
        other = _other_registration(turn, parse.intent, said)
        if other is not None:
            return other
    if parse.intent not in OVERRIDABLE and not parse.ambiguous:
        return None
    words = compact(said)
    working_now = bool(HERE_NOW.search(words) and any(WORKING_NOW.search(c) for c in CLAUSES.split(said))) \
        and not WISH.search(words)
    if not (_WANTS.search(words) or working_now) or len(words) < 3:  # 学电商 is a wish; a bare topic word (电商) is the router's
        return None
    if _ERRAND.search(words):
        return None
    # 我是民胜镇的 … 想学下魔芋咋个种得更好，明年开春有空，最好有人下乡来教: a question in words, but four facts
    # of a registration at once are a registration
    asks = looks_like_question(said) or bool(_ASKS.search(words))
    # 学做短视频 拍抖音那种, 想当护林员: the router may take the trade for its policy topic; wanting it is a registration
    for wish, intent, fact in STATED_WISHES if not asks else ():
        if wish.search(words) and fact in dialogs.facts_said(turn, intent, said):
            turn.action = {"intent": intent}
            return start_registration(turn)
    candidates = () if asks else sorted((c for c in parse.ranking if c.intent in HANDLERS and c.confidence >= PLAUSIBLE),
                                        key=lambda c: -c.confidence)
    # Of the router's candidates, the one whose facts the message states most (想出去打工，广东那边，工资五千往上
    # is a place and pay of a job wish, not a complaint's amount), the router's order breaking a tie.
    stated = [(len(dialogs.facts_said(turn, _dialog_for(turn, c.intent), said)), -rank, c.intent)
              for rank, c in enumerate(candidates)]
    best = max(stated, default=None)
    if best is not None and best[0] > 0:
        turn.action = {"intent": best[2]}
        return start_registration(turn)
    # Not among the router's candidates at all: only a message that states several of its facts at once
    # (想学做包子馒头 … 我是土兴镇的，冬天有空: a trade, a township and a time).
    # Two registrations stating as many: the one the clauses saying what they want (想学…) speak of.
    wished = "，".join(c for c in CLAUSES.split(said) if _WANTS.search(c))
    by_dialog = {_dialog_for(turn, intent): intent for intent in HANDLERS}  # 想学… under register_job is training
    counted = sorted(((len(dialogs.facts_said(turn, name, said)), len(dialogs.facts_said(turn, name, wished)), intent)
                      for name, intent in by_dialog.items()), reverse=True)
    (most, most_wished, intent), (runner_up, runner_up_wished, _other) = counted[0], counted[1]
    if most >= (MANY_FACTS_ASKED if asks else MANY_FACTS) and (most, most_wished) > (runner_up, runner_up_wished):
        turn.action = {"intent": intent}
        return start_registration(turn)
    return None

