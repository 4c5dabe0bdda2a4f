"""Officials edit the knowledge from the console and the API: stored over the files, checked like them, live at
once without a restart (and in another process at its next look), diffable and revertible, audited; "试一试"
answers exactly as a labourer is answered, against the live knowledge or a draft, writing nothing; the
messages the bot could not answer are grouped and one click turns one into a question of an entry."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.app import compose
from bot.db import make_engine, make_sessionmaker, session_scope
from bot.models import AuditLog, ConversationState, KnowledgeRevision, Labourer, MessageLog, utcnow

from test_console import csrf_of, login

QUESTION = "公益性岗位有哪几种"


def _entry_form(services, entry_id: str, **changes) -> dict[str, str]:  # noqa: ANN001
    entry = services.kb.entries[entry_id]
    form = {"topic": entry.topic, "title": entry.title, "questions": "\n".join(entry.questions),
            "answer": entry.answer, "detail": entry.detail, "source": entry.source}
    form.update(changes)
    return form


def _count(app, model, *where) -> int:  # noqa: ANN001
    with session_scope(app.state.sessionmaker) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_an_edited_answer_is_live_at_once_and_a_broken_one_is_refused_with_the_reason(client, app, make_staff, say):
    make_staff("kb-official", "official", [{"county": "平昌县"}])
    login(client, "kb-official")
    services = app.state.services
    entry_id = services.router.parse(QUESTION).entry_id
    before = say(QUESTION)[0]

    token = csrf_of(client, f"/console/knowledge/entries/{entry_id}")
    saved = client.post(f"/console/knowledge/entries/{entry_id}", follow_redirects=True, data={
        **_entry_form(services, entry_id, answer="【改】护林员、保洁员、道路养护，空岗问村协理员。"),
        "note": "写短一点", "csrf_token": token})
    assert saved.status_code == 200 and "已保存，已生效" in saved.text
    assert say(QUESTION)[0].startswith("【改】护林员") and not before.startswith("【改】")

    too_long = client.post(f"/console/knowledge/entries/{entry_id}", data={
        **_entry_form(services, entry_id, answer="很长的回答" * 40), "csrf_token": token})
    assert too_long.status_code == 422
    assert "简短回答有 200 个字，超过了一条短信能放的 140 个字" in too_long.text
    assert say(QUESTION)[0].startswith("【改】护林员")  # nothing stored, the live version keeps answering
    assert _count(app, KnowledgeRevision) == 1

    with session_scope(app.state.sessionmaker) as session:
        revision = session.scalars(select(KnowledgeRevision)).one()
        assert (revision.author, revision.kind, revision.key, revision.note) == ("kb-official", "entry", entry_id, "写短一点")
        audited = session.scalars(select(AuditLog).where(AuditLog.action == "knowledge_changed")).one()
        assert audited.object_id == f"entry:{entry_id}" and audited.actor == "kb-official"


def test_history_shows_the_diff_and_a_revert_brings_the_default_back(client, app, make_staff, say):
    make_staff("kb-admin", "admin")
    login(client, "kb-admin")
    services = app.state.services
    entry_id = services.router.parse(QUESTION).entry_id
    original = say(QUESTION)[0]
    token = csrf_of(client, "/console/knowledge")
    client.post(f"/console/knowledge/entries/{entry_id}", data={
        **_entry_form(services, entry_id, answer="第一版：护林员。"), "csrf_token": token})
    client.post(f"/console/knowledge/entries/{entry_id}", data={
        **_entry_form(services, entry_id, answer="第二版：护林员、保洁员。",
                      questions="\n".join([*services.kb.entries[entry_id].questions, "村上扫地的岗位叫啥"])),
        "csrf_token": token})
    history = client.get("/console/knowledge/history")
    assert "<ins>二</ins>" in history.text and "<del>一</del>" in history.text
    assert "<ins>村上扫地的岗位叫啥</ins>" in history.text

    with session_scope(app.state.sessionmaker) as session:
        first, second = session.scalars(select(KnowledgeRevision.id).order_by(KnowledgeRevision.id)).all()
    undone = client.post(f"/console/knowledge/revisions/{second}/revert", data={"csrf_token": token})
    assert undone.status_code == 200 and f"已撤销第 {second} 号修改" in undone.text
    assert say(QUESTION)[0].startswith("第一版")
    client.post(f"/console/knowledge/revisions/{first}/revert", data={"csrf_token": token})
    assert say(QUESTION)[0] == original  # back to the packaged file, which never changed
    assert _count(app, AuditLog, AuditLog.action == "knowledge_reverted") == 2


def test_a_new_entry_a_text_and_a_catalogue_item(client, app, make_staff, say):
    make_staff("kb-admin", "admin")
    login(client, "kb-admin")
    token = csrf_of(client, "/console/knowledge")
    made = client.post("/console/knowledge/entries/new", follow_redirects=False, data={
        "topic": "village_service", "title": "村上的快递代收点", "questions": "村上有没有快递代收点\n快递寄到村里哪里取",
        "answer": "村便民服务站可以代收快递，具体问村劳动保障协理员。", "csrf_token": token})
    assert made.status_code == 303 and made.headers["location"].startswith("/console/knowledge/entries/village_service_")
    assert "村便民服务站可以代收快递" in say("快递寄到村里哪里取")[0]

    refused = client.post("/console/knowledge/texts", data={"key": "texts:handoff_ok", "text": "已转人工 {编号}",
                                                            "csrf_token": token})
    assert refused.status_code == 422 and "{编号}" in refused.text and "{id}" in refused.text
    changed = client.post("/console/knowledge/texts", data={"key": "texts:out_of_scope",
                                                            "text": "这个我还不会，换个说法试试？", "csrf_token": token})
    assert changed.status_code == 200 and "已生效" in changed.text
    assert say("今天天气怎么样")[0].startswith("这个我还不会")

    item = client.post("/console/knowledge/catalogues", data={
        "catalogue": "training_types", "name": "无人机飞手", "category": "农业", "aliases": "飞无人机、打药飞机",
        "csrf_token": token})
    assert item.status_code == 200 and "无人机飞手" in item.text
    kb = app.state.services.kb
    assert any(i.name == "无人机飞手" and "打药飞机" in i.aliases for i in kb.training_types)


def test_try_it_answers_as_a_labourer_would_live_and_with_the_draft_and_writes_nothing(client, app, make_staff):
    make_staff("kb-official", "official", [{"county": "平昌县"}])
    login(client, "kb-official")
    services = app.state.services
    entry_id = services.router.parse(QUESTION).entry_id
    token = csrf_of(client, f"/console/knowledge/entries/{entry_id}")
    messages = _count(app, MessageLog)
    states = _count(app, ConversationState)
    result = client.post("/console/knowledge/try", headers={"HX-Request": "true", "X-CSRF-Token": token}, data={
        "text": QUESTION, "draft_kind": "entry", "draft_key": entry_id,
        **_entry_form(services, entry_id, answer="草稿里的回答：护林员。")})
    assert result.status_code == 200
    live, draft = result.text.split('data-which="draft"')
    assert "问政策" in live and services.kb.entries[entry_id].title in live
    assert services.kb.entries[entry_id].answer[:20] in live and "草稿里的回答" not in live
    assert "草稿里的回答：护林员。" in draft and "【巴中就业扶贫】草稿里的回答" in draft  # the SMS, signature first
    assert "命中的提示词" in live and "条短信" in live
    # Nothing of the rehearsal is kept, and the draft was not stored.
    assert (_count(app, MessageLog), _count(app, ConversationState), _count(app, KnowledgeRevision)) == (messages, states, 0)

    broken = client.post("/console/knowledge/try", headers={"X-CSRF-Token": token}, data={
        "text": QUESTION, "draft_kind": "entry", "draft_key": entry_id, **_entry_form(services, entry_id, questions="")})
    assert "草稿没有通过检查：至少要有一个问法" in broken.text and 'data-which="live"' in broken.text


def test_the_api_edits_tries_and_reverts(client, app, admin_auth):
    services = app.state.services
    entry_id = services.router.parse(QUESTION).entry_id
    body = {**_entry_form(services, entry_id, answer="接口改的：护林员。")}
    body["questions"] = body["questions"].splitlines()
    tried = client.post("/api/admin/knowledge/try", headers=admin_auth, json={
        "text": QUESTION, "draft_kind": "entry", "draft_key": entry_id, "draft_value": body})
    assert tried.status_code == 200 and tried.json()["wechat"][0].startswith("接口改的")
    assert tried.json()["parse"]["entry_id"] == entry_id and tried.json()["sms"][0]["segments"] == 1
    bad = client.put(f"/api/admin/knowledge/entries/{entry_id}", headers=admin_auth, json={**body, "answer": "长" * 141})
    assert bad.status_code == 422 and bad.json()["detail"]["problem"] == "answer_too_long"
    done = client.put(f"/api/admin/knowledge/entries/{entry_id}", headers=admin_auth, json=body)
    assert done.status_code == 200
    listed = {e["id"]: e for e in client.get("/api/admin/knowledge/entries", headers=admin_auth).json()}
    assert listed[entry_id]["changed"] and listed[entry_id]["answer"] == "接口改的：护林员。"
    assert client.post(f"/api/admin/knowledge/revisions/{done.json()['id']}/revert", headers=admin_auth).status_code == 200
    assert not {e["id"]: e for e in client.get("/api/admin/knowledge/entries", headers=admin_auth).json()}[entry_id]["changed"]
    assert client.put("/api/admin/knowledge/texts/texts:nope", headers=admin_auth,
                      json={"text": "x"}).json()["detail"]["problem"] == "unknown_text"


def test_another_process_picks_the_change_up_at_its_next_look(app, make_settings, admin_auth, client):
    """A dispatcher or scheduler has no watcher thread: its store looks again on first use after the poll."""
    other = compose(make_settings(knowledge_poll_seconds=0.01), make_sessionmaker(make_engine(app.state.settings.database_url)))
    services = app.state.services
    entry_id = services.router.parse(QUESTION).entry_id
    body = {**_entry_form(services, entry_id, answer="另一个进程也看得到。")}
    body["questions"] = body["questions"].splitlines()
    assert client.put(f"/api/admin/knowledge/entries/{entry_id}", headers=admin_auth, json=body).status_code == 200
    import time

    time.sleep(0.02)
    assert other.knowledge.current.kb.entries[entry_id].answer == "另一个进程也看得到。"
    assert other.knowledge.current.version == services.knowledge.current.version


def test_unanswered_messages_are_grouped_and_one_becomes_a_question_in_two_clicks(client, app, make_staff, say):
    make_staff("kb-admin", "admin")
    for user, text in (("u1", "猪儿不吃食要喂啥子药"), ("u2", "猪儿不吃食要喂啥子药？"), ("u3", "猪儿不吃食要喂啥药"),
                       ("u4", "火车票咋个退")):
        say(text, user=user)
    login(client, "kb-admin")
    page = client.get("/console/knowledge/unanswered")
    groups = page.text.split('class="unanswered"')[1:]
    assert len(groups) == 2 and "猪儿不吃食要喂" in groups[0] and ">3<" in groups[0] and "火车票咋个退" in groups[1]

    token = csrf_of(client, "/console/knowledge/unanswered")
    entry_id = "startup_guidance" if "startup_guidance" in app.state.services.kb.entries else \
        next(iter(app.state.services.kb.entries))
    added = client.post("/console/knowledge/unanswered", data={"entry_id": entry_id, "question": "火车票咋个退",
                                                               "csrf_token": token})
    assert added.status_code == 200 and "已把“火车票咋个退”加为" in added.text
    assert "火车票咋个退" in app.state.services.kb.entries[entry_id].questions
    assert app.state.services.router.parse("火车票咋个退").entry_id == entry_id


def test_a_township_official_sees_only_the_unanswered_messages_of_their_area(client, app, make_staff, say):
    say("猪儿不吃食要喂啥子药", user="from-baiyi")
    say("猪儿不吃食要喂啥子药", user="stranger")
    with session_scope(app.state.sessionmaker) as session:
        labourer = Labourer(name="白衣工友", county="平昌县", township="白衣镇", village="长沙村")
        session.add(labourer)
        session.flush()
        state = session.scalars(select(ConversationState).where(ConversationState.user_id == "from-baiyi")).one()
        state.labourer_id = labourer.id
        old = MessageLog(channel="simulator", user_id="from-baiyi", direction="in", text="很久以前没答上的",
                         intent="out_of_scope", confidence=0.9, created_at=utcnow() - timedelta(days=20))
        session.add(old)
    make_staff("baiyi", "official", [{"county": "平昌县", "township": "白衣镇"}])
    make_staff("zengkou", "official", [{"county": "巴州区", "township": "曾口镇"}])
    login(client, "baiyi")
    mine = client.get("/console/knowledge/unanswered")
    assert mine.text.count('class="unanswered"') == 1 and ">1<" in mine.text and "很久以前" not in mine.text
    login(client, "zengkou")
    assert 'class="unanswered"' not in client.get("/console/knowledge/unanswered").text
