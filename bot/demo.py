"""Demo data for the embedded default: loaded into an empty database when GONGYOU_DEMO_DATA is on.

A few hundred synthetic labourers across Bazhong's five counties, with checksummed test ID numbers and
mobile numbers, stored protected like real ones, and some of them on each of the five lists; and three
upcoming events (a Lishui job fair, two training classes), so "招聘会好久开" and sign-up can be tried at
once. Every demo event's title starts with 【演示】: nobody should take one for a real date. The same
seed gives the same people every time; a registry that already has anyone is left alone.

Ages are those of working labourers (18 to 60); each county carries its own region code.
"""

from __future__ import annotations

import logging
import random
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from stdnum.cn import ric

from bot import pii
from bot.db import session_scope
from bot.models import Event, JobWish, Labourer, TrainingNeed, WorkingAway, utcnow

if TYPE_CHECKING:
    from bot.conversation import Services

log = logging.getLogger(__name__)

SEED = 20190122  # the date of the seed document
DEMO_SIZE = 300
ID_REGION = {"巴州区": "511902", "恩阳区": "511903", "通江县": "511921", "南江县": "511922", "平昌县": "511923"}
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = "秀英桂兰玉兰国强建华志强红梅小明小红德华春花明亮永福光荣家贵文华海燕晓东大山福林树林兴旺金凤翠花国富子豪雨涵浩然思雨俊杰欣怡"
MOBILE_PREFIXES = ("138", "139", "150", "151", "152", "157", "158", "159", "182", "187", "188", "135", "136", "137")
STATUSES = ("unemployed", "local", "working_away", "self_employed", "unknown")
FORMATS = ("农闲班", "流动班", "小灶班", "网络班", "补习班", None)
SCOPES = ("本地", "县内", "市内", "省内", "省外")


def demo_id_number(rng: random.Random, county: str, used: set[str]) -> str:
    while True:
        born = date(1966, 1, 1) + timedelta(days=rng.randrange(0, 42 * 365))
        body = f"{ID_REGION[county]}{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
        number = body + ric.calc_check_digit(body + "0")  # stdnum wants a placeholder check digit
        if number not in used:
            used.add(number)
            return number


def demo_phone(rng: random.Random, used: set[str]) -> str:
    while True:
        number = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(0, 10**8):08d}"
        if number not in used:
            used.add(number)
            return number


