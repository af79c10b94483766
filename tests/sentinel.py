"""A real Sentinel-managed Redis for tests: a master, replicas and sentinels on free ports."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import redis

from scripts.processes import free_port
from tests.processes import RedisServer, wait_until

MASTER_NAME = "imgclf"


class SentinelCluster:
    """`replicas` replicas of a password-protected master, watched by `sentinels` sentinels
    (quorum 2) that also require a password, failing over one second after the master stops
    answering."""

    def __init__(
        self, workdir: Path, *, replicas: int = 2, sentinels: int = 3, password: str = "pw"
    ) -> None:
        if shutil.which("redis-sentinel") is None:
            raise RuntimeError("redis-sentinel is not installed: apt-get install redis-sentinel")
        self.workdir = workdir
        self.password = password
        auth = ("--requirepass", password, "--masterauth", password)
        self.master = RedisServer(workdir / "master", password=password, extra=auth)
        self.replicas = [
            RedisServer(
                workdir / f"replica-{i}",
                password=password,
                extra=(*auth, "--replicaof", "127.0.0.1", str(self.master.port)),
            )
            for i in range(replicas)
        ]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS for this cluster."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def env(self) -> dict[str, str]:
        """The settings every imgclf process needs to use this cluster; REDIS_URL's host is a
        port nothing listens on, so only the sentinels can lead a client to the master."""
        return {
            "REDIS_URL": f"redis://:{self.password}@127.0.0.1:{free_port()}/0",
            "REDIS_SENTINELS": self.addresses,
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "REDIS_SENTINEL_PASSWORD": self.password,
        }

    def start(self) -> None:
        self.master.start()
        for replica in self.replicas:
            replica.start()
        for port in self.sentinel_ports:
            directory = self.workdir / f"sentinel-{port}"
            directory.mkdir(parents=True, exist_ok=True)
            config = directory / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\nrequirepass {self.password}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel auth-pass {MASTER_NAME} {self.password}\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            )
            self._sentinels.append(
                subprocess.Popen(["redis-sentinel", str(config)], stdout=subprocess.DEVNULL)
            )
        wait_until(
            lambda: all(
                self._replicas_seen(port) == len(self.replicas) for port in self.sentinel_ports
            ),
            timeout=30,
            what="sentinels that see every replica",
        )

    def _sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=2)

    def _replicas_seen(self, port: int) -> int:
        try:
            return len(self._sentinel(port).sentinel_slaves(MASTER_NAME))
        except redis.RedisError:
            return -1

    def master_port(self) -> int:
        """The master's port as the sentinels name it now."""
        _, port = self._sentinel(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(
            MASTER_NAME
        )
        return int(port)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=2)

    def kill_master(self) -> int:
        """SIGKILL the current master; its port."""
        port = self.master_port()
        server = next(s for s in [self.master, *self.replicas] if s.port == port)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        server.proc = None
        return port

    def stop(self) -> None:
        for proc in self._sentinels:
            proc.terminate()
        for proc in self._sentinels:
            proc.wait(timeout=10)
        for server in [self.master, *self.replicas]:
            server.stop()
