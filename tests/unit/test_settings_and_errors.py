from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from api.errors import error_response, status_for
from shared import errors
from shared.queue import broker_url, make_celery
from shared.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.unit


def test_settings_read_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1234")
    settings = Settings()
    assert settings.redis_url == "redis://example:6380/2"
    assert settings.max_upload_bytes == 1234


def test_settings_defaults_match_the_documented_ones() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.max_upload_bytes == 10 * 1024 * 1024
    assert settings.job_ttl_seconds == 24 * 3600
    assert settings.default_top_k == 5


def test_time_limit_must_stay_below_visibility_timeout() -> None:
    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT"):
        Settings(task_time_limit_seconds=400, broker_visibility_timeout_seconds=300)


def test_soft_limit_must_stay_below_hard_limit() -> None:
    with pytest.raises(ValidationError, match="SOFT_TIME_LIMIT"):
        Settings(task_soft_time_limit_seconds=90, task_time_limit_seconds=90)


def test_negative_limits_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(max_upload_bytes=0)


def test_sentinels_lead_every_client_and_a_202_waits_for_a_replica() -> None:
    """With REDIS_SENTINELS, Celery's broker is kombu's `sentinel://` list carrying REDIS_URL's
    credentials and database, and submits wait for one replica unless told otherwise."""
    settings = Settings(
        redis_url="redis://:s%40cret@ignored:6379/3",
        redis_sentinels="10.1.0.1:26379, [fd00::2]:26380",
        redis_sentinel_master="prod",
    )
    assert settings.sentinel_addresses() == [("10.1.0.1", 26379), ("fd00::2", 26380)]
    assert broker_url(settings) == (
        "sentinel://:s%40cret@10.1.0.1:26379/3;sentinel://:s%40cret@[fd00::2]:26380/3"
    )
    assert make_celery(settings).conf.broker_transport_options["master_name"] == "prod"
    assert settings.replicas_to_wait_for() == 1
    assert Settings(redis_sentinels="h:1", redis_wait_replicas=0).replicas_to_wait_for() == 0
    assert Settings().replicas_to_wait_for() == 0
    assert broker_url(Settings()) == Settings().redis_url
    with pytest.raises(ValidationError, match="REDIS_SENTINELS"):
        Settings(redis_sentinels="host-without-port")


def test_onnxruntime_threads_split_cores_between_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert Settings(worker_concurrency=4).ort_threads() == 2
    assert Settings(worker_concurrency=16).ort_threads() == 1
    assert Settings(worker_concurrency=4, ort_threads_per_process=3).ort_threads() == 3


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidImageError("x"), 400),
        (errors.UnsupportedFormatError("x"), 415),
        (errors.UploadTooLargeError("x"), 413),
        (errors.ImageTooLargeError("x"), 413),
        (errors.JobNotFoundError("x"), 404),
        (errors.JobNotCancelableError("x"), 409),
        (errors.StoreUnavailableError("x"), 503),
        (errors.QueueFullError("x"), 503),
        (errors.JobTimeoutError("x"), 504),
        (errors.ModelError("x"), 503),
        (errors.ImgclfError("x"), 500),
    ],
)
def test_each_domain_error_maps_to_one_http_status(error: errors.ImgclfError, status: int) -> None:
    assert status_for(error) == status


def test_error_body_has_code_and_message_and_503_says_when_to_retry() -> None:
    response = error_response(errors.StoreUnavailableError("Redis is down"), retry_after_seconds=5)
    body = json.loads(bytes(response.body))
    assert body["code"] == "store_unavailable"
    assert body["message"] == "Redis is down"
    assert int(response.headers["retry-after"]) >= 1


def test_worker_error_codes_round_trip_to_the_same_type() -> None:
    rebuilt = errors.error_from_code("invalid_image", "Invalid image file: bad")
    assert isinstance(rebuilt, errors.InvalidImageError)
    assert status_for(rebuilt) == 400
    assert isinstance(errors.error_from_code("no-such-code", "m"), errors.ImgclfError)


def test_every_setting_is_in_the_readme_table() -> None:
    """A setting the README does not name is one no operator finds."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []
