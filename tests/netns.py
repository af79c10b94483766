"""Hosts for multi-host tests, made of Linux network namespaces on this machine.

Each host is a namespace with one veth link to a bridge that lives in a namespace of the rig's
own; addresses are private ones used only inside the rig, and nothing is added to the machine's
own namespace. Processes are started inside their host's namespace (and, for a hostname of their
own, their own UTS namespace). The test talks to them through Unix sockets, which namespaces do
not separate: the API listens on one, Redis on one beside its TCP port.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

SUBNET = "10.213.7"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def namespaces_available() -> str | None:
    """None where this machine lets the tests make namespaces, else why not."""
    probe = f"imgclf-probe-{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cannot create network namespaces here (needs root and iproute2): {exc}"
    _ip("netns", "delete", probe)
    return None


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    link: str  # the host's end of its veth pair

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run on this host, with the host's name as its hostname."""
        return [
            "ip", "netns", "exec", self.namespace,
            "unshare", "--uts", "sh", "-c", f'hostname {self.name} && exec "$@"', "_", *argv,
        ]  # fmt: skip

    def cut(self) -> None:
        """Take the host off the network; its processes keep running."""
        _ip("-n", self.namespace, "link", "set", self.link, "down")

    def rejoin(self) -> None:
        _ip("-n", self.namespace, "link", "set", self.link, "up")


@dataclass
class Rig:
    """Hosts on one bridge; `hosts[name]`."""

    prefix: str = field(default_factory=lambda: f"imgclf-{secrets.token_hex(3)}")
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def _bridge_ns(self) -> str:
        return f"{self.prefix}-bridge"

    def create(self, names: list[str]) -> None:
        _ip("netns", "add", self._bridge_ns)
        _ip("-n", self._bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self._bridge_ns, "link", "set", "br0", "up")
        for number, name in enumerate(names, start=1):
            namespace = f"{self.prefix}-{name}"
            host = Host(name, namespace, f"{SUBNET}.{number}", link="eth0")
            _ip("netns", "add", namespace)
            # Both ends are made inside the bridge's namespace, then one end moves to the host.
            _ip("-n", self._bridge_ns, "link", "add", f"p{number}", "type", "veth",
                "peer", "name", "eth0", "netns", namespace)  # fmt: skip
            _ip("-n", self._bridge_ns, "link", "set", f"p{number}", "master", "br0", "up")
            _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            self.hosts[name] = host

    def remove(self) -> None:
        for host in self.hosts.values():
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "delete", host.namespace)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "delete", self._bridge_ns)


@contextlib.contextmanager
def rig(names: list[str]) -> Iterator[Rig]:
    made = Rig()
    try:
        made.create(names)
        yield made
    finally:
        made.remove()
