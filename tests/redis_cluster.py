"""A real Redis Cluster for tests: 3 masters and 3 replicas of Debian's redis-server on free
loopback ports, created with ``redis-cli --cluster create`` and stopped afterwards.

``cluster-node-timeout`` is short (1 s) so a killed master's replica takes over within a few
seconds. Every wait has a deadline.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.crc import key_slot

from progress.redis_server import find_redis_server
from tests.processes import stop_process

NODE_TIMEOUT_MS = 1000


class RedisClusterNode:
    """One redis-server with ``cluster-enabled yes`` in its own directory."""

    def __init__(self, port: int, root: Path) -> None:
        self.port = port
        self.dir = root / str(port)
        self.dir.mkdir()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process (it answers PING shortly after)."""
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "no",
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--maxclients", "10000",
        ]  # fmt: skip
        with (self.dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def client(self) -> redis.Redis:
        """A plain client to this node alone (CLUSTER INFO, ROLE...)."""
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2)

    def kill(self) -> None:
        """SIGKILL: a crash, no goodbye to the cluster."""
        stop_process(self.process, signal.SIGKILL, 5)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        stop_process(self.process, signal.SIGTERM, 5)

    @property
    def alive(self) -> bool:
        """The process runs."""
        return self.process is not None and self.process.poll() is None


class RedisCluster:
    """Six nodes (3 masters with a replica each) on loopback; ``with`` starts and stops."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self._root = tempfile.TemporaryDirectory(prefix="redis-cluster-")
        root = Path(self._root.name)
        self.nodes = [RedisClusterNode(_free_pair(), root) for _ in range(masters * (1 + replicas))]
        self.replicas = replicas

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def start(self, timeout: float = 30) -> RedisCluster:
        """Start the nodes, create the cluster, wait until every node says cluster_state:ok."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            _wait(lambda n=node: _pings(n), deadline, f"node {node.address} up")
        create = [
            shutil.which("redis-cli") or "redis-cli",
            "--cluster", "create", *(node.address for node in self.nodes),
            "--cluster-replicas", str(self.replicas), "--cluster-yes",
        ]  # fmt: skip
        done = subprocess.run(
            create, capture_output=True, timeout=max(1.0, deadline - time.monotonic())
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout!r}{done.stderr!r}")
        self.wait_ok(deadline - time.monotonic())
        return self

    def wait_ok(self, timeout: float = 20) -> None:
        """Until every live node reports ``cluster_state:ok`` and agrees on 3 serving masters."""
        deadline = time.monotonic() + timeout
        _wait(self._settled, deadline, "cluster_state:ok on every node")

    def _settled(self) -> bool:
        live = [node for node in self.nodes if node.alive]
        if not all(_state_ok(node) and _replica_synced(node) for node in live):
            return False
        views = [_slot_masters(node) for node in live]
        ports = {node.port for node in live}
        expected = len(self.nodes) // (1 + self.replicas)
        return all(
            view is not None and len(set(view.values())) == expected and set(view.values()) <= ports
            for view in views
        ) and all(view == views[0] for view in views)

    def masters(self) -> list[RedisClusterNode]:
        """The live nodes serving slots as masters, as the first live node sees them."""
        for node in self.nodes:
            view = _slot_masters(node) if node.alive else None
            if view is not None:
                ports = set(view.values())
                return [n for n in self.nodes if n.port in ports]
        return []

    def master_of(self, key: str) -> RedisClusterNode:
        """The master serving ``key``'s slot, as the first live node sees it."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            view = _slot_masters(node) if node.alive else None
            if view is None:
                continue
            for (start, end), port in view.items():
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"no live node knows who serves slot {slot}")

    def first_slots(self, node: RedisClusterNode, count: int) -> range:
        """The lowest ``count`` slots ``node`` serves (what a reshard from it moves first)."""
        view = _slot_masters(node) or {}
        start = min(first for (first, _), port in view.items() if port == node.port)
        return range(start, start + count)

    def reshard(
        self, source: RedisClusterNode, target: RedisClusterNode, slots: int, timeout: float = 60
    ) -> None:
        """``redis-cli --cluster reshard``: move ``slots`` slots (the source's lowest first)
        with their keys from ``source`` to ``target``; then wait until every node agrees."""
        move = [
            shutil.which("redis-cli") or "redis-cli",
            "--cluster", "reshard", source.address,
            "--cluster-from", _node_id(source), "--cluster-to", _node_id(target),
            "--cluster-slots", str(slots), "--cluster-yes",
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(move, capture_output=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster reshard: {done.stdout!r}{done.stderr!r}")
        self.wait_ok(max(1.0, timeout - (time.monotonic() - started)))

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()

    def close(self) -> None:
        """Stop every node and delete their directories."""
        self.stop()
        self._root.cleanup()

    def __enter__(self) -> RedisCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_: object) -> None:
        self.close()


def _free_pair() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    for _ in range(200):
        port = random.randrange(20000, 55000)
        if _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _node_id(node: RedisClusterNode) -> str:
    with node.client() as client:
        raw = client.execute_command("CLUSTER", "MYID")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _slot_masters(node: RedisClusterNode) -> dict[tuple[int, int], int] | None:
    """Slot ranges and the port of the master serving each, as ``node`` sees them."""
    try:
        with node.client() as client:
            slots = client.execute_command("CLUSTER", "SLOTS")
    except redis.RedisError:
        return None
    return {(int(start), int(end)): int(master[1]) for start, end, master, *_ in slots}


def _pings(node: RedisClusterNode) -> bool:
    if not node.alive:
        raise RuntimeError(f"redis-server exited: see {node.dir / 'redis.log'}")
    try:
        with node.client() as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _replica_synced(node: RedisClusterNode) -> bool:
    """A master, or a replica whose link to its master is up (so it can take over)."""
    try:
        with node.client() as client:
            info = client.info("replication")
    except redis.RedisError:
        return False
    return info.get("role") == "master" or info.get("master_link_status") == "up"


def _state_ok(node: RedisClusterNode) -> bool:
    try:
        with node.client() as client:
            info = client.execute_command("CLUSTER", "INFO")
    except redis.RedisError:
        return False
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def _wait(check: Callable[[], bool], deadline: float, what: str) -> None:
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)
