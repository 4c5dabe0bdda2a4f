"""deploy/compose.yaml read as the deployment it describes, then its roles started as plain processes here
(no Docker engine runs on this machine): migrate once, the web workers, two schedulers, two dispatchers, on a
fresh PostgreSQL schema and the local Redis — all healthy, one scheduler leading, a signed WeChat message
answered. The Dockerfile and the Caddyfile are checked by reading them."""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from bot.cli import build_parser
from bot.db import make_engine, normalize_url
from tests.fakes.wechat_platform import AES_KEY, APPID, TOKEN, WeChatPlatform
from tests.roles import ROOT, Fleet, free_port, healthy, wait_for

DEPLOY = ROOT / "deploy"
OUR_IMAGE = "gongyou:latest"
SECRETS = {
    "POSTGRES_PASSWORD": "pw", "GONGYOU_DATA_KEY": "kM3v9QxT2pL7wZ8rN4bY6cF1hJ5dG0sA-deploy-test", "GONGYOU_WECHAT_TOKEN": TOKEN,
    "GONGYOU_WECHAT_AES_KEY": AES_KEY, "GONGYOU_WECHAT_APPID": APPID, "GONGYOU_SMS_CALLBACK_TOKEN": "Rz8Kq2Wm5Xv9Lp3Tn7Bc4Hd6",
    "GONGYOU_METRICS_TOKEN": "deploy-metrics-token", "GONGYOU_DOMAIN": "gongyou.example.gov.cn",
}
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def ours(services: dict) -> dict[str, dict]:
    return {name: s for name, s in services.items() if s.get("image") == OUR_IMAGE}


