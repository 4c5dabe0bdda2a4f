"""Settings from the environment (prefix GONGYOU_); unsafe production defaults are refused at start-up."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


def default_knowledge_dir() -> Path:
    # Installed from a wheel, knowledge/ travels inside the package; in a checkout it sits beside bot/.
    packaged = PACKAGE_DIR / "knowledge"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "knowledge"


ENVIRONMENTS = ("development", "production")


def secret_bits(value: str) -> float:
    """A cautious estimate of the randomness in a secret: its length times the bits per character of
    the alphabet it draws from (hex, base64, or printable ASCII), and no more than its distinct characters
    allow (a key of one repeated character carries nothing)."""
    chars = set(value)
    if not value.strip() or len(chars) < 2:
        return 0.0
    if chars <= set("0123456789abcdef") or chars <= set("0123456789ABCDEF"):
        per_char = 4.0
    elif chars <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_"):
        per_char = 6.0
    else:
        per_char = math.log2(95)
    return len(value) * min(per_char, math.log2(len(chars)) * 1.5)


def _wechat_token_ok(token: str) -> bool:
    # WeChat's own rule for the callback token: 3 to 32 letters and digits; we ask for 16 at least.
    return 16 <= len(token) <= 32 and token.isascii() and token.isalnum() and secret_bits(token) >= 64


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GONGYOU_", extra="ignore")

    env: str = "development"  # development | production (anything else is refused); production refuses unsafe defaults
    database_url: str = "sqlite:///gongyou.db"
    knowledge_dir: Path = default_knowledge_dir()
    log_level: str = "INFO"
    log_json: bool = True
    demo_data: bool | None = None  # load synthetic demo labourers into an empty database (default: development only)

    # Conversation
    dialog_timeout_minutes: int = 30
    max_message_chars: int = 2000  # longer inbound text is kept whole in the log but cut for the NLU

    # Secret for encrypting ID numbers and phones and for their look-up hashes. Development falls back to
    # a fixed key so the demo runs with nothing set; production refuses to start without one.
    data_key: str = ""

    # WeChat Official Account
    wechat_token: str = ""
    wechat_aes_key: str = ""
    wechat_appid: str = ""
    wechat_secret: str = ""
    wechat_api_base: str = "https://api.weixin.qq.com/cgi-bin/"
    wechat_reply_deadline_seconds: float = 4.0
    wechat_max_body_bytes: int = 64 * 1024
    wechat_timestamp_tolerance_seconds: int = 300
    wechat_api_timeout_seconds: float = 5.0
    # threads (per process) for late replies and receipts, and for the pipeline on PostgreSQL (on SQLite the
    # pipeline has two threads of its own: bot.channels.wechat.SQLITE_PIPELINE_THREADS)
    wechat_reply_workers: int = 32
    wechat_cs_window_hours: int = 48  # customer-service messages only this long after the person's last action
    # Template message fallback: the template id and its field keys, in order (each value <= 20 characters).
    wechat_template_id: str = ""
    wechat_template_fields: str = "thing1,thing2,thing3"

    # SMS
    sms_provider: str = "log"  # log | aliyun | tencent
    sms_signature: str = "巴中就业扶贫"
    sms_api_base: str = ""
    sms_access_key_id: str = ""
    sms_access_key_secret: str = ""
    sms_app_id: str = ""
    sms_template_id: str = ""
    sms_min_interval_seconds: int = 30
    sms_max_per_day: int = 10
    sms_marketing_template_id: str = ""  # a marketing-type template (营销短信); falls back to sms_template_id
    sms_region: str = ""  # aliyun: cn-hangzhou, tencent: ap-guangzhou when empty
    sms_timeout_seconds: float = 5.0
    # Tencent lists a message only once the carrier has reported on it: until this long after a send whose
    # outcome is unknown, "not listed" means "ask again later", after it "nobody can tell".
    sms_report_wait_seconds: int = 600
    # POST /sms/inbound requires ?token=<this> (put it in the callback URL set at the provider); without it,
    # pushes are refused except in development with the `log` provider. Neither Aliyun's nor Tencent's
    # HTTP push is signed, so this secret is what proves a push is the provider's.
    sms_callback_token: str = ""

    # Inbound doors (bot.security, bot.channels.sms, bot.channels.wechat, bot.channels.simulator)
    sms_replies_per_hour: int = 20  # SMS answers to one number's messages in any clock hour
    sms_unknown_replies_per_hour: int = 10  # … to a number nobody in the registry has
    redis_url: str = ""  # replay cache and rate counters shared by all workers; empty: the database
    simulator: bool | None = None  # /simulator and /api/simulator/* (default: on in development only)

    # Campaigns and broadcasts (scheduler/)
    scheduler_enabled: bool = False  # run the scheduler (leader) and a dispatcher inside the web process
    dispatch_rate_sms: float = 50.0  # messages/second per dispatch worker; 0 = unlimited
    dispatch_rate_wechat: float = 20.0
    sms_send_hours: str = "08:00-20:00"  # local time (see `timezone`); a delivery due outside waits
    wechat_send_hours: str = "08:00-21:00"
    broadcast_weekly_cap: int = 3  # broadcasts per labourer in any 7 days (reminders to sign-ups excepted)
    dispatch_retry_minutes: list[int] = [5, 10]  # waits before the 2nd and 3rd try; then failed
    dispatch_batch_size: int = 100
    dispatch_lease_seconds: int = 300  # a "sending" row older than this belongs to a crashed worker
    dispatch_senders: str = ""  # "module:factory" building the senders (tests, benchmarks); "" = channels
    signup_reply_window_hours: int = 168  # "报名"/"1" counts as a sign-up this long after the broadcast

    timezone: str = "Asia/Shanghai"

    # Knowledge and caches (bot.snapshot, bot.nlu): a changed knowledge folder goes live within this many
    # seconds in every process; 0 turns the watcher off (a restart or refresh() picks changes up).
    knowledge_poll_seconds: float = 5.0
    # Where start-up work is cached (the router's model, the pinyin table, jieba's dictionary). Empty: a
    # folder beside the SQLite database, or ./.gongyou-cache; created 0700, never the shared /tmp.
    cache_dir: Path | None = None

    # Staff accounts, console sessions, API tokens, request size (foundation: bot/auth.py, bot/api, bot/console)
    staff_token_hours: float = 12.0  # a bearer token from POST /api/auth/token lives this long
    console_session_hours: float = 12.0  # a console session ends after this long, active or not
    console_idle_minutes: int = 30  # … and after this long without a request
    login_window_minutes: int = 15  # sign-in failures are counted over this window
    login_max_failures_per_account: int = 5  # then that username is refused until the window has passed
    login_max_failures_per_address: int = 20  # and likewise for one IP address
    max_request_bytes: int = 1024 * 1024  # any request body (POST /wechat and /sms/inbound have their own caps)
    max_upload_bytes: int = 32 * 1024 * 1024  # file uploads (bot.api.limits.UPLOAD_PATHS)

    # Help desk (bot/helpdesk.py, bot/helpdesk_sla.py): office hours on Chinese working days, and the
    # (first response, resolution) targets in working hours by "urgent", category, "handoff" or "default".
    helpdesk_work_hours: str = "09:00-12:00,13:30-17:30"
    helpdesk_sla_hours: dict[str, list[float]] = {}  # e.g. {"欠薪": [4, 24]}; merged over the defaults
    # Reminders of near targets are shown to the assignee in the console; also posted here when set (a WeCom
    # group robot, https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…, or anything taking its JSON).
    helpdesk_reminder_webhook: str = ""

    # Production roles (bot/metrics.py, deploy/): GET /metrics needs this bearer token (off when empty);
    # dispatch and scheduler serve theirs on a port of their own when it is set (no token: keep it internal).
    metrics_token: str = ""
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # The WeChat access token is shared through redis_url (above) when it is set; else the database.
    # Admission control of POST /wechat per process (bot/overload.py): past this many pipeline runs waiting,
    # or this much event-loop lag, a callback is acknowledged at once and answered through the API; past
    # wechat_queue_max it gets 503 and WeChat sends it again later.
    wechat_queue_defer: int = 64
    wechat_queue_max: int = 5000
    wechat_loop_lag_defer_seconds: float = 1.0

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env not in ENVIRONMENTS:
            raise ValueError(f"GONGYOU_ENV must be one of {', '.join(ENVIRONMENTS)}, not {self.env!r}")
        production = self.env == "production"
        if self.demo_data is None:
            self.demo_data = not production
        if self.simulator is None:
            self.simulator = not production
        if not production:
            return self
        problems = [f"{name} must be set" for name, value in (
            ("GONGYOU_WECHAT_TOKEN", self.wechat_token), ("GONGYOU_DATA_KEY", self.data_key)) if not value.strip()]
        if self.data_key.strip() and secret_bits(self.data_key) < 256:
            problems.append("GONGYOU_DATA_KEY must carry at least 32 bytes of randomness "
                            "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if self.wechat_token.strip() and not _wechat_token_ok(self.wechat_token):
            problems.append("GONGYOU_WECHAT_TOKEN must be 16 to 32 random letters and digits")
        if self.wechat_aes_key and len(self.wechat_aes_key) != 43:
            problems.append("GONGYOU_WECHAT_AES_KEY must be the 43 characters of the EncodingAESKey")
        if self.sms_provider.lower() != "log" and not self.sms_callback_token:
            problems.append(f"GONGYOU_SMS_CALLBACK_TOKEN must be set with GONGYOU_SMS_PROVIDER={self.sms_provider}")
        if self.sms_callback_token and secret_bits(self.sms_callback_token) < 128:
            problems.append("GONGYOU_SMS_CALLBACK_TOKEN must be a long random value (at least 16 bytes of randomness)")
        if self.demo_data:
            problems.append("GONGYOU_DEMO_DATA must be off (it loads fake people with real-looking mobile numbers)")
        if problems:
            raise ValueError("production mode refused: " + "; ".join(problems))
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        if self.is_sqlite:
            database = self.database_url.split("///", 1)[-1].split("?", 1)[0]
            if database and database != ":memory:" and not database.startswith("file:"):
                return Path(database).resolve().parent / ".gongyou-cache"
        return Path.cwd() / ".gongyou-cache"


@lru_cache
def get_settings() -> Settings:
    return Settings()
