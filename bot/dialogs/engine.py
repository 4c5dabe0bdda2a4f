"""The generic slot-filling engine. A dialog is data (its slots in order, each with a parser); this module
knows nothing about training, jobs or complaints.

State lives in ConversationState: `dialog` (name), `step` (a slot name, CONFIRM or EDIT), `slots`
(answers so far, JSON) and `context["dialog"]` (the engine's bookkeeping: last activity, failures on the
current step, the order slots were answered in for 上一步, a pending offer, evidence media ids).
The pipeline reads these through the database on every message, so a restart or a second worker
continues where the first left off.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.channels.base import Choice, Reply
from bot.knowledge import KnowledgeError
from bot.dialogs.extractors import Extractor, Found, only_this
from bot.dialogs.validators import (
    CLAUSES,
    CORRECTION,
    NEGATED,
    Invalid,
    SlotContext,
    after_correction,
    compact,
    asks_why,
    looks_like_question,
    reveal,
    without_negated,
)
from bot.models import utcnow

if TYPE_CHECKING:
    from bot.conversation import Turn

log = logging.getLogger(__name__)

CONFIRM = "__confirm__"
EDIT = "__edit__"
MAX_FAILURES = 3
# The router must be at least this sure before a message the slot parser rejected is treated as a
# question about something else (answered, then the dialog resumes) rather than a bad answer.
DIGRESSION_CONFIDENCE = 0.6
NOT_DIGRESSIONS = ("out_of_scope", "greeting", "help")  # 不晓得 at a question is a failed answer, not a menu request
# Starting another dialog throws this one away, so that needs a router that is all but certain.
DIALOG_INTENTS = ("register_training", "register_job", "rights_complaint")
SWITCH_CONFIDENCE = 0.95

CANCEL_WORDS = ("取消", "算了", "不报了", "不登记了", "不弄了", "不搞了", "不填了", "退出", "不要了", "不投诉了",
                "不想报了", "不想登记了", "不办了", "不用了")
BACK_WORDS = ("上一步", "返回", "上一个", "退回", "回上一步", "返回上一步", "上一题", "back")
HANDOFF_CONFIDENCE = 0.8  # asking for a person interrupts any question, free-text ones included
HANDOFF_WORDS = ("人工", "转人工", "找人工", "我要人工", "人工服务", "人工客服", "要人工")
UNSUBSCRIBE_WORDS = ("TD", "退订", "退订通知")  # SMS carrier shorthand (R, T, N) is mapped by the SMS adapter
SKIP_WORDS = ("跳过", "没有", "没得", "莫得", "不知道", "不晓得", "不清楚", "记不得", "记不清", "不记得", "说不清", "不填",
              "无", "不确定", "搞不清", "不想说", "不说", "不想讲", "不告诉你", "保密", "不方便说", "不想填", "记不到", "忘了",
              "看情况", "无所谓")
CONTINUE_WORDS = ("继续", "接着", "接到", "1")
RESTART_WORDS = ("重新", "从头", "重来", "2")
CONFIRM_WORDS = ("确认", "对的", "对", "没问题", "是的", "是", "提交", "正确", "没错", "可以", "好的", "好", "要得", "行", "嗯", "ok",
                 "不用改", "不用改了", "不改", "不改了", "都对", "都对的", "没得问题", "莫得问题")
# A bare no (不用, 不要) answers the question asked: inside a dialog it is never an opt-out
BARE_NO = ("不用", "不要", "不需要", "不必", "不用嘛", "不要嘛")
EDIT_WORDS = ("修改", "改一下", "改下", "改", "错了", "不对", "换成", "重填", "更正")

Parser = Callable[[str, SlotContext], Any]


@dataclass(frozen=True)
class Slot:
    name: str
    parse: Parser
    show: Callable[[Any], str] = str
    optional: bool = False  # 跳过/不知道 leaves it empty
    # Finds this slot's value in any message (the opening, an answer to another question, a correction):
    # what it finds fills the slot (or corrects it) and the slot is not asked. Strict: see extractors.py.
    extract: Extractor | None = None
    # Options that depend on the conversation (the events just listed), instead of the texts' `options`.
    choices: Callable[["Run"], tuple[str, ...]] | None = None
    free_text: bool = False  # any text parses, so a confident question elsewhere is still a digression
    ask_if: Callable[["Run"], bool] | None = None  # asked only when this returns True
    # Not asked, yet kept when the person says it (中介收了我一千五: the fee taken, though no amount is owed)
    kept_if: Callable[["Run"], bool] | None = None
    texts: str = ""  # the knowledge/dialogs.yaml node with label, prompt, reask; "<dialog>.slots.<name>"
    # After this many answers the parser cannot read, the person's own words are taken as the value (a
    # trade the catalogue lacks: 护理老人), said back, for the staff to check; 0: never.
    own_words_after: int = 0
    from_own_words: Callable[[str], Any] = str  # the value those words make ({"scope": None, "place": 绍兴})
    # Whether a value found later narrows the one given (浙江, then 宁波 下个月就走): it replaces it, said back
    narrows: Callable[[Any, Any, SlotContext], bool] | None = None


@dataclass(frozen=True)
class Dialog:
    name: str
    slots: tuple[Slot, ...]
    complete: Callable[["Run"], list[Reply]]  # writes the rows; returns the closing replies
    intent: str | None = None  # the router intent that starts it: its own words are never a digression
    texts: tuple[str, ...] = ()  # further dialogs.yaml keys `complete` uses, checked at start-up
    prepare: Callable[["Run"], None] | None = None  # runs once when the dialog opens (who is this?)
    # Collects photos: while it runs they are kept with its answers, and for a while after it completes
    # this attaches them to what it wrote: (turn, the context `complete` left in attach_media) → replies.
    on_media: Callable[["Turn", dict[str, Any]], list[Reply]] | None = None
    # Policy topics a question asked in the middle most likely concerns (学这个要不要交钱 in a training
    # registration is about training fees): when the router hesitates, these are answered first.
    topics: tuple[str, ...] = ()
    read_back: bool = True  # False: completed as soon as every slot is filled (a sign-up needs no check)

    def __post_init__(self) -> None:
        if not self.slots:
            raise ValueError(f"dialog {self.name!r} has no slots")
        names = [s.name for s in self.slots]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"dialog {self.name!r}: duplicate slots {duplicates}")
        for slot in self.slots:
            if not callable(slot.parse):
                raise ValueError(f"dialog {self.name!r}: slot {slot.name!r} has no parser")
            if slot.name.startswith("_") or slot.name in (CONFIRM, EDIT):
                raise ValueError(f"dialog {self.name!r}: reserved slot name {slot.name!r}")
        if not callable(self.complete):
            raise ValueError(f"dialog {self.name!r} has no completion function")
        slots = tuple(replace(s, texts=s.texts or f"{self.name}.slots.{s.name}") for s in self.slots)
        object.__setattr__(self, "slots", slots)

    def slot(self, name: str) -> Slot | None:
        return next((s for s in self.slots if s.name == name), None)


# ---- texts (knowledge/dialogs.yaml) -------------------------------------------------------------

COMMON_KEYS = ("resume", "cancelled", "confirm", "confirm_reask", "confirm_choices", "edit_which", "edit_again",
               "back_first", "paused", "paused_choices", "handoff_offer", "handoff_choices", "prefilled", "corrected",
               "not_filled", "media_count", "media_ack", "evidence_ack", "explain_failed", "switched",
               "unsubscribe_check", "unsubscribe_choices", "own_words", "why_asked")


def _lookup(texts: dict[str, Any], key: str) -> Any:
    node: Any = texts
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def check(dialogs: Iterable[Dialog], texts: dict[str, Any]) -> None:
    """Refuse knowledge (at start-up, or a new snapshot) that lacks a text a dialog uses."""
    dialogs = tuple(dialogs)
    missing = []
    keys = [f"common.{k}" for k in COMMON_KEYS]
    for dialog in dialogs:
        keys += [f"{dialog.name}.title", f"{dialog.name}.start", *(f"{dialog.name}.{k}" for k in dialog.texts)]
        keys += [f"{slot.texts}.{part}" for slot in dialog.slots for part in ("label", "prompt", "reask")]
    for key in keys:
        try:
            _lookup(texts, key)
        except KeyError:
            missing.append(key)
    if missing:
        raise KnowledgeError(f"knowledge/dialogs.yaml lacks {missing}")
    for dialog in dialogs:
        for slot in dialog.slots:
            options = _lookup(texts, slot.texts).get("options")
            if options is not None and (not isinstance(options, list) or not all(isinstance(o, str) for o in options)):
                raise KnowledgeError(f"knowledge/dialogs.yaml: {slot.texts}.options must be a list of strings")


def text(turn: "Turn", key: str, **values: Any) -> str:
    node = _lookup(turn.kb.dialog_texts, key)
    return str(node).format(**values) if values else str(node)


def _node(turn: "Turn", key: str) -> dict[str, Any]:
    return _lookup(turn.kb.dialog_texts, key)


# ---- the run: one dialog in progress -----------------------------------------------------------


@dataclass
class Run:
    turn: "Turn"
    dialog: Dialog
    slots: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.slots.get(name)
        return default if value is None else value

    def text(self, key: str, **values: Any) -> str:
        return text(self.turn, f"{self.dialog.name}.{key}", **values)

    def options(self, slot: Slot) -> tuple[str, ...]:
        if slot.choices is not None:
            return tuple(slot.choices(self))
        return tuple(_node(self.turn, slot.texts).get("options") or ())

    def context(self, slot: Slot) -> SlotContext:
        settings = self.turn.settings
        options = self.options(slot)
        return SlotContext(
            kb=self.turn.kb,
            data_key=settings.data_key,
            today=datetime.now(ZoneInfo(settings.timezone)).date(),
            options=options,
            option_facts=dict(self.meta.get("option_facts") or {}),
        )

    def asks(self, slot: Slot) -> bool:
        return slot.ask_if is None or bool(slot.ask_if(self))

    def hears(self, slot: Slot) -> bool:
        """Whether a value said for this slot is kept: it is asked, or kept when said."""
        return self.asks(slot) or (slot.kept_if is not None and bool(slot.kept_if(self)))

    def save(self, step: str | None) -> None:
        state = self.turn.state
        state.dialog, state.step = self.dialog.name, step
        state.slots = dict(self.slots)  # reassign: JSON columns only notice a new object
        self.meta["at"] = utcnow().isoformat()
        context = dict(state.context or {})
        context["dialog"] = dict(self.meta)
        state.context = context


def _load(turn: "Turn") -> Run | None:
    dialog = turn.services.dialogs.get(turn.state.dialog or "")
    if dialog is None:
        return None
    meta = dict((turn.state.context or {}).get("dialog") or {})
    return Run(turn, dialog, dict(turn.state.slots or {}), meta)


def finish(turn: "Turn") -> None:
    """Close the dialog: the state forgets the answers (the rows written by `complete` keep them)."""
    state = turn.state
    state.dialog, state.step, state.slots = None, None, {}
    context = dict(state.context or {})
    context.pop("dialog", None)
    state.context = context


# ---- entry points -----------------------------------------------------------------------------


def plain(turn: "Turn", said: str | None = None) -> str:
    """The message (or `said`) as the dialogs read it: traditional characters and full-width forms folded
    the way the router folds them (下個月 → 下个月, 確認 → 确认, １３８… → 138…); ASCII keeps its case."""
    normalizer = getattr(getattr(turn.services, "router", None), "normalizer", None)
    said = (turn.text or "") if said is None else said
    if normalizer is None or said.isascii():
        return said
    return "".join(ch if ch.isascii() else normalizer.fold(ch) for ch in said)


def start(turn: "Turn", name: str) -> list[Reply]:
    """Open dialog `name`, take every fact the first message already states, ask for the rest."""
    turn.text = plain(turn)
    dialog = turn.services.dialogs[name]
    lead = text(turn, f"{name}.start")
    previous = turn.services.dialogs.get(turn.state.dialog or "")
    if previous is not None and previous.name != name:
        lead = text(turn, "common.switched", title=text(turn, f"{previous.name}.title")) + lead
    run = Run(turn, dialog, {}, {"history": [], "fails": 0, "opened": turn.message.received_at.isoformat()})
    if dialog.prepare is not None:
        dialog.prepare(run)
    filled, _corrected = _harvest(run, turn.text or "")
    return _advance(run, lead + _noted(run, filled))


def reopen(turn: "Turn", name: str, slots: dict[str, Any], *, step: str | None = None,
           replaces: dict[str, Any] | None = None, said: str | None = None) -> list[Reply]:
    """Change something registered before: dialog `name` opened with that record's answers, asking only
    the slot named (`step`), or which one to change. `replaces` is kept for `complete` (the row changed).
    When what the person `said` already gives the new value (工资要改成四千五), it is taken and read back."""
    dialog = turn.services.dialogs[name]
    run = Run(turn, dialog, {}, {"history": [], "fails": 0, "opened": turn.message.received_at.isoformat()})
    if dialog.prepare is not None:
        dialog.prepare(run)
    run.slots.update({k: v for k, v in slots.items() if dialog.slot(k) is not None})
    run.meta["history"] = [s.name for s in dialog.slots if s.name in run.slots]
    if replaces:
        run.meta["replaces"] = replaces
    missing = _next_slot(run)
    if missing is not None and missing.name != step:  # who is talking, when the chat is not bound yet
        return _advance(run)
    slot = dialog.slot(step or "")
    if slot is None:
        run.save(EDIT)
        return [_edit_menu(run)]
    new = _extract(run, slot, _new_value_words(said)) if said else None
    if new is not None and new.value != run.slots.get(slot.name):
        run.slots[slot.name] = new.value
        return _advance(run, _noted(run, [], [slot]))
    run.slots.pop(slot.name, None)
    run.save(slot.name)
    return [_ask(run, slot.name, text(turn, "common.edit_again", label=_label(run, slot)))]


def _new_value_words(said: str) -> str:
    """What follows 改成/改为/换成/应该是 (the new value), else what follows the last correction word."""
    for word in ("改成", "改为", "换成", "变成", "应该是", "改到"):
        if word in said:
            return said.rsplit(word, 1)[1]
    tail = after_correction(said)
    return tail if tail and compact(tail) else ""


def slot_named(turn: "Turn", name: str, said: str) -> str | None:
    """The slot of dialog `name` that `said` names by its label or an alias (时间要改一下 → available); of
    two named alike, the one whose value the message gives (工资写少了，要改成四千五 → the pay)."""
    dialog = turn.services.dialogs[name]
    words = compact(said)
    run = Run(turn, dialog, {}, {})
    best: tuple[int, bool, str] | None = None
    for slot in dialog.slots:
        node = _node(turn, slot.texts)
        for alias in (node["label"], *(node.get("aliases") or ())):
            if not alias or alias not in words:
                continue
            key = (len(alias), _extract(run, slot, _new_value_words(said)) is not None, slot.name)
            if best is None or key[:2] > best[:2]:
                best = key
    return best[2] if best else None


def facts_said(turn: "Turn", name: str, said: str) -> list[str]:
    """The slots of dialog `name` whose extractors find a value in `said`, who the person is aside
    (a name or a phone says nothing about which dialog a message belongs to)."""
    dialog = turn.services.dialogs[name]
    run = Run(turn, dialog, {}, {})
    said = _without_who(run, plain(turn, said))
    return [slot.name for slot in dialog.slots
            if slot.extract is not None and not _says_who(slot) and _extract(run, slot, said) is not None]


def _extract(run: Run, slot: Slot, text: str) -> Found | None:
    if slot.extract is None or not text:
        return None
    try:
        return slot.extract(text, run.context(slot))
    except Exception:  # an extractor bug must not cost the labourer the message
        log.exception("slot extractor failed", extra={"dialog": run.dialog.name, "slot": slot.name})
        return None


def _harvest(run: Run, text: str, *, skip: Slot | None = None, fill: bool = True,
             correct: bool = False) -> tuple[list[Slot], list[Slot]]:
    """Run every slot's extractor over `text`: fill the empty slots it speaks of (`fill`), and with
    `correct` change answered ones it gives a different value for. Returns (filled, corrected)."""
    filled: list[Slot] = []
    corrected: list[Slot] = []
    others = _without_who(run, text)
    for slot in run.dialog.slots:
        if slot is skip or slot.extract is None or not run.hears(slot):
            continue
        answered = slot.name in run.slots
        if (answered and not correct) or (not answered and not fill):
            continue
        found = _extract(run, slot, text if _says_who(slot) else others)
        if found is None:
            continue
        if answered:
            if run.slots[slot.name] == found.value:
                continue
            corrected.append(slot)
        else:
            filled.append(slot)
        run.slots[slot.name] = found.value
        run.meta["history"] = [n for n in run.meta.get("history", []) if n != slot.name] + [slot.name]
    return filled, corrected


def _says_who(slot: Slot) -> bool:
    return slot.texts.startswith("identity.")


def _without_who(run: Run, text: str) -> str:
    """The message with who the person is taken out, for the other slots' extractors (叫胡建: a name is not
    福建)."""
    rest = text
    for slot in run.dialog.slots:
        found = _extract(run, slot, text) if slot.extract is not None and _says_who(slot) else None
        for span in found.spans if found is not None else ():
            rest = rest.replace(span, " ")
    return rest


def _noted(run: Run, filled: list[Slot], corrected: list[Slot] = ()) -> str:
    """One line saying back what was taken from the message: 已记下 乡镇：白衣镇。"""
    lead = ""
    shown = [s for s in filled if s.name in run.slots and run.slots[s.name] is not None]
    if shown:
        items = "，".join(f"{_label(run, s)}：{s.show(run.slots[s.name])}" for s in shown)
        lead += text(run.turn, "common.prefilled", items=items)
    if corrected:
        items = "，".join(f"{_label(run, s)}：{s.show(run.slots[s.name])}" for s in corrected)
        lead += text(run.turn, "common.corrected", items=items)
    return lead


def continue_dialog(turn: "Turn") -> list[Reply] | None:
    """The next message of the dialog in progress. The question asked gets it first: a global command
    (cancel, unsubscribe, hand-off, another intent) interrupts only when it is unmistakable — an exact
    command word, or a confident parse the question's parser cannot use."""
    run = _load(turn)
    if run is None:  # a dialog this version no longer has: forget it rather than fail every message
        finish(turn)
        return None
    turn.text = plain(turn)
    words = compact(turn.text)
    if turn.message.kind != "text" and not turn.text:
        return _media(run)
    offer = run.meta.get("offer")
    if offer == "unsubscribe":
        return _unsubscribe_answer(run, words)
    slot = run.dialog.slot(turn.state.step or "")
    cancel = words in CANCEL_WORDS or (len(words) <= 8 and any(w in words for w in CANCEL_WORDS[:4]))
    if cancel and not (slot is not None and offer is None and _is_choice(run, slot) and _accepts(run, slot, turn.text)):
        finish(turn)
        return [Reply(text(turn, "common.cancelled", title=run.text("title")))]
    # 退订/TD inside a dialog is asked about once (是要退订所有通知吗？), unless it came by SMS, where the
    # adapter has already applied the carriers' opt-out word, or the person said no to that question before.
    if words.upper() in UNSUBSCRIBE_WORDS:
        if turn.state.channel != "sms" and not run.meta.get("kept_notices"):
            return _unsubscribe_check(run)
        replies = turn.run("unsubscribe")
        run.save(turn.state.step)
        return replies + [_resume(run)]
    # Asking for a person in so many words works whatever was asked: the request is recorded, the dialog kept.
    if words in HANDOFF_WORDS:
        return _handoff(run)
    if run.meta.get("paused") or _expired(run):
        return _paused(run, words)
    if offer == "handoff":
        run.meta.pop("offer")
        if words == "1":
            return _handoff(run)
        # 继续填, 接着来: going on in other words than the offer's (its own label is "2" by then, the pipeline)
        if words == "2" or any(words.startswith(w) for w in CONTINUE_WORDS if not w.isdigit()):
            run.meta["fails"] = 0
            run.save(turn.state.step)
            return [_ask(run, turn.state.step)]
    if words in BACK_WORDS:
        return _back(run)
    if turn.state.step == CONFIRM:
        return _confirm(run, words)
    if turn.state.step == EDIT:
        return _pick_edit(run, words)
    if slot is None:
        return _advance(run)
    return _answer(run, slot)