def demo_name(rng: random.Random) -> str:
    given = GIVEN[rng.randrange(0, len(GIVEN) // 2) * 2:][:2]
    return rng.choice(SURNAMES) + (given if rng.random() < 0.8 else given[0])


def demo_labourers(kb: Any, data_key: str, size: int = DEMO_SIZE) -> list[dict[str, Any]]:
    """The rows of the demo registry (deterministic for a given size)."""
    rng = random.Random(SEED)
    counties = [c for c in (kb.regions or {}).get("counties") or [] if c["name"] in ID_REGION]
    if not counties:  # a knowledge directory without regions: counties only
        counties = [{"name": name, "townships": []} for name in ID_REGION]
    used_ids: set[str] = set()
    used_phones: set[str] = set()
    now = utcnow()
    out = []
    for _ in range(size):
        county = rng.choice(counties)
        town = rng.choice(county["townships"]) if county["townships"] else None
        villages = (town or {}).get("villages") or []
        village = rng.choice(villages) if villages else None
        id_number = demo_id_number(rng, county["name"], used_ids)
        phone = demo_phone(rng, used_phones)
        protected_id = pii.protect_id_number(id_number, data_key)
        protected_phone = pii.protect_phone(phone, data_key)
        out.append({
            "name": demo_name(rng),
            "id_number_enc": protected_id.encrypted, "id_number_hash": protected_id.lookup_hash,
            "id_number_masked": protected_id.masked,
            "phone_enc": protected_phone.encrypted, "phone_hash": protected_phone.lookup_hash,
            "phone_masked": protected_phone.masked,
            "gender": pii.id_gender(id_number), "birth_date": pii.id_birth_date(id_number),
            "county": county["name"], "township": town["name"] if town else None,
            "village": village if isinstance(village, str) or village is None else village["name"],
            "household_status": "registered_poor" if rng.random() < 0.7 else "general",
            "employment_status": rng.choice(STATUSES),
            "subscribed_wechat": True, "subscribed_sms": rng.random() < 0.95,
            "wants_startup": rng.random() < 0.08, "public_welfare_post": rng.random() < 0.1,
            "source": "roster", "verified": True, "created_at": now, "updated_at": now,
        })
    return out


def load_demo_data(services: "Services") -> None:
    """Idempotent: does nothing when the registry already has people.

    `gongyou serve --workers N` starts N processes that all find the fresh database empty at once: the
    whole load is one transaction, so the first to commit wins, and the others' inserts of the same
    people (the ID number's look-up hash is unique) fail and roll back everything they wrote."""
    kb, data_key = services.kb, services.settings.data_key
    try:
        with session_scope(services.sessionmaker) as session:
            if session.scalar(select(func.count()).select_from(Labourer)):
                return
            people = demo_labourers(kb, data_key)
            session.execute(insert(Labourer), people)
            ids = list(session.scalars(select(Labourer.id).order_by(Labourer.id)))
            _demo_lists(session, kb, ids, people)
            session.add_all(demo_events(services.settings.timezone))
    except IntegrityError:
        log.info("demo data loaded by another process")
        return
    log.info("demo data loaded", extra={"labourers": len(people)})


def demo_events(tz: str, today: date | None = None) -> list[Event]:
    """Three events in the coming weeks, at 09:00 local time; no numbers or employers the seed does not give."""
    today = today or datetime.now(ZoneInfo(tz)).date()

    def at(days: int) -> datetime:
        return datetime.combine(today + timedelta(days=days), time(9), tzinfo=ZoneInfo(tz))

    return [
        Event(kind="job_fair", title="【演示】巴中—丽水东西部劳务协作专场招聘会", organiser="巴中市人力资源和社会保障局",
              starts_at=at(12), ends_at=at(12) + timedelta(hours=3), venue="巴州区人力资源市场", county="巴州区"),
        Event(kind="training", title="【演示】电工农闲班", training_type="电工", training_format="农闲班",
              starts_at=at(20), venue="清江镇就业扶贫站", county="巴州区", township="清江镇", capacity=30),
        Event(kind="training", title="【演示】中式烹调小灶班", training_type="中式烹调", training_format="小灶班",
              starts_at=at(27), venue="曾口镇便民服务中心", county="巴州区", township="曾口镇", capacity=15),
    ]


def _demo_lists(session: Any, kb: Any, ids: list[int], people: list[dict[str, Any]]) -> None:
    rng = random.Random(SEED + 1)
    trainings = [t.name for t in kb.training_types] or ["焊工"]
    jobs = [j.name for j in kb.job_types] or ["普工"]
    destinations = [d["name"] for d in (kb.regions or {}).get("destinations") or []] or ["丽水"]
    now = utcnow()
    needs, wishes, away = [], [], []
    for labourer_id, person in zip(ids, people):
        roll = rng.random()
        if roll < 0.3:
            needs.append({"labourer_id": labourer_id, "training_type": rng.choice(trainings),
                          "preferred_format": rng.choice(FORMATS), "available_from": "农闲时",
                          "township": person["township"], "status": "open", "channel": "roster",
                          "created_at": now, "updated_at": now})
        elif roll < 0.6:
            wishes.append({"labourer_id": labourer_id, "job_type": rng.choice(jobs), "place_scope": rng.choice(SCOPES),
                           "min_monthly_pay": rng.choice((2500, 3000, 3500, 4000, 5000, 6000)),
                           "accepts_public_welfare": rng.random() < 0.4, "accepts_home_based": rng.random() < 0.3,
                           "status": "open", "channel": "roster", "created_at": now, "updated_at": now})
        if person["employment_status"] == "working_away":
            away.append({"labourer_id": labourer_id, "place": rng.choice(destinations), "job_type": rng.choice(jobs),
                         "channel": "roster", "created_at": now})
    for model, batch in ((TrainingNeed, needs), (JobWish, wishes), (WorkingAway, away)):
        if batch:
            session.execute(insert(model), batch)