def interpolate(value: str, values: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default}, ${NAME:?message}, from `values` (a default when missing)."""
    def one(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(0)[len(match.group(1)) + 2:-1]
        if name in values:
            return values[name]
        return rest[2:] if rest.startswith(":-") else ""
    return _VAR.sub(one, str(value))


def test_the_compose_file_declares_every_role_of_the_deployment():
    services = compose()["services"]
    assert {"postgres", "redis", "caddy", "migrate", "web", "scheduler", "dispatch"} <= set(services)
    gongyou = ours(services)
    assert set(gongyou) == {"migrate", "web", "scheduler", "dispatch"}
    assert services["scheduler"]["deploy"]["replicas"] == 2  # one leads, one stands by
    assert services["dispatch"]["deploy"]["replicas"] >= 2
    for name, service in gongyou.items():
        argv = shlex.split(service["command"])
        assert argv[0] == "gongyou"
        build_parser().parse_args(argv[1:])  # a real command line of ours (SystemExit otherwise)
        env = {k: interpolate(v, SECRETS) for k, v in service["environment"].items()}  # one machine: no hosts set
        assert env["GONGYOU_ENV"] == "production" and "@postgres:5432/" in env["GONGYOU_DATABASE_URL"]
        assert env["GONGYOU_REDIS_URL"] == "redis://:@redis:6379/0"
        several = {k: interpolate(v, {**SECRETS, "POSTGRES_HOST": "db1", "REDIS_HOST": "db1", "REDIS_PASSWORD": "Rp4ss"})
                   for k, v in service["environment"].items()}
        assert "@db1:5432/" in several["GONGYOU_DATABASE_URL"]
        assert several["GONGYOU_REDIS_URL"] == "redis://:Rp4ss@db1:6379/0"
        if name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
            assert "healthcheck" in service
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "--workers" in services["web"]["command"]
    # only Caddy is published to the network; the roles' metrics ports stay on the compose network (the
    # optional Prometheus on the machine's loopback only)
    published = {s: spec["ports"] for s, spec in services.items() if spec.get("ports")}
    assert [s for s, ports in published.items() if not all(p.startswith("127.0.0.1:") for p in ports)] == ["caddy"]
    assert set(services["caddy"]["ports"]) == {"80:80", "443:443"}


def test_the_database_machine_publishes_postgresql_and_redis_on_its_lan_address_only():
    services = compose()["services"]
    override = yaml.safe_load((DEPLOY / "several-machines.yaml").read_text(encoding="utf-8"))["services"]
    assert set(override) == {"postgres", "redis"} <= set(services)
    for name, spec in override.items():
        for port in spec["ports"]:
            assert port.startswith("${DB_LAN_IP:?"), f"{name} must not be published on every interface: {port}"
    redis = services["redis"]
    assert "--requirepass" in redis["command"] and redis["environment"]["REDISCLI_AUTH"] == "${REDIS_PASSWORD:-}"
    env_example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    assert "DB_LAN_IP=" in env_example and "REDIS_PASSWORD=" in env_example


def test_postgresql_takes_every_pool_and_notices_a_dead_machine():
    services = compose()["services"]
    command = services["postgres"]["command"]
    assert command[0] == "postgres"
    options = dict(value.split("=", 1) for flag, value in zip(command[1::2], command[2::2]) if flag == "-c")
    # each process's pool at its fullest (bot/db.py), built here without connecting
    engine = make_engine("postgresql+psycopg://gongyou@postgres:5432/gongyou")
    per_process = engine.pool.size() + engine.pool._max_overflow
    engine.dispose()
    web = shlex.split(services["web"]["command"])
    processes = (int(web[web.index("--workers") + 1]) + services["scheduler"]["deploy"]["replicas"]
                 + 2 * services["dispatch"]["deploy"]["replicas"])  # room to double the dispatchers
    assert int(options["max_connections"]) >= processes * per_process + 10  # + pg_dump, psql, the migrate role
    # a leader on a machine that died is dropped (its lock freed) within idle + count x interval seconds
    dead_after = int(options["tcp_keepalives_idle"]) + int(options["tcp_keepalives_count"]) * int(
        options["tcp_keepalives_interval"])
    assert dead_after <= 30


def test_the_caddyfile_and_dockerfile_fit_the_compose_file():
    services = compose()["services"]
    web_port = shlex.split(services["web"]["command"])
    port = web_port[web_port.index("--port") + 1]
    caddyfile = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    assert f"reverse_proxy web:{port}" in caddyfile
    assert "{$GONGYOU_DOMAIN}" in caddyfile and "X-Request-ID" in caddyfile
    assert any("./Caddyfile:/etc/caddy/Caddyfile" in v for v in services["caddy"]["volumes"])
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert services["web"]["build"] == {"context": "..", "dockerfile": "Dockerfile"}
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is not in the repository"
    assert re.search(r'pip install "\.\[[^]]*postgres[^]]*\]"', dockerfile) and "redis" in dockerfile
    assert re.search(r"^USER (?!root)\S+", dockerfile, flags=re.M)
    env_example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    for name in set(_VAR.findall((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))):
        assert f"{name}=" in env_example, f"{name} is used by compose.yaml but missing from env.example"


@pytest.fixture
def fresh_pg(pg_base_url: str) -> Iterator[str]:
    """A new, empty schema (the migrate role must build it), dropped afterwards."""
    schema = f"deploy_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_url(pg_base_url))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    from tests.conftest import _schema_url

    yield _schema_url(pg_base_url, schema)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def role_env(service: dict, pg_url: str, extra: dict[str, str]) -> dict[str, str]:
    # the roles find Redis on this machine, as on a deployment of several machines (REDIS_HOST)
    env = {k: interpolate(v, {**SECRETS, "REDIS_HOST": "127.0.0.1", **extra}) for k, v in service["environment"].items()}
    env["GONGYOU_DATABASE_URL"] = pg_url  # the compose network's postgres → this machine's server (own schema)
    env["GONGYOU_METRICS_HOST"] = "127.0.0.1"  # loopback here, the compose network there
    return env


def metrics_of(port: int, headers: dict[str, str] | None = None, path: str = "/metrics") -> dict[str, float]:
    response = httpx.get(f"http://127.0.0.1:{port}{path}", headers=headers or {}, timeout=5)
    response.raise_for_status()
    return {s.name: s.value for f in text_string_to_metric_families(response.text) for s in f.samples if not s.labels}


@pytest.mark.postgres
def test_the_compose_roles_run_as_processes_and_are_healthy(fresh_pg, tmp_path: Path):
    services = compose()["services"]
    roles = ours(services)
    fleet = Fleet(tmp_path, {})
    try:
        cache = {"GONGYOU_CACHE_DIR": str(tmp_path / "cache")}

        def start(name: str, index: int, **overrides: str):  # noqa: ANN202
            argv = shlex.split(roles[name]["command"])[1:]
            for flag, value in overrides.items():
                argv[argv.index(flag) + 1] = value
            return fleet.start(f"{name}-{index}", *argv, env={**role_env(roles[name], fresh_pg, {}), **cache})

        migrate = start("migrate", 1)
        wait_for(lambda: migrate.proc.poll() is not None, timeout=120, what="migrate")
        assert migrate.proc.returncode == 0, migrate.output()

        web_port = free_port()
        # the compose file's command, with a loopback port and 2 workers (this machine has 2 cores for 7 people)
        web = start("web", 1, **{"--host": "127.0.0.1", "--port": str(web_port), "--workers": "2"})
        web.port = web_port
        schedulers = [start("scheduler", i, **{"--metrics-port": str(free_port())})
                      for i in range(services["scheduler"]["deploy"]["replicas"])]
        dispatchers = [start("dispatch", i, **{"--metrics-port": str(free_port())})
                       for i in range(services["dispatch"]["deploy"]["replicas"])]
        healthy(web, timeout=120)
        health = httpx.get(f"http://127.0.0.1:{web_port}/health", timeout=5).json()
        assert health["status"] == "ok" and health["database"] == "postgresql"

        def port_of(role) -> int:  # noqa: ANN001
            argv = role.proc.args
            return int(argv[argv.index("--metrics-port") + 1])

        for role in [*schedulers, *dispatchers]:
            wait_for(lambda r=role: metrics_of(port_of(r)), timeout=90, what=f"{role.name} metrics", roles=[role])
        leaders = wait_for(lambda: (n := sum(metrics_of(port_of(s))["gongyou_scheduler_is_leader"]
                                             for s in schedulers)) == 1 and n,
                           timeout=30, what="one scheduler leading", roles=schedulers)
        assert leaders == 1
        for role in dispatchers:
            assert metrics_of(port_of(role))["gongyou_dispatch_claimed"] == 0

        auth = {"Authorization": f"Bearer {SECRETS['GONGYOU_METRICS_TOKEN']}"}
        assert metrics_of(web_port, auth)["gongyou_scheduler_leaders"] == 1  # seen from the database too
        with httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=30) as client:
            assert "培训" in WeChatPlatform(client).say("o-deploy", "参加技能培训有补贴吗")
        for role in fleet.roles[1:]:
            assert role.alive(), role.output()[-2000:]
    finally:
        fleet.stop_all()
    for role in fleet.roles[1:]:
        assert role.proc.returncode in (0, -15), f"{role.name} ended with {role.proc.returncode}: {role.output()[-2000:]}"
