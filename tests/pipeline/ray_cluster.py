"""A real Ray cluster on this host for tests: a head and worker nodes started with ``ray start``.

Each node is one ``ray start --block`` process in a session of its own, so a node -- its raylet,
object store, agents and the workers it started -- can be killed as a whole
(:func:`tests.faults.faults.kill_session`), as a machine that loses power would be. The head
listens on 127.0.0.1; further nodes take 127.0.0.2, 127.0.0.3... (all loopback), so a driver on
127.0.0.1 always attaches to the head's raylet and the nodes tell apart by address. Everything
lives under a private temporary folder; :meth:`RayCluster.stop` ends every process of the
cluster (and only those: ``ray stop`` would stop every Ray on the host) even after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.faults import kill_session

#: How long a node may take to start on a busy two-core machine.
START_TIMEOUT_S = 120
#: Tries per node: a raylet gives up (a fatal error) when its agents take over 15 s to start,
#: which a loaded machine can exceed once; a second try finds Ray's files in the page cache.
START_TRIES = 3
#: The head notices a dead node after about this long (Ray's default is up to a minute).
HEALTH_CHECK_ENV = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "5",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RayNode:
    ip: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> set[int]:
        """Every process of this node (its session)."""
        import psutil

        found = set()
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getsid(p.info["pid"]) == self.proc.pid:
                    found.add(p.info["pid"])
            except (ProcessLookupError, PermissionError):
                continue
        return found

    def actors(self, name: str = "MapWorker") -> list[int]:
        """The processes of this node running an actor whose class name holds ``name``."""
        import psutil

        found = []
        for pid in self.pids():
            try:
                if name in " ".join(psutil.Process(pid).cmdline()):
                    found.append(pid)
            except psutil.Error:
                continue
        return found


@dataclass
class RayCluster:
    """A head (and worker nodes) on loopback, each ``num_cpus`` CPUs, no dashboard."""

    temp: Path
    port: int
    nodes: list[RayNode] = field(default_factory=list)

    @classmethod
    def start(cls, nodes: int = 1, num_cpus: int = 1) -> RayCluster:
        port = free_port()
        # Ray's socket paths must stay short: not under pytest's deep tmp_path.
        cluster = cls(temp=Path("/tmp") / f"garrison-ray-{port}", port=port)
        try:
            cluster._start_node(head=True, num_cpus=num_cpus)
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=num_cpus)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def head(self) -> RayNode:
        return self.nodes[0]

    def add_node(self, num_cpus: int = 1) -> RayNode:
        return self._start_node(head=False, num_cpus=num_cpus)

    def _start_node(self, *, head: bool, num_cpus: int) -> RayNode:
        for attempt in range(1, START_TRIES + 1):
            node = self._launch(head=head, num_cpus=num_cpus)
            problem = self._wait_started(node)
            if problem is None:
                self.nodes.append(node)
                return node
            kill_session(node.proc)
            if attempt == START_TRIES:
                raise RuntimeError(f"Ray node {node.ip} did not start:\n{problem}")
        raise AssertionError("unreachable")

    def _launch(self, *, head: bool, num_cpus: int) -> RayNode:
        ip = f"127.0.0.{len(self.nodes) + 1}"
        self.temp.mkdir(exist_ok=True)
        command = [str(Path(sys.executable).with_name("ray")), "start", "--block"]
        command += [f"--node-ip-address={ip}", f"--num-cpus={num_cpus}", "--disable-usage-stats"]
        command += ["--object-store-memory=80000000"]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **HEALTH_CHECK_ENV}
        if head:
            command += ["--head", f"--port={self.port}", "--include-dashboard=false"]
            command += [f"--temp-dir={self.temp}"]
        else:
            command += [f"--address={self.address}"]
            # A worker node does not turn token authentication on by itself when the head has
            # (Ray 2.60): without this it is refused with InvalidAuthToken.
            env.setdefault("RAY_AUTH_MODE", "token")
        log = self.temp / f"node-{len(self.nodes)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        return RayNode(ip=ip, proc=proc, log=log)

    def _wait_started(self, node: RayNode) -> str | None:
        """None once ``node`` is up; else the end of its log (or of the head's, if it stopped)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"Ray runtime started" not in node.log.read_bytes():
            if self.nodes and not self.head.alive:
                head = self.head.log.read_text(errors="replace")[-3000:]
                return f"the head stopped (exit {self.head.proc.returncode}):\n{head}"
            if node.proc.poll() is not None or time.monotonic() > deadline:
                return node.log.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        return None

    def kill(self, node: RayNode) -> None:
        """``kill -9`` of every process of ``node``."""
        kill_session(node.proc)

    def stop(self) -> None:
        """End every process of the cluster and remove its folder."""
        import psutil

        for node in reversed(self.nodes):
            if node.alive:
                node.proc.send_signal(signal.SIGTERM)  # ray start --block stops its children
        for node in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.proc.wait(timeout=10)
            kill_session(node.proc)
        # Anything that left its node's session but still names the cluster's folder.
        leftovers = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if str(self.temp) in " ".join(proc.info["cmdline"] or []):
                leftovers.append(proc)
        for proc in leftovers:
            proc.kill()
        psutil.wait_procs(leftovers, timeout=5)
        shutil.rmtree(self.temp, ignore_errors=True)
