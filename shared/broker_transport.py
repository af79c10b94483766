"""kombu's Redis transport, with one change: an ack that Redis does not take frees its prefetch
slot all the same.

kombu's Redis QoS removes a message from its unacked hash first and frees the consumer's
prefetch slot second, so an ack that fails (Redis stalled or cut off for longer than the socket
timeout) leaves the slot taken for good: a node of one process never fetches again, one of N
has N-1 slots left. Here the slot is freed whatever Redis answered; the message stays in the
unacked hash and comes back after the visibility timeout, when the job's claim finds it finished
and skips it. The error still reaches Celery, which logs "Couldn't ack". The same holds for a
reject (a worker process lost).

Selected in the worker nodes by `shared.queue.consume_with_freed_slots` (Celery's
`broker_transport`), for direct and Sentinel connections alike; `worker.watchdog` remains the
backstop for a consumer stuck any other way.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
        except Exception:
            virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
            raise

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]
        except Exception:
            virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
            raise


class Channel(kombu_redis.Channel):
    QoS = QoS


class SentinelChannel(kombu_redis.SentinelChannel):
    QoS = QoS


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