def _accepts(run: Run, slot: Slot, answer: str) -> bool:
    """Whether the question asked takes this message as its answer (不用 to 愿意吗？ is 不愿意)."""
    try:
        _parse(run, slot, answer)
    except Invalid:
        return False
    return True


def _is_choice(run: Run, slot: Slot) -> bool:
    """A question with options (愿意吗？): there 算了/不用了 answer it rather than cancel the dialog."""
    return bool(run.options(slot))


def _handoff(run: Run) -> list[Reply]:
    run.meta.pop("offer", None)
    run.meta["fails"] = 0
    replies = run.turn.run("human_handoff")
    run.save(run.turn.state.step)
    return replies + [_resume(run)]


def _unsubscribe_check(run: Run) -> list[Reply]:
    """Inside a dialog a soft opt-out (不想收了) is asked about once before all notices stop."""
    run.meta["offer"] = "unsubscribe"
    run.save(run.turn.state.step)
    labels = text(run.turn, "common.unsubscribe_choices").split("|")
    intent = run.dialog.intent or "help"
    choices = tuple(Choice(label, {"intent": intent, "dialog_answer": label}) for label in labels)
    return [Reply(text(run.turn, "common.unsubscribe_check"), choices)]


_YES_WORDS = ("是", "是的", "对", "对的", "嗯", "要", "退订", "确定", "确认", "好", "好的", "行", "可以", "要得", "1")


