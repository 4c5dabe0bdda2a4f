"""The `gongyou` command line, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], db_url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GONGYOU_DATABASE_URL": db_url, "GONGYOU_DEMO_DATA": "false"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], input=stdin, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_chat_in_the_terminal_goes_through_the_pipeline(db_url):
    result = run_cli(["chat", "--user", "cli-user"], db_url, stdin="你好\n1\n公益性岗位咋个申请\nexit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1. 政策咨询" in out
    assert "公益性岗位" in out
    assert "回复 1 看详细" in out


def test_nlu_eval_reports_and_enforces_thresholds(db_url, tmp_path):
    data = tmp_path / "eval.jsonl"
    lines = [
        {"text": "公益性岗位有哪几种", "intent": "policy_question", "topic": "public_welfare_post"},
        {"text": "老板欠我三个月工资", "intent": "rights_complaint", "topic": None},
        {"text": "今天天气咋样", "intent": "greeting", "topic": None},  # deliberately mislabelled: one miss
    ]
    data.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines), encoding="utf-8")
    passing = run_cli(["nlu-eval", str(data), "--min-accuracy", "0.5"], db_url)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "今天天气咋样" in passing.stdout  # every miss is listed
    failing = run_cli(["nlu-eval", str(data), "--min-accuracy", "0.9"], db_url)
    assert failing.returncode != 0
