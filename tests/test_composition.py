"""One composition point and one knowledge snapshot: a missing part stops the start with its name, and a
knowledge change goes live in the running service (over real HTTP) while a bad one is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from bot.app import compose, create_app
from bot.conversation import Services
from bot.db import make_engine, make_sessionmaker
from bot.dialogs.definitions import DIALOGS
from bot.intents import events, handoff, menu, policy, records, registration, subscription
from bot.settings import default_knowledge_dir
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parent.parent
MODULES = (menu, policy, registration, events, records, subscription, handoff)


@pytest.mark.parametrize("left_out", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_an_intent_module_left_out_stops_the_start_naming_what_is_missing(settings, left_out):
    factory = make_sessionmaker(make_engine(settings.database_url))
    tables = [m.HANDLERS for m in MODULES if m is not left_out]
    with pytest.raises(RuntimeError, match="no intent handler for") as refused:
        Services.build(settings, factory, handlers=tables, dialogs=DIALOGS)
    assert all(name in str(refused.value) for name in left_out.HANDLERS)


def test_a_deleted_intent_module_stops_the_start(tmp_path):
    """As if the file were gone: the composition point imports it by name, so start-up fails loudly."""
    package = tmp_path / "bot"
    shutil.copytree(ROOT / "bot", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "intents" / "records.py").unlink()
    script = ("from bot.app import compose; from bot.settings import Settings; from bot.db import make_sessionmaker,"
              " make_engine; s = Settings(database_url='sqlite://', demo_data=False);"
              " compose(s, make_sessionmaker(make_engine(s.database_url)))")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "GONGYOU_KNOWLEDGE_DIR": str(default_knowledge_dir()),
                               "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode != 0 and "records" in done.stderr


def test_two_handlers_for_one_intent_are_refused(settings):
    factory = make_sessionmaker(make_engine(settings.database_url))
    with pytest.raises(ValueError, match="two handlers"):
        Services.build(settings, factory, handlers=[m.HANDLERS for m in MODULES] + [{"greeting": policy.policy_menu}],
                       dialogs=DIALOGS)


def test_nothing_is_wired_by_importing(settings):
    """Two compositions in one process are independent: neither leaves anything behind for the other."""
    factory = make_sessionmaker(make_engine(settings.database_url))
    bare = Services.build(settings, factory, handlers=[m.HANDLERS for m in MODULES], dialogs=DIALOGS)
    assert bare.pre_route == () and dict(bare.on_logged) == {}
    full = compose(settings, factory)
    assert full.pre_route and "wechat" in full.on_logged
    assert Services.build(settings, factory, handlers=[m.HANDLERS for m in MODULES], dialogs=DIALOGS).pre_route == ()


@pytest.fixture
def knowledge(tmp_path: Path) -> Path:
    folder = tmp_path / "knowledge"
    shutil.copytree(default_knowledge_dir(), folder)
    return folder


def _edit_answer(folder: Path, entry_id: str, answer: str) -> None:
    for path in (folder / "policies").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for entry in doc.get("entries") or []:
            if entry["id"] == entry_id:
                entry["answer"] = answer
                path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
                return
    raise AssertionError(f"no entry {entry_id}")


def _ask(server: LiveServer, text: str) -> str:
    response = httpx.post(f"{server.url}/api/simulator/message", json={"user": "u-knowledge", "text": text}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["replies"][0]["text"]


def _wait_for(predicate, seconds: float = 40.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "the running service did not pick the change up"
        time.sleep(0.1)


def test_a_knowledge_change_goes_live_without_a_restart_and_a_bad_one_is_refused(make_settings, knowledge):
    app = create_app(make_settings(knowledge_dir=knowledge, knowledge_poll_seconds=0.2), configure_logs=False)
    services = app.state.services
    question = "公益性岗位有哪几种"
    entry_id = services.router.parse(question).entry_id
    assert entry_id
    with LiveServer(app) as server:
        before = _ask(server, question)
        first_version = httpx.get(f"{server.url}/health").json()["knowledge_version"]
        _edit_answer(knowledge, entry_id, "【新】护林员、保洁员、水管员，详情问村协理员。")
        _wait_for(lambda: "【新】" in _ask(server, question))
        health = httpx.get(f"{server.url}/health").json()
        assert health["knowledge_version"] != first_version and health["knowledge_error"] is None

        # A change that breaks a check: an answer too long for one SMS. Refused, with the reason; the
        # version that was live keeps answering.
        _edit_answer(knowledge, entry_id, "太长" * 200)
        _wait_for(lambda: httpx.get(f"{server.url}/health").json()["knowledge_error"] is not None)
        health = httpx.get(f"{server.url}/health").json()
        assert "answer is" in health["knowledge_error"] and entry_id in health["knowledge_error"]
        assert "【新】" in _ask(server, question)

        # Dialog texts are part of the same snapshot and the same checks: a good answer with a broken
        # dialog text is refused as a whole.
        _edit_answer(knowledge, entry_id, "【再改】护林员、保洁员。")
        texts = yaml.safe_load((knowledge / "dialogs.yaml").read_text(encoding="utf-8"))
        del texts["register_training"]["slots"]["format"]["reask"]
        (knowledge / "dialogs.yaml").write_text(yaml.safe_dump(texts, allow_unicode=True), encoding="utf-8")
        _wait_for(lambda: "register_training.slots.format.reask" in
                  (httpx.get(f"{server.url}/health").json()["knowledge_error"] or ""))
        assert "【新】" in _ask(server, question)
    assert before != "【新】护林员、保洁员、水管员，详情问村协理员。"
    app.state.engine.dispose()


def test_caches_are_never_read_from_a_folder_others_can_write(tmp_path, monkeypatch):
    from bot.nlu import entities

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("GONGYOU_CACHE_DIR", str(shared))
    planted = shared / "gongyou-planted.pickle"
    planted.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")  # what a hostile pickle looks like
    planted.chmod(0o600)
    assert entities.load_cached("gongyou-planted.pickle") is None
    entities.save_cached("gongyou-new.pickle", {"a": 1})
    assert not (shared / "gongyou-new.pickle").exists()

    private = tmp_path / "private"
    monkeypatch.setenv("GONGYOU_CACHE_DIR", str(private))
    entities.save_cached("gongyou-new.pickle", {"a": 1})
    assert oct(private.stat().st_mode & 0o777) == "0o700"
    assert oct((private / "gongyou-new.pickle").stat().st_mode & 0o777) == "0o600"
    assert entities.load_cached("gongyou-new.pickle") == {"a": 1}
