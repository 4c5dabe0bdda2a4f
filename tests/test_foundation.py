"""Foundation: health, settings, migrations, packaging."""

from __future__ import annotations

import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError

from bot.db import make_engine, migrate
from bot.models import Base
from bot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_health_reports_database_and_knowledge(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["database"] in {"sqlite", "postgresql"}
    assert body["knowledge_entries"] >= 14


def test_migrations_match_the_models(db_url):
    """Every model change comes with a migration: the migrated schema equals the models' metadata."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_a_new_database_migrates_without_warnings(tmp_path):
    """The first `gongyou serve` on a fresh machine prints its own lines only, no SQLAlchemy warning
    (SQLite copies a table to alter it, which used to warn of the labourer table's expression indexes)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        migrate(engine)
    engine.dispose()
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "GONGYOU_WECHAT_TOKEN"),
        ({"GONGYOU_DATA_KEY": "k" * 32}, "GONGYOU_WECHAT_TOKEN"),
        ({"GONGYOU_WECHAT_TOKEN": "t"}, "GONGYOU_DATA_KEY"),
    ],
)
def test_production_refuses_unsafe_defaults(monkeypatch, env, message):
    monkeypatch.setenv("GONGYOU_ENV", "production")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_development_needs_nothing_set(monkeypatch):
    monkeypatch.delenv("GONGYOU_ENV", raising=False)
    settings = Settings()
    assert settings.database_url.startswith("sqlite")


def test_wheel_carries_the_knowledge(tmp_path):
    """Installed from a wheel (not the checkout), the package still finds knowledge/."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("gongyou-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "bot/knowledge/topics.yaml" in names
        assert any(n.startswith("bot/knowledge/policies/") for n in names)
        assert "bot/migrations/env.py" in names
        archive.extractall(tmp_path / "site")
    probe = (
        "from bot.settings import default_knowledge_dir; from bot.knowledge import load_knowledge;"
        "d = default_knowledge_dir(); kb = load_knowledge(d); print(d, len(kb.entries))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")},
        check=True, capture_output=True, text=True,
    ).stdout
    path, count = out.split()
    assert path.startswith(str(tmp_path / "site")) and int(count) >= 14