_NO_WORDS = ("不是", "不", "不要", "不用", "没有", "不退", "不退订", "2", "否", "接着登记", "接着填", "继续")


def _unsubscribe_answer(run: Run, words: str) -> list[Reply] | None:
    run.meta.pop("offer", None)
    labels = text(run.turn, "common.unsubscribe_choices").split("|")
    if words in _YES_WORDS or words == compact(labels[0]):
        replies = run.turn.run("unsubscribe")
        run.save(run.turn.state.step)
        return replies + [_resume(run)]
    run.meta["kept_notices"] = True  # not asked again in this dialog
    if words in _NO_WORDS or words == compact(labels[1]):
        run.save(run.turn.state.step)
        return [_resume(run)]
    run.save(run.turn.state.step)
    return continue_dialog(run.turn)  # neither: the message is read as if the question had not been asked


def current_prompt(turn: "Turn") -> Reply | None:
    """What the open dialog is waiting for (someone asked to start the dialog they are already in)."""
    run = _load(turn)
    return None if run is None else _resume(run)


def resume_prompt(turn: "Turn") -> Reply | None:
    run = _load(turn)
    if run is None or run.meta.get("opened") == turn.message.received_at.isoformat():
        return None  # no dialog, or it was (re)opened by this very message
    return _resume(run)


