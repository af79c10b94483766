"""The Celery application's configuration, shared by the worker that consumes and the API that
enqueues (the API only names the task and never imports the model). The messages themselves are
written by `shared.kombu_messages`."""

from __future__ import annotations

import os
import socket
import ssl
from urllib.parse import urlsplit

from celery import Celery
from kombu.entity import Queue

from shared.priorities import PRIORITIES, queue_name
from shared.redis_client import CONNECT_TIMEOUT_SECONDS, SOCKET_TIMEOUT_SECONDS, tls_options
from shared.settings import Settings

CLASSIFY_TASK = "imgclf.classify"
# A finished job's webhook, delivered from a queue of its own by `worker.webhook_app`.
WEBHOOK_TASK = "imgclf.webhook"
WEBHOOK_TAG_SUFFIX = ".webhook"
# A collection's webhook, once it has completed (or was canceled and its jobs have ended).
COLLECTION_WEBHOOK_TASK = "imgclf.collection_webhook"
COLLECTION_WEBHOOK_TAG_SUFFIX = ".collection-webhook"


def make_celery(settings: Settings) -> Celery:
    """A Celery app that is reliable by configuration, not by luck."""
    app = Celery("imgclf", broker=broker_url(settings))
    app.conf.update(
        # JSON only: a pickle payload from anyone who can reach Redis would be code execution.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        # Results live in the job store; Celery's backend would only duplicate them.
        task_ignore_result=True,
        task_default_queue=settings.queue_name,
        # One queue per model and priority (a lane); a node consumes its models' (WORKER_MODELS)
        # in this order: the Redis transport's BRPOP takes the first of its lists that holds a
        # message (its "priority" queue order), so a high job waits only for jobs already
        # running, and within a priority the models come in MODELS's order. (Redis has no
        # message priorities of its own; Celery's emulation of them misroutes.)
        task_queues=[
            Queue(queue_name(settings.queue_name, model, priority))  # type: ignore[no-untyped-call]
            for priority in PRIORITIES
            for model in settings.worker_model_names()
        ],
        # A task is acknowledged only after it ran, and requeued if its process dies mid-run.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_time_limit_seconds,
        broker_transport_options=_transport_options(settings),
        broker_use_ssl=_broker_tls(settings),
        broker_connection_retry_on_startup=True,
        # Redis answering "full" (OOM), "read-only" or "busy" to the consumer is a passing state,
        # not a reason to stop the node: reconnect and carry on as after a lost connection.
        broker_channel_error_retry=True,
        broker_connection_timeout=2,
        worker_concurrency=settings.worker_concurrency,
        # Task events cost three Redis publishes per job; Flower switches them on while it runs.
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


def consume_with_freed_slots(app: Celery, settings: Settings) -> None:
    """In a node that consumes (on `worker_init`): kombu's Redis transport, but an ack that
    Redis does not take frees its prefetch slot (`shared.broker_transport`). Not in the API,
    which never consumes, nor in Flower, which names the broker by its URL's scheme (the
    transport's path takes the scheme's place in kombu's URL of the connection)."""
    kind = "SentinelTransport" if settings.sentinel_addresses() else "Transport"
    app.conf.broker_transport = f"shared.broker_transport:{kind}"


def _transport_options(settings: Settings) -> dict[str, object]:
    return {
        "visibility_timeout": settings.broker_visibility_timeout_seconds,
        # kombu looks for unacknowledged messages past their visibility timeout every 10 s, but
        # by default scans only every 10th time: a message a dead node held (or one whose
        # restore failed with the connection) waited up to 100 s more. A scan is one ZRANGE.
        "unacked_restore_throttle": 1,
        # Its lock on that scan outlives a node that dies while it holds it; 300 s by default.
        "unacked_mutex_expire": 30,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        # Names this process's broker connections in Redis's CLIENT LIST: operators see who is
        # who, and a node's watchdog sees whether its own consumer is fetching.
        "client_name": broker_client_name(),
        "queue_order_strategy": "priority",
        **_sentinel_transport_options(settings),
    }


def broker_client_name() -> str:
    """The name this process's broker connections carry in Redis (CLIENT SETNAME)."""
    return f"imgclf:{socket.gethostname()}:{os.getpid()}"


def broker_url(settings: Settings) -> str:
    """REDIS_URL, or with REDIS_SENTINELS, kombu's `sentinel://` list of them carrying
    REDIS_URL's credentials and database (kombu asks the sentinels for the master)."""
    addresses = settings.sentinel_addresses()
    if not addresses:
        return settings.redis_url
    url = urlsplit(settings.redis_url)
    credentials = url.netloc.rpartition("@")[0]
    userinfo = f"{credentials}@" if credentials else ""
    return ";".join(
        f"sentinel://{userinfo}{_netloc(host, port)}{url.path or '/0'}" for host, port in addresses
    )


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _sentinel_transport_options(settings: Settings) -> dict[str, object]:
    if not settings.sentinel_addresses():
        return {}
    sentinel: dict[str, object] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
    }
    if settings.redis_sentinel_password is not None:
        sentinel["password"] = settings.redis_sentinel_password.get_secret_value()
    return {"master_name": settings.redis_sentinel_master, "sentinel_kwargs": sentinel}


def _broker_tls(settings: Settings) -> dict[str, object] | None:
    """kombu's TLS options for a `rediss://` broker: the same verification as every other Redis
    client of imgclf (`shared.redis_client.tls_options`), where kombu would not verify at all."""
    options = tls_options(settings)
    if not options:
        return None
    tls: dict[str, object] = {
        "ssl_cert_reqs": ssl.CERT_NONE if settings.redis_tls_insecure else ssl.CERT_REQUIRED
    }
    if "ssl_ca_certs" in options:
        tls["ssl_ca_certs"] = options["ssl_ca_certs"]
    return tls
