"""kombu's Redis transport as the worker nodes use it (`shared.broker_transport`): an ack that
Redis does not take frees the consumer's prefetch slot, and loses no message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from tests.processes import RedisServer, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=True, extra=("--appendfsync", "always"))
    server.start()
    yield server
    server.stop()


def _consumer(url: str, transport: str) -> Connection:
    options = {"visibility_timeout": 1, "socket_timeout": 1, "socket_connect_timeout": 1}
    return Connection(url, transport=transport, transport_options=options)


@pytest.mark.parametrize(
    ("transport", "slot_freed"),
    [("shared.broker_transport:Transport", True), ("kombu.transport.redis:Transport", False)],
)
def test_an_ack_that_redis_refuses_frees_the_prefetch_slot_and_the_message_comes_back(
    redis_server: RedisServer, transport: str, slot_freed: bool
) -> None:
    """kombu's own transport is the control: there the slot stays taken, and a node of one
    process never fetches again."""
    with _consumer(redis_server.url, transport) as connection:
        connection.SimpleQueue("jobs").put({"job": 1})
        channel = connection.default_channel
        channel.basic_qos(0, 1, False)
        message = channel.basic_get("jobs", no_ack=False)
        assert message is not None
        assert not channel.qos.can_consume()  # the one slot is taken
        redis_server.stop()
        with pytest.raises(redis.ConnectionError):
            message.ack()
        assert channel.qos.can_consume() is slot_freed
        redis_server.start()
        # Still unacknowledged in Redis: restored once the visibility timeout has passed.
        restored = []

        def back() -> bool:
            channel.qos.restore_visible(interval=1)
            restored.append(channel.basic_get("jobs", no_ack=True))
            return restored[-1] is not None

        wait_until(back, timeout=30, what="the unacknowledged message back in its queue")
        assert restored[-1].decode() == {"job": 1}
