"""Alembic environment: the engine is handed in by bot.db.migrate (no alembic.ini needed)."""

from alembic import context

from bot.models import Base, UTCDateTime


def render_item(type_, obj, autogen_context):  # noqa: ANN001, ANN201
    # Migrations must not import application code: UTCDateTime is stored as a plain timestamptz.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


config = context.config
engine = config.attributes.get("engine")
if engine is None:  # `alembic` CLI use: read the URL from settings
    from bot.db import make_engine
    from bot.settings import get_settings

    engine = make_engine(get_settings().database_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