def receive_media(turn: "Turn") -> list[Reply] | None:
    """A photo outside any dialog: attach it when a dialog that collects evidence just finished."""
    attach = (turn.state.context or {}).get("attach_media")
    if not attach or turn.message.kind != "image" or not turn.message.media_id:
        return None
    until = datetime.fromisoformat(attach["until"])
    if utcnow() > until:
        return None
    dialog = turn.services.dialogs.get(attach["dialog"])
    if dialog is None or dialog.on_media is None:
        return None
    return dialog.on_media(turn, attach)


# ---- steps ------------------------------------------------------------------------------------


def _label(run: Run, slot: Slot) -> str:
    return str(_node(run.turn, slot.texts)["label"])


def _option_choices(run: Run, slot: Slot) -> tuple[Choice, ...]:
    options = run.options(slot)
    intent = run.dialog.intent or "help"
    return tuple(Choice(o, {"intent": intent, "dialog_answer": o}) for o in options)


def _ask(run: Run, step: str | None, lead: str = "", key: str = "prompt") -> Reply:
    if step == CONFIRM:
        return _confirmation(run, lead)
    if step == EDIT:
        return _edit_menu(run)
    slot = run.dialog.slot(step or "")
    if slot is None:
        return Reply(lead)
    node = _node(run.turn, slot.texts)
    if key == "prompt" and run.meta.get("for_other") and node.get("prompt_other"):
        key = "prompt_other"  # 帮我妈报个名: the questions are about her
    body = str(node.get(key) or node["reask"])
    return Reply(lead + body, _option_choices(run, slot))


def _resume(run: Run) -> Reply:
    if run.meta.get("paused"):
        return _pause_offer(run)
    prompt = _ask(run, run.turn.state.step)
    return Reply(text(run.turn, "common.resume", prompt=prompt.text), prompt.choices, prompt.footer)


def _next_slot(run: Run) -> Slot | None:
    return next((s for s in run.dialog.slots if s.name not in run.slots and run.asks(s)), None)


