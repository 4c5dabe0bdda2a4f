"""Settings from the environment (prefix GONGYOU_); unsafe production defaults are refused at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


def default_knowledge_dir() -> Path:
    # Installed from a wheel, knowledge/ travels inside the package; in a checkout it sits beside bot/.
    packaged = PACKAGE_DIR / "knowledge"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "knowledge"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GONGYOU_", extra="ignore")

    env: str = "development"  # "production" refuses unsafe defaults
    database_url: str = "sqlite:///gongyou.db"
    knowledge_dir: Path = default_knowledge_dir()
    log_level: str = "INFO"
    log_json: bool = True
    demo_data: bool = True  # load synthetic demo labourers into an empty database

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
    # When set, POST /sms/inbound requires ?token=<this> (configure it in the provider's callback URL).
    sms_callback_token: str = ""

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

    # Production roles (bot/metrics.py, deploy/): GET /metrics needs this bearer token (off when empty);
    # dispatch and scheduler serve theirs on a port of their own when it is set (no token: keep it internal).
    metrics_token: str = ""
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # Redis for what the fleet shares (the WeChat access token); empty: the database does it.
    redis_url: str = ""
    # Admission control of POST /wechat per process (bot/overload.py): past this many pipeline runs waiting,
    # or this much event-loop lag, a callback is acknowledged at once and answered through the API; past
    # wechat_queue_max it gets 503 and WeChat sends it again later.
    wechat_queue_defer: int = 64
    wechat_queue_max: int = 5000
    wechat_loop_lag_defer_seconds: float = 1.0

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env != "production":
            return self
        missing = [
            name
            for name, value in (
                ("GONGYOU_WECHAT_TOKEN", self.wechat_token),
                ("GONGYOU_DATA_KEY", self.data_key),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"production mode needs {', '.join(missing)} to be set")
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
