"""The one typed settings object, read from environment variables and an optional `.env`."""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.model_cards import ORIGINAL_MODEL, valid_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob of imgclf; names are the upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # A Sentinel-managed Redis: the sentinels (`host:port,...`) and the master's name there. The
    # master's password and database still come from REDIS_URL (its host is then unused);
    # REDIS_SENTINEL_PASSWORD is the sentinels' own, where they require one.
    redis_sentinels: str = ""
    redis_sentinel_master: str = "imgclf"
    redis_sentinel_password: SecretStr | None = None
    # A 202 means this many replicas hold the job (Redis WAIT), or the submit is a 503 after
    # REDIS_WAIT_TIMEOUT_MS; default: 1 with Sentinel (a failover keeps accepted jobs), else 0.
    redis_wait_replicas: int | None = Field(default=None, ge=0)
    redis_wait_timeout_ms: int = Field(default=1000, ge=1)
    # With `rediss://`: the CA bundle that signed Redis's certificate (default: the system's),
    # or, explicitly and logged, no verification at all.
    redis_tls_ca_file: Path | None = None
    redis_tls_insecure: bool = False
    # A Redis that evicts keys when full can drop accepted jobs: refuse to start on it, or warn.
    redis_eviction_check: Literal["refuse", "warn"] = "refuse"
    # The Redis that `imgclf-stack` starts itself: fsync before answering (a 202 survives a
    # crash of Redis or its host) or once a second (faster; a crash loses up to a second), and a
    # memory ceiling past which it refuses new jobs (503) instead of evicting.
    redis_appendfsync: Literal["always", "everysec"] = "always"
    redis_maxmemory: str = "2gb"
    queue_name: str = "imgclf"

    # Each model is a folder of MODELS_DIR named after it: its card, ONNX file and labels
    # (`shared.model_cards`). MODELS lists those the deployment serves (comma-separated), the
    # first being the default unless DEFAULT_MODEL names another; a worker node serves
    # WORKER_MODELS (a subset; empty: all of them) and consumes only their queues.
    models_dir: Path = PROJECT_ROOT / "models"
    models: str = ORIGINAL_MODEL
    default_model: str = ""
    worker_models: str = ""

    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_batch_files: int = Field(default=64, ge=1, le=1024)
    # Images one collection may hold (POST /api/v1/collections/{id}/images).
    max_collection_images: int = Field(default=100_000, ge=1)
    # Per API process: uploads beyond it wait on disk while their request is parsed.
    upload_memory_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # A request body must have arrived within this, or it is cut off with 408.
    upload_timeout_seconds: float = Field(default=60.0, gt=0)
    # How long the API may spend checking one request's images (off the event loop) before it
    # refuses them as too complex; the structure caps keep real files far below it.
    upload_check_timeout_seconds: float = Field(default=5.0, gt=0)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    max_queue_length: int = Field(default=10_000, ge=1)
    # Bytes of queued images Redis may hold; at least one full batch.
    max_queued_bytes: int = Field(default=2**30, ge=1)
    # Jobs that arrive together (a batch's files, submits that came while the API's last write
    # was in flight) travel in one queue message, which one worker process runs with one
    # dispatch, one claim and one acknowledgement: at most this many jobs, and bytes of images,
    # per message (a single larger image still goes alone).
    group_max_jobs: int = Field(default=16, ge=1, le=256)
    group_max_bytes: int = Field(default=16 * 2**20, ge=1)
    job_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    default_top_k: int = Field(default=5, ge=1, le=1000)
    max_wait_seconds: float = Field(default=30.0, gt=0, le=300)
    predict_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    retry_after_seconds: int = Field(default=5, ge=1)

    task_soft_time_limit_seconds: int = Field(default=60, ge=1)
    task_time_limit_seconds: int = Field(default=90, ge=1)
    broker_visibility_timeout_seconds: int = Field(default=120, ge=10)
    max_attempts: int = Field(default=3, ge=1, le=20)
    recovery_interval_seconds: float = Field(default=5.0, gt=0)
    # How long a worker retries a claim or an outcome that Redis does not take, before leaving
    # the job to the recovery sweep; below the soft time limit.
    store_retry_seconds: float = Field(default=20.0, ge=0)
    worker_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    # A node that takes no job for this long while jobs wait and it holds none has a stuck
    # consumer: it stops, for its supervisor to start it again (0: never).
    worker_stall_seconds: float = Field(default=60.0, ge=0)
    ort_threads_per_process: int = Field(default=0, ge=0)
    worker_trim_above_mb: int = Field(default=130, ge=0)
    # An image whose decoding would take more memory than this fails as image_too_large instead
    # of getting its worker process killed (and retried); 0: no limit.
    worker_max_image_mb: float = Field(default=1024, ge=0)
    # Large progressive JPEGs decode from only the scans a 1/8-scale decode reads (same pixels).
    progressive_jpeg_fast_path: bool = True
    # A group of jobs through the model in one call: always, never, or where onnxruntime runs on
    # a GPU (CUDA), the only place it pays; needs the `onnx` package (a dynamic batch axis).
    worker_batch_inference: Literal["auto", "on", "off"] = "auto"

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_url: str = "http://127.0.0.1:8000"
    api_workers: int = Field(default=1, ge=1, le=64)
    # Comma-separated keys the API accepts; empty: no authentication. Clients send API_KEY.
    api_keys: SecretStr = SecretStr("")
    api_key: SecretStr | None = None
    # With API_KEYS on, /docs, /redoc and /openapi.json need a key too unless this opens them.
    api_docs_open: bool = False
    # Listing jobs (GET /api/v1/jobs?status=failed) shows a caller its own, by API key; with
    # keys off there is no "own", so it is off unless this opens it to everyone.
    job_listing_open: bool = False

    ui_port: int = Field(default=8501, ge=1, le=65535)
    flower_port: int = Field(default=5555, ge=1, le=65535)
    # Not FLOWER_*: Flower takes every FLOWER_* variable as one of its own options.
    ui_flower_url: str = "http://127.0.0.1:5555"
    flower_basic_auth: SecretStr | None = None
    dev_mode: bool = False
    prometheus_url: str = "http://127.0.0.1:9090"
    worker_metrics_port: int = Field(default=9808, ge=1, le=65535)

    # prometheus_client's own variable, read here so the code knows which mode is on. It must be
    # set before a process starts; API and worker launchers clean it at start.
    prometheus_multiproc_dir: Path | None = None

    # Webhooks: the Standard Webhooks secret (`whsec_` + base64) that signs every delivery;
    # unset, submits with a callback_url are refused. Destinations in private, loopback,
    # link-local or metadata ranges are refused unless their host is listed here.
    webhook_secret: SecretStr | None = None
    callback_allowed_hosts: str = ""
    webhook_max_attempts: int = Field(default=5, ge=1, le=10)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)

    log_level: str = "INFO"
    # `json`: one JSON object per line, each line about a job with its `job_id`.
    log_format: Literal["text", "json"] = "text"

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _webhook_secret(cls, value: object) -> object:
        # An empty variable (compose's default) means no secret, not an empty one.
        if value in ("", None):
            return None
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        try:
            base64.b64decode(text.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            raise ValueError("WEBHOOK_SECRET must be whsec_ followed by base64") from None
        return value

    @model_validator(mode="after")
    def _sentinels_are_host_port(self) -> Settings:
        try:
            self.sentinel_addresses()
        except ValueError:
            raise ValueError(
                f"REDIS_SENTINELS must be host:port[,host:port...]; got {self.redis_sentinels!r}"
            ) from None
        return self

    @model_validator(mode="after")
    def _a_full_batch_fits_the_queue(self) -> Settings:
        if self.max_queued_bytes < self.max_batch_files * self.max_upload_bytes:
            raise ValueError(
                "MAX_QUEUED_BYTES must hold at least one full batch "
                "(MAX_BATCH_FILES x MAX_UPLOAD_BYTES)"
            )
        return self

    @model_validator(mode="after")
    def _time_limits_fit_visibility_timeout(self) -> Settings:
        # Redis redelivers an unacked task after the visibility timeout; a task still running by
        # then would run twice at once, so the hard limit must end it first.
        if self.task_soft_time_limit_seconds >= self.task_time_limit_seconds:
            raise ValueError("TASK_SOFT_TIME_LIMIT_SECONDS must be below TASK_TIME_LIMIT_SECONDS")
        if self.task_time_limit_seconds >= self.broker_visibility_timeout_seconds:
            raise ValueError(
                "TASK_TIME_LIMIT_SECONDS must be below BROKER_VISIBILITY_TIMEOUT_SECONDS"
            )
        return self

    @model_validator(mode="after")
    def _models_are_listed(self) -> Settings:
        names = self.model_names()
        if not names or any(not valid_name(name) for name in names):
            raise ValueError(
                "MODELS must list model names (lower-case letters, digits, - and _; not high, "
                f"normal, low or webhooks), comma-separated; got {self.models!r}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"MODELS lists a model twice: {self.models!r}")
        if self.default_model and self.default_model not in names:
            raise ValueError(f"DEFAULT_MODEL {self.default_model!r} is not in MODELS ({names})")
        if not self._chosen_worker_models() <= set(names):
            raise ValueError(f"WORKER_MODELS {self.worker_models!r} must be among MODELS ({names})")
        return self

    def model_names(self) -> list[str]:
        """The models the deployment serves, in MODELS's order."""
        return [name.strip() for name in self.models.split(",") if name.strip()]

    def default_model_name(self) -> str:
        """The model a job runs on when it names none."""
        return self.default_model or self.model_names()[0]

    def worker_model_names(self) -> list[str]:
        """The models this worker node serves, in MODELS's order (its queues' order too)."""
        chosen = self._chosen_worker_models()
        return [name for name in self.model_names() if not chosen or name in chosen]

    def _chosen_worker_models(self) -> set[str]:
        return {name.strip() for name in self.worker_models.split(",") if name.strip()}

    def accepted_api_keys(self) -> frozenset[str]:
        """The keys that unlock the API; empty when authentication is off."""
        return frozenset(
            k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()
        )

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """REDIS_SENTINELS as (host, port) pairs; empty without Sentinel."""
        addresses = []
        for item in self.redis_sentinels.split(","):
            if item.strip():
                host, _, port = item.strip().rpartition(":")
                addresses.append((host.strip("[]"), int(port)))
        return addresses

    def replicas_to_wait_for(self) -> int:
        """How many replicas must hold a job before its submit answers 202."""
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if self.redis_sentinels.strip() else 0

    @property
    def webhook_queue(self) -> str:
        """The Celery queue of webhook deliveries, beside the classify queue."""
        return f"{self.queue_name}.webhooks"

    def allowed_callback_hosts(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.callback_allowed_hosts.split(",") if h.strip()
        )

    def ort_threads(self) -> int:
        """onnxruntime intra-op threads per worker process, so processes don't oversubscribe."""
        if self.ort_threads_per_process:
            return self.ort_threads_per_process
        return max(1, (os.cpu_count() or 1) // self.worker_concurrency)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return Settings()