def _advance(run: Run, lead: str = "") -> list[Reply]:
    # An answer can change which later slots apply (工伤 needs no amount owed): drop answers that no
    # longer apply so the confirmation reads back only what will be saved.
    for slot in run.dialog.slots:
        if slot.name in run.slots and not run.hears(slot):
            del run.slots[slot.name]
            if slot.name in run.meta.get("history", []):
                run.meta["history"].remove(slot.name)
    slot = _next_slot(run)
    run.meta["fails"] = 0
    run.meta.pop("digressed", None)
    if slot is None and not run.dialog.read_back:
        return run.dialog.complete(run)  # what it did says it all (报名成功 …)
    step = slot.name if slot else CONFIRM
    run.save(step)
    return [_ask(run, step, lead)]


def _parse(run: Run, slot: Slot, answer: str) -> Any:
    try:
        return slot.parse(answer, run.context(slot))
    except Invalid:
        raise
    except Exception:  # a parser bug must not cost the labourer what they already told us
        log.exception("slot parser failed", extra={"dialog": run.dialog.name, "slot": slot.name})
        raise Invalid() from None


def _digit_option(run: Run, slot: Slot, words: str) -> str | None:
    options = run.options(slot)
    if words.isdigit() and 1 <= int(words) <= len(options):
        return str(options[int(words) - 1])
    return None


def _is_digression(run: Run, slot: Slot | None) -> bool:
    parse = run.turn.parse
    if parse is None or parse.intent in NOT_DIGRESSIONS or parse.intent == run.dialog.intent:
        return False
    if run.meta.get("digressed") == compact(run.turn.text):  # answered once already: they mean it as the answer
        return False
    if parse.intent in ("unsubscribe", "human_handoff"):  # asked about / recorded by the engine itself
        return False
    if parse.intent == "subscribe":  # 要多久才有消息嘛: a question, never a subscription made in passing
        return False
    if slot is not None and slot.free_text and not looks_like_question(run.turn.text):
        return False
    if parse.intent in DIALOG_INTENTS:
        return parse.confidence >= SWITCH_CONFIDENCE and len(compact(run.turn.text)) >= 4
    return parse.confidence >= DIGRESSION_CONFIDENCE or bool(parse.ambiguous)


def _digression(run: Run) -> list[Reply] | None:
    """A question about something else in the middle: answered in full, then the question asked again.
    When the router hesitates between entries, the likeliest is answered (a menu of its own on top of
    the dialog's would make "2" mean two things)."""
    turn = run.turn
    parse = turn.parse
    run.meta["digressed"] = compact(turn.text)  # said again at this question, it is an answer (_is_digression)
    run.save(turn.state.step)
    known = [c for c in (parse.ambiguous if parse else ()) if c.entry_id and c.entry_id in turn.kb.entries]
    top = next((c for c in known if c.topic in run.dialog.topics), known[0] if known else None)
    if top is None:
        return None  # the pipeline routes it; after_digression strips its menu and asks again
    replies = turn.run("policy_entry", entry=top.entry_id)
    run.save(turn.state.step)
    return [_plain(r) for r in replies] + [_resume(run)]


def _plain(reply: Reply) -> Reply:
    return Reply(reply.text, (), reply.footer)


def after_digression(turn: "Turn", replies: list[Reply]) -> list[Reply]:
    """The router answered a digression: drop its menus when the dialog's question has one, then ask again."""
    resume = resume_prompt(turn)
    if resume is None:
        return replies
    if resume.choices:
        replies = [_plain(r) for r in replies]
    return replies + [resume]


def _foreign_menu(run: Run, words: str) -> bool:
    """A bare digit answering a menu that is not this dialog's (a policy answer's 回复 1 看详细)."""
    menu = (run.turn.state.context or {}).get("menu") or []
    return words.isdigit() and len(words) <= 2 and bool(menu) and not any("dialog_answer" in (c.get("action") or {}) for c in menu)


def _answer(run: Run, slot: Slot) -> list[Reply] | None:
    turn = run.turn
    said = turn.text or ""
    words = compact(said)
    answer = _digit_option(run, slot, words)
    if answer is None and _foreign_menu(run, words):
        return None
    if answer is None and asks_why(said):  # 要名字干啥子嘛: told why (the slot's `why`), then asked again
        run.save(slot.name)
        node = _node(turn, slot.texts)
        return [_ask(run, slot.name, str(node.get("why") or text(turn, "common.why_asked")))]
    if answer is None:
        # "不对，是成都，不是重庆" while the pay is asked: it corrects the slot it names, and the
        # question is asked again.
        if CORRECTION.search(said):
            fixed = _correct_other(run, slot, said)
            if fixed is not None:
                return fixed
            said = _last_value(run, slot, _own_words(said))
        # "欠了我三千五" to "活是在哪里干的？": a fact of another slot, not this free answer.
        other = _other_fact(run, slot, said) if slot.free_text else None
        if other is not None:
            filled, corrected = other
            run.save(slot.name)
            return [_ask(run, slot.name, _noted(run, filled, corrected))]
        answer = said
    if slot.optional and words in SKIP_WORDS:
        value = None
    else:
        try:
            value = _parse(run, slot, answer)
        except Invalid as exc:
            if not (slot.optional and _says_skip(said)):
                return _not_an_answer(run, slot, exc)
            value = None  # 看情况 跳过: a skip in more words, not a question for the router
        else:
            if slot.free_text:  # any text parses there, so a confident command or question still wins
                command = _command(run)
                if command is not None:
                    return command
                if _is_digression(run, slot):
                    return _digression(run)
            elif looks_like_question(said) and _is_digression(run, slot) and not _answered_beside(run, slot, said):
                # 在外地遇到事情找哪个哦 to "想在哪里做？": a question about something else (外地 is not the answer)
                return _digression(run)
    value = _settled_on(run, slot, answer, value)
    run.slots[slot.name] = value
    history = [n for n in run.meta.get("history", []) if n != slot.name]
    run.meta["history"] = history + [slot.name]
    filled = _rest_of_answer(run, slot, answer)
    if slot.free_text and filled and isinstance(value, str):
        run.slots[slot.name] = _without_facts(run, value, filled)
    return _advance(run, _noted(run, filled))


def _answered_beside(run: Run, slot: Slot, said: str) -> bool:
    """Whether the clauses of a message that are not questions answer the question (县城吧，包不包吃住？)."""
    kept = "，".join(c for c in CLAUSES.split(said) if compact(c) and not looks_like_question(c))
    return bool(kept) and _accepts(run, slot, kept)


