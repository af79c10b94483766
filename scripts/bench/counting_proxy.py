"""A TCP proxy in front of Redis that counts its clients' round trips, on a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from scripts.processes import free_port


class CountingProxy:
    """Forwards 127.0.0.1:`port` to Redis; `round_trips` counts each time a client sends after
    an answer (or first): one pipeline or transaction is one, however many commands it holds."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.round_trips = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()

    @classmethod
    @contextlib.contextmanager
    def serving(cls, target_port: int) -> Iterator[CountingProxy]:
        proxy = cls(target_port)
        thread = threading.Thread(target=proxy._run, daemon=True)
        thread.start()
        proxy._ready.wait(10)
        try:
            yield proxy
        finally:
            proxy._loop.call_soon_threadsafe(proxy._loop.stop)
            thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        with contextlib.closing(server):
            self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        answered = [True]  # per connection: has Redis answered since the client last sent?

        async def client_to_redis() -> None:
            while chunk := await reader.read(65536):
                if answered[0]:
                    self.round_trips += 1
                    answered[0] = False
                up_writer.write(chunk)
                await up_writer.drain()
            up_writer.close()

        async def redis_to_client() -> None:
            while chunk := await up_reader.read(65536):
                answered[0] = True
                writer.write(chunk)
                await writer.drain()
            writer.close()

        await asyncio.gather(client_to_redis(), redis_to_client(), return_exceptions=True)
