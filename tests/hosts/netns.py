"""Hosts on this machine for the tests: network namespaces on a bridge of their own, and the stores reachable from
them.

Each host is a network namespace with one end of a veth pair; the other end is on a bridge in this namespace, which
holds the address the stores are reached at (``STORES``). Addresses are the test's own (``10.239.0.0/24``, checked
unused first); nothing is ever sent anywhere else. Cutting a host takes its veth end on the bridge down: its processes
keep running and believe their connections open, as a host whose network went away does. ``Network.remove`` deletes
every namespace, veth pair and the bridge, whatever state the test left them in.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field

SUBNET, STORES = "10.239.0", "10.239.0.1"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def subnet_free() -> bool:
    return f" {SUBNET}." not in ip("-4", "addr").stdout and f"{SUBNET}." not in ip("-4", "route").stdout


@dataclass
class Host:
    name: str
    namespace: str
    outside: str  # the veth end on the bridge
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, command: list[str], env: dict[str, str], log_path) -> subprocess.Popen:
        """A command in this host's namespace, in a process group of its own (so its whole tree can be killed)."""
        out = open(log_path, "a")  # noqa: SIM115  # kept open for the child's life
        child = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, *command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(child)
        return child

    def kill(self) -> None:
        """Every process of the host at once (SIGKILL), as a host that dies."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for child in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(10)
        self.processes.clear()

    def pids(self) -> list[int]:
        return [int(p) for p in ip("netns", "pids", self.namespace, check=False).stdout.split()]

    def cut(self) -> None:
        ip("link", "set", self.outside, "down")

    def restore(self) -> None:
        ip("link", "set", self.outside, "up")


class Network:
    """A bridge holding the stores' address, and hosts attached to it."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.tag, self.bridge = tag, f"prbr{tag}"
        self.hosts: list[Host] = []
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{STORES}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def host(self, name: str) -> Host:
        n = len(self.hosts) + 2
        host = Host(name, f"prism-{name}-{self.tag}", f"prv{n}{self.tag}", f"{SUBNET}.{n}")
        inside = f"pri{n}{self.tag}"
        ip("netns", "add", host.namespace)
        ip("link", "add", host.outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", host.namespace)
        ip("link", "set", host.outside, "master", self.bridge)
        ip("link", "set", host.outside, "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inside)
        ip("-n", host.namespace, "link", "set", inside, "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        self.hosts.append(host)
        return host

    def remove(self) -> None:
        for host in self.hosts:
            host.kill()
            ip("netns", "delete", host.namespace, check=False)
            ip("link", "delete", host.outside, check=False)  # gone with its peer, unless the namespace was not
        ip("link", "delete", self.bridge, check=False)

    def leftovers(self) -> list[str]:
        """Namespaces and links of this network still there (none once removed)."""
        found = ip("netns", "list").stdout + ip("link", "show").stdout
        return [line for line in found.splitlines() if self.tag in line]


class Forwarder:
    """The stores that listen on 127.0.0.1 only, reachable at the bridge's address too: each connection there is
    carried to the same port on 127.0.0.1 and back."""

    def __init__(self, ports: list[int]) -> None:
        self.listeners = []
        self._stop = threading.Event()
        for port in ports:
            listener = socket.create_server((STORES, port))
            listener.settimeout(0.2)
            self.listeners.append(listener)
            threading.Thread(target=self._accept, args=(listener, port), daemon=True).start()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while not self._stop.is_set():
            try:
                downstream, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", port))
            except OSError:
                downstream.close()
                continue
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        for listener in self.listeners:
            listener.close()