def _without_facts(run: Run, value: str, filled: list[Slot]) -> str:
    """A free answer that also gave other slots' values (包工头姓杨 一共欠了两万三 to "哪个老板？"): the
    clauses that say nothing but those values are theirs, not this answer's."""
    clauses = [c for c in CLAUSES.split(value) if compact(c)]
    kept = []
    for clause in clauses:
        founds = [f for f in (_extract(run, s, clause) for s in filled) if f is not None]
        if not (founds and only_this(clause, *founds)):
            kept.append(clause)
    rest = " ".join(kept)
    return rest if kept and len(kept) < len(clauses) and len(compact(rest)) >= 2 else value


MANY_OPTIONS = 3  # a choice among this many (not a yes/no, where 可以，不要太远 is still a yes)


def _settled_on(run: Run, slot: Slot, answer: str, value: Any) -> Any:
    """小灶班或者网络班都行，网络班吧: of the options an answer names, the one its last clause settles on."""
    if slot.free_text or len(run.options(slot)) < MANY_OPTIONS:
        return value
    clauses = [c for c in CLAUSES.split(answer) if compact(c)]
    if len(clauses) < 2:
        return value
    try:
        return _parse(run, slot, clauses[-1])
    except Invalid:
        return value


def _says_skip(said: str) -> bool:
    """An answer the question's parser cannot read that says, among other words, that there is nothing to
    give (看情况 跳过, 这个没有): the optional question is skipped."""
    words = compact(said)
    return not looks_like_question(said) and any(w in words for w in SKIP_WORDS if len(w) >= 2)


SHORT_ANSWER = 5  # characters: an answer this short answers the question and says nothing else (农闲 → the format)


def _rest_of_answer(run: Run, slot: Slot, answer: str) -> list[Slot]:
    """Facts said along with the answer (成都，工资要五千以上): kept, and not asked."""
    rest = answer
    own = _extract(run, slot, answer)
    for span in own.spans if own is not None else ():
        rest = rest.replace(span, " ")
    narrowed = []
    for other in run.dialog.slots:
        if other is slot or other.narrows is None or run.slots.get(other.name) is None:
            continue
        found = _extract(run, other, rest)
        if found is not None and other.narrows(run.slots[other.name], found.value, run.context(other)):
            run.slots[other.name] = found.value
            narrowed.append(other)
    if len(compact(rest)) <= SHORT_ANSWER:
        return narrowed
    filled, _ = _harvest(run, rest, skip=slot)
    return filled + narrowed


def _own_words(said: str) -> str:
    """An answer that corrects itself (江口镇，哦不对，是驷马镇) means what follows the correction."""
    tail = after_correction(said)
    return without_negated(tail) if tail and compact(tail) else without_negated(said)


def _last_value(run: Run, slot: Slot, said: str) -> str:
    """Of an answer that changes its mind more than once (网络班，哦不对，流动班，算了还是网络班), the
    last clause that answers the question."""
    if slot.free_text:
        return said
    for clause in reversed([c for c in CLAUSES.split(said) if compact(c)]):
        try:
            _parse(run, slot, clause)
        except Invalid:
            continue
        return clause
    return said


def _other_fact(run: Run, slot: Slot, said: str) -> tuple[list[Slot], list[Slot]] | None:
    """When the message is nothing but other slots' values (and this slot's extractor finds nothing),
    those slots get them: 我们八个人一共被欠了六万多 to "哪个老板？" is a head count and an amount."""
    if _extract(run, slot, said) is not None:
        return None
    founds: list[tuple[Slot, Found]] = []
    for other in run.dialog.slots:
        if other is slot or other.extract is None or not run.hears(other):
            continue
        found = _extract(run, other, said)
        if found is not None and found.spans:
            founds.append((other, found))
    if not founds or not only_this(said, *(f for _s, f in founds)):
        return None
    if all(run.slots.get(other.name) == found.value for other, found in founds):
        return None  # 美团 to "哪个公司？" after 送外卖: nothing new, so it answers this question
    filled: list[Slot] = []
    corrected: list[Slot] = []
    for other, found in founds:
        if other.name in run.slots and run.slots[other.name] == found.value:
            filled.append(other)
            continue
        (corrected if other.name in run.slots else filled).append(other)
        run.slots[other.name] = found.value
        run.meta["history"] = [n for n in run.meta.get("history", []) if n != other.name] + [other.name]
    return filled, corrected


def _not_an_answer(run: Run, slot: Slot, exc: Invalid) -> list[Reply] | None:
    """The question's parser cannot use the message: other facts in it, a command, a digression, or a
    failed answer — in that order."""
    turn = run.turn
    if not exc.counts:
        return _failed(run, slot, exc)
    filled, _ = _harvest(run, turn.text or "", skip=slot)
    if filled:
        run.save(slot.name)
        return [_ask(run, slot.name, _noted(run, filled))]
    command = _command(run)
    if command is not None:
        return command
    if _about_this_question(run, slot):  # 照片咋个发 at the photos: how to answer, told again
        run.save(slot.name)
        return [_ask(run, slot.name, key="explain" if "explain" in _node(turn, slot.texts) else "reask")]
    if _is_digression(run, slot):
        return _digression(run)
    return _failed(run, slot, exc)


def _about_this_question(run: Run, slot: Slot) -> bool:
    """A question naming what is being asked (its label or an alias: 照片咋个发 to the photos question) that the
    router answers with a topic foreign to this dialog is about answering the question, not a digression."""
    said, parse = run.turn.text or "", run.turn.parse
    if not looks_like_question(said) or parse is None or parse.topic in run.dialog.topics:
        return False
    node = _node(run.turn, slot.texts)
    words = compact(said)
    return any(alias and alias in words for alias in (node["label"], *(node.get("aliases") or ())))


def _command(run: Run) -> list[Reply] | None:
    """A confident parse of a command the question's parser could not use: a soft opt-out is asked
    about once; a request for a person is recorded and the dialog kept."""
    parse = run.turn.parse
    slot = run.dialog.slot(run.turn.state.step or "")
    # a correction (名字打错了，是王晓明) is never an opt-out, however the router reads it
    soft_opt_out = not run.meta.get("kept_notices") and not (slot is not None and slot.free_text) \
        and not CORRECTION.search(run.turn.text or "") and compact(run.turn.text) not in BARE_NO
    if parse is not None and parse.intent == "unsubscribe" and parse.confidence >= DIGRESSION_CONFIDENCE and soft_opt_out:
        return _unsubscribe_check(run)
    if parse is not None and parse.intent == "human_handoff" and parse.confidence >= HANDOFF_CONFIDENCE:
        return _handoff(run)
    return None


