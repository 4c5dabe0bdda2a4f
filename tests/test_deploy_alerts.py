"""deploy/prometheus: the scrape configuration fits the compose file, and every metric an alert reads is one
the service exposes (a renamed metric must not leave an alert that can never fire)."""

from __future__ import annotations

import re
import shlex

import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bot.app import create_app
from bot.metrics import process_metrics
from tests.fakes.wechat_platform import AES_KEY, APPID, TOKEN, WeChatPlatform
from tests.roles import ROOT

DEPLOY = ROOT / "deploy"
TOKEN_FOR_METRICS = "alerts-scrape-secret-0123"
# Figures only the roles' own ports serve (scheduler/cli.py), and Prometheus' own `up`.
ROLE_FIGURES = {"gongyou_scheduler_is_leader", "gongyou_dispatch_sent", "gongyou_dispatch_failed", "up"}


def exposed(make_settings) -> set[str]:  # noqa: ANN001
    settings = make_settings(wechat_token=TOKEN, wechat_aes_key=AES_KEY, wechat_appid=APPID,
                             metrics_token=TOKEN_FOR_METRICS)
    app = create_app(settings, configure_logs=False)
    with TestClient(app) as client:
        assert WeChatPlatform(client).say("o-alerts", "参加技能培训有补贴吗")
        text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN_FOR_METRICS}"}).text
    postgres = app.state.engine.dialect.name == "postgresql"
    app.state.engine.dispose()
    names = set() if postgres else {"gongyou_scheduler_leaders"}  # read from pg_locks: PostgreSQL only
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # counters declared in this process but not yet counted (no sample) still have their family line
    for family in process_metrics().registry.collect():
        names.update({family.name, f"{family.name}_total"})
    return names


def test_every_alert_reads_metrics_the_service_exposes(make_settings):
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"GongyouNoSchedulerLeader", "GongyouDatabaseDown", "GongyouWebhookSlow", "GongyouRepliesLate",
            "GongyouSendFailures", "GongyouQueueNotDraining"} <= {a["alert"] for a in alerts}
    names = exposed(make_settings) | ROLE_FIGURES
    for alert in alerts:
        assert alert["expr"] and alert["annotations"]["summary"]
        for metric in re.findall(r"\b(?:gongyou_[a-z_]+|up)\b(?=\s*[{\[)=!<>]|\s*$)", alert["expr"]):
            assert metric in names, f"{alert['alert']} reads {metric}, which nothing exposes"


def test_the_scrape_configuration_fits_the_compose_file():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web = shlex.split(compose["web"]["command"])
    assert jobs["gongyou-web"]["static_configs"][0]["targets"] == [f"web:{web[web.index('--port') + 1]}"]
    assert jobs["gongyou-web"]["authorization"]["credentials_file"] == "/etc/prometheus/metrics_token"
    roles = jobs["gongyou-roles"]["dns_sd_configs"][0]
    assert set(roles["names"]) == {"scheduler", "dispatch"}
    for role in roles["names"]:
        argv = shlex.split(compose[role]["command"])
        assert argv[argv.index("--metrics-port") + 1] == str(roles["port"])
    prometheus = compose["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]  # not started unless asked for
    assert all(port.startswith("127.0.0.1:") for port in prometheus["ports"])  # its page on loopback only
    mounted = {v.split(":")[1] for v in prometheus["volumes"] if v.startswith("./")}
    assert {"/etc/prometheus/prometheus.yml", "/etc/prometheus/alerts.yml", "/etc/prometheus/metrics_token"} <= mounted
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
