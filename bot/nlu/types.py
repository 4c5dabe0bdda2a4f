"""What the router returns. The pipeline, the intent handlers and /api/nlu/parse all read this."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

INTENTS = (
    "greeting",
    "help",
    "policy_question",
    "register_training",
    "register_job",
    "rights_complaint",
    "query_events",
    "my_records",
    "subscribe",
    "unsubscribe",
    "human_handoff",
    "out_of_scope",
)

TOPICS = (
    "public_welfare_post",
    "training_subsidy",
    "social_insurance_subsidy",
    "employer_incentive",
    "labour_export",
    "east_west_cooperation",
    "startup_support",
    "poverty_workshop",
    "family_workshop",
    "ecommerce",
    "flexible_employment",
    "rights_protection",
    "village_service",
    "local_employment",
)


@dataclass(frozen=True)
class Entity:
    type: str  # training_type | job_type | place | money | duration | count | phone | id_number | date
    value: Any  # canonical value: catalogue name, yuan as int, {"value": 2, "unit": "month"}, …
    text: str  # the span as written
    start: int = -1
    end: int = -1


@dataclass(frozen=True)
class Candidate:
    intent: str
    confidence: float  # 0..1
    topic: str | None = None
    entry_id: str | None = None


@dataclass(frozen=True)
class Parse:
    text: str
    normalized: str
    intent: str
    confidence: float
    topic: str | None
    entry_id: str | None
    entities: list[Entity] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    ranking: list[Candidate] = field(default_factory=list)
    # Non-empty when the best candidates are too close to pick one: the bot asks "您是想问：1 … 2 …".
    ambiguous: list[Candidate] = field(default_factory=list)
    # out_of_scope only: the neighbouring government business it belongs to (knowledge/referrals.yaml),
    # answered with where to go instead of our policy
    referral: str | None = None

    def entity(self, type_: str) -> Entity | None:
        return next((e for e in self.entities if e.type == type_), None)

    def as_api(self) -> dict[str, Any]:
        """The /api/nlu/parse body (DESIGN.md contract)."""
        return {
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "topic": self.topic,
            "entry_id": self.entry_id,
            "entities": [asdict(e) for e in self.entities],
            "tokens": self.tokens,
            "ranking": [asdict(c) for c in self.ranking],
            "ambiguous": [asdict(c) for c in self.ambiguous],
            "normalized": self.normalized,
            "referral": self.referral,
        }


# The router builds a Parse and five Candidates per message. A frozen dataclass's __init__ sets each
# field through object.__setattr__ (a call per field); filling the new instance's __dict__ directly
# gives the same object — equal, hashable, immutable from then on — for half the cost.
_new = object.__new__


def new_candidate(intent: str, confidence: float, topic: str | None = None,
                  entry_id: str | None = None) -> Candidate:
    """Candidate(intent, confidence, topic, entry_id), built without the dataclass __init__."""
    c = _new(Candidate)
    d = c.__dict__
    d["intent"] = intent
    d["confidence"] = confidence
    d["topic"] = topic
    d["entry_id"] = entry_id
    return c


def new_parse(text: str, normalized: str, intent: str, confidence: float, topic: str | None,
              entry_id: str | None, entities: list[Entity], tokens: list[str], ranking: list[Candidate],
              ambiguous: list[Candidate], referral: str | None = None) -> Parse:
    """Parse(...) with every field given, built without the dataclass __init__."""
    p = _new(Parse)
    p.__dict__.update(text=text, normalized=normalized, intent=intent, confidence=confidence, topic=topic,
                      entry_id=entry_id, entities=entities, tokens=tokens, ranking=ranking, ambiguous=ambiguous,
                      referral=referral)
    return p