_NAMED_LEAD = re.compile(r"^(应该是|就是|是|改成|改为|为|要)")


def _correction(run: Run, said: str, *, exclude: Slot | None = None) -> tuple[Slot, Any] | tuple[Slot, None] | None:
    """The answered slot a correction is about, and its new value (None when named but not given).

    The slot named (电话打错了 → a slot labelled 电话) whose value type fits the new value; else the
    answered slot whose extractor finds a different value in the corrected words."""
    tail = after_correction(said)
    corrected = without_negated(tail if tail and compact(tail) else said)
    words = compact(said)
    named = []
    for slot in run.dialog.slots:
        if slot.name not in run.slots or slot is exclude:
            continue
        node = _node(run.turn, slot.texts)
        aliases = [a for a in (node["label"], *(node.get("aliases") or ())) if a and a in words]
        if aliases:
            named.append((max(len(a) for a in aliases), slot, max(aliases, key=len)))
    named.sort(key=lambda item: -item[0])
    fitting = []
    for _length, slot, alias in named:
        rest = corrected if tail else _strip_edit_words(compact(corrected).replace(alias, "", 1))  # 不是网络班 is not the value
        if tail and compact(corrected).startswith(alias):  # 不对 时间是三月份: the value is 三月份
            rest = _NAMED_LEAD.sub("", compact(corrected)[len(alias):], count=1)
        try:
            value = _parse(run, slot, rest) if compact(rest) else None
        except Invalid:
            continue
        if value is not None:
            fitting.append((slot, value))
    if fitting:
        # an ID number slot is not where a phone goes (电话打错了 with the ID number kept)
        same_kind = [(s, v) for s, v in fitting if _same_kind(run.slots.get(s.name), v)]
        if same_kind:
            return same_kind[0]
        target, value = fitting[0]
        beside = _slot_for_kind(run, corrected if tail else _strip_edit_words(words), value, exclude=target)
        return (beside, value) if beside is not None else (target, value)
    changed = []
    for slot in run.dialog.slots:
        if slot.name not in run.slots or slot is exclude or slot.extract is None:
            continue
        found = _extract(run, slot, corrected)
        if found is not None and found.value != run.slots[slot.name] and _same_kind(run.slots[slot.name], found.value):
            changed.append((slot, found.value))
    if changed:
        # 不是重庆: the slot that holds what is ruled out is the one corrected
        ruled_out = [m.group(2) for m in NEGATED.finditer(said)]
        holding = [(s, value) for s, value in changed
                   if run.slots[s.name] is not None and any(w in str(s.show(run.slots[s.name])) for w in ruled_out)]
        return (holding or changed)[0]
    if named:
        return named[0][1], None
    return None


def _slot_for_kind(run: Run, said: str, value: Any, *, exclude: Slot) -> Slot | None:
    """Another slot of the dialog for a value of this kind (a phone besides the ID number), empty or
    holding the same kind, so that a correction never overwrites a value of another kind."""
    for slot in run.dialog.slots:
        if slot is exclude or not _same_kind(run.slots.get(slot.name), value):
            continue
        try:
            found = _parse(run, slot, said)
        except Invalid:
            continue
        if _same_kind(found, value) and isinstance(found, dict) and "kind" in found:
            return slot
    return None


def _replace(run: Run, slot: Slot, value: Any) -> None:
    """Store a corrected value; one of another kind (an ID number sent where a phone was: 身份证号也留一个 …)
    moves the value it replaces to the empty slot for that kind (the phone besides), never losing it."""
    old = run.slots.get(slot.name)
    run.slots[slot.name] = value
    if not isinstance(old, dict) or "enc" not in old or _same_kind(old, value):
        return
    beside = _slot_for_kind(run, reveal(old, run.turn.settings.data_key), old, exclude=slot)
    if beside is not None and beside.name not in run.slots:
        run.slots[beside.name] = old


def _same_kind(old: Any, new: Any) -> bool:
    if isinstance(old, dict) and isinstance(new, dict) and "kind" in old and "kind" in new:
        return old["kind"] == new["kind"]
    return True


def _strip_edit_words(rest: str) -> str:
    for word in sorted(EDIT_WORDS + ("一下", "我的", "成", "为", "是", "应该", "要"), key=len, reverse=True):
        rest = rest.replace(word, "")
    return rest


def _correct_other(run: Run, slot: Slot, said: str) -> list[Reply] | None:
    """A correction of an earlier answer while another question is pending: applied, the question asked again."""
    found = _correction(run, said, exclude=slot)
    if found is None or found[1] is None:
        return None
    target, value = found
    _replace(run, target, value)
    run.save(slot.name)
    return [_ask(run, slot.name, _noted(run, [], [target]))]


def _failed(run: Run, slot: Slot, exc: Invalid) -> list[Reply]:
    node = _node(run.turn, slot.texts)
    if not exc.counts:
        run.save(slot.name)
        return [_ask(run, slot.name, key=exc.key or "reask")]
    run.meta["fails"] = int(run.meta.get("fails", 0)) + 1
    own = _own_words_value(run, slot)
    if own is not None:
        run.slots[slot.name] = own
        run.meta["history"] = [n for n in run.meta.get("history", []) if n != slot.name] + [slot.name]
        return _advance(run, text(run.turn, "common.own_words", label=_label(run, slot), value=slot.show(own)))
    if run.meta["fails"] >= MAX_FAILURES:
        run.meta["offer"] = "handoff"
        run.meta["fails"] = 0
        run.save(slot.name)
        labels = text(run.turn, "common.handoff_choices").split("|")
        choices = (Choice(labels[0], {"intent": "human_handoff"}),
                   Choice(labels[1], {"intent": run.dialog.intent or "help", "dialog_answer": "continue"}))
        return [Reply(text(run.turn, "common.handoff_offer", label=_label(run, slot)), choices)]
    run.save(slot.name)
    key = exc.key if exc.key and exc.key in node else "reask"
    return [_ask(run, slot.name, key=key)]


OWN_WORDS_LONGEST = 16  # characters


def _own_words_value(run: Run, slot: Slot) -> str | None:
    """The person's words as the value, when the slot takes them after so many tries and they read as a
    short statement of a thing (not a question, not 不晓得, not digits)."""
    said = compact(run.turn.text)
    if not slot.own_words_after or run.meta["fails"] < slot.own_words_after:
        return None
    hans = sum("\u4e00" <= ch <= "\u9fff" for ch in said)
    if not 2 <= len(said) <= OWN_WORDS_LONGEST or hans < 2 or said in SKIP_WORDS or looks_like_question(run.turn.text):
        return None
    return slot.from_own_words(said)


def _back(run: Run) -> list[Reply]:
    history = list(run.meta.get("history") or [])
    current = run.turn.state.step
    if current not in (CONFIRM, EDIT) and current in history:
        history.remove(current)
    if not history:
        run.save(current)
        return [_ask(run, current, text(run.turn, "common.back_first"))]
    previous = history.pop()
    run.slots.pop(previous, None)
    run.meta["history"] = history
    run.meta["fails"] = 0
    run.save(previous)
    return [_ask(run, previous)]


def _expired(run: Run) -> bool:
    at = run.meta.get("at")
    if not at:
        return False
    timeout = timedelta(minutes=run.turn.settings.dialog_timeout_minutes)
    return utcnow() - datetime.fromisoformat(at) > timeout


def _pause_offer(run: Run) -> Reply:
    labels = text(run.turn, "common.paused_choices").split("|")
    intent = run.dialog.intent or "help"
    choices = tuple(Choice(label, {"intent": intent, "dialog_answer": label}) for label in labels)
    return Reply(text(run.turn, "common.paused", title=text(run.turn, f"{run.dialog.name}.title")), choices)


def _paused(run: Run, words: str) -> list[Reply] | None:
    step = run.turn.state.step
    if run.meta.get("paused"):
        if any(words.startswith(w) for w in CONTINUE_WORDS):
            run.meta["paused"] = False
            run.save(step)
            return [_ask(run, step)]
        if any(words.startswith(w) for w in RESTART_WORDS):
            run.slots, run.meta = {}, {"history": [], "fails": 0, "opened": run.meta.get("opened")}
            if run.dialog.prepare is not None:
                run.dialog.prepare(run)
            return _advance(run, run.text("start"))
    run.meta["paused"] = True
    run.save(step)
    if _is_digression(run, None):
        return None
    return [_pause_offer(run)]


def _media(run: Run) -> list[Reply]:
    turn = run.turn
    collects = run.dialog.on_media is not None
    if collects and turn.message.kind == "image" and turn.message.media_id:
        media = list(run.meta.get("media") or [])
        if turn.message.media_id not in media:
            media.append(turn.message.media_id)
        run.meta["media"] = media
        run.save(turn.state.step)
        return [_ask(run, turn.state.step, text(turn, "common.evidence_ack", count=len(media)))]
    run.save(turn.state.step)
    return [_ask(run, turn.state.step, text(turn, "common.media_ack"))]


# ---- confirmation and edits --------------------------------------------------------------------


def _confirmation(run: Run, lead: str = "") -> Reply:
    lines = []
    for slot in run.dialog.slots:
        if slot.name not in run.slots:
            continue
        value = run.slots[slot.name]
        shown = text(run.turn, "common.not_filled") if value is None else slot.show(value)
        if shown:
            lines.append(f"{_label(run, slot)}：{shown}")
    if run.meta.get("media"):
        lines.append(text(run.turn, "common.media_count", count=len(run.meta["media"])))
    labels = text(run.turn, "common.confirm_choices").split("|")
    intent = run.dialog.intent or "help"
    choices = tuple(Choice(label, {"intent": intent, "dialog_answer": label}) for label in labels)
    body = text(run.turn, "common.confirm", title=text(run.turn, f"{run.dialog.name}.title"), summary="\n".join(lines))
    return Reply(lead + body, choices)


def _edit(run: Run, slot: Slot, value: Any = None) -> list[Reply]:
    """Change one answer: with its new value, read back again; else ask for that slot only."""
    if value is not None:
        _replace(run, slot, value)
        filled = [s for s in run.dialog.slots if s.name not in run.slots and run.asks(s)]
        return _advance(run, "" if filled else _noted(run, [], [slot]))
    run.slots.pop(slot.name, None)
    run.meta["fails"] = 0
    run.save(slot.name)
    return [_ask(run, slot.name, text(run.turn, "common.edit_again", label=_label(run, slot)))]


def _confirm(run: Run, words: str) -> list[Reply] | None:
    labels = text(run.turn, "common.confirm_choices").split("|")
    if words in ("1", labels[0]) or words in CONFIRM_WORDS:
        replies = run.dialog.complete(run)
        return replies
    said = run.turn.text or ""
    if looks_like_question(said) and not CORRECTION.search(said) and _is_digression(run, None):
        return _digression(run)
    found = _correction(run, said)
    if found is None:
        command = _command(run)
        if command is not None:
            return command
    if found is not None:
        return _edit(run, *found)
    if words in ("2", labels[1]) or words in EDIT_WORDS:
        run.save(EDIT)
        return [_edit_menu(run)]
    if words in ("3", labels[2]):
        finish(run.turn)
        return [Reply(text(run.turn, "common.cancelled", title=run.text("title")))]
    if _foreign_menu(run, words):
        return None
    if _is_digression(run, None):
        return _digression(run)
    run.save(CONFIRM)
    return [_confirmation(run, text(run.turn, "common.confirm_reask"))]


def _edit_menu(run: Run) -> Reply:
    asked = [s for s in run.dialog.slots if s.name in run.slots]
    intent = run.dialog.intent or "help"
    choices = tuple(Choice(_label(run, s), {"intent": intent, "dialog_answer": s.name}) for s in asked)
    return Reply(text(run.turn, "common.edit_which"), choices)


def _pick_edit(run: Run, words: str) -> list[Reply] | None:
    asked = [s for s in run.dialog.slots if s.name in run.slots]
    if words.isdigit() and 1 <= int(words) <= len(asked):
        return _edit(run, asked[int(words) - 1])
    found = _correction(run, run.turn.text or "")
    if found is not None:
        return _edit(run, *found)
    if words in CONFIRM_WORDS or words in ("不改", "不改了", "没有"):
        return _advance(run)
    if _is_digression(run, None):
        return _digression(run)
    return [_edit_menu(run)]
