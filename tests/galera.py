"""A 3-node MariaDB Galera cluster on 127.0.0.1 for tests/test_galera.py (docs/scale-out.md).

Debian's ``mariadb-server`` and ``galera-4`` (+ ``rsync``, for the state transfer that brings a
joining node up to date): .ci/run installs them. Each node has a private data directory (made by
mariadb-install-db, owned by ``mysql``), and its own ports for SQL, group communication,
incremental and full state transfer. Node 1 starts the cluster (``--wsrep-new-cluster``), nodes 2
and 3 join it. Nothing of the shared MariaDB on port 3306 is touched.

Only the tests connect: grants are skipped, as for test_db_outage.py's private server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

from tests.conftest import require

PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
NODES = 3
START_WITHIN = 60  # seconds for one node to start and be synced (a joiner copies the data first)
# Failure detection in seconds, not the default 5-15 s: a killed node leaves the cluster quickly,
# so writes on the survivors stall for a moment only.
PROVIDER_OPTIONS = (
    "gcache.size=16M;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S;"
    "evs.suspect_timeout=PT2S;evs.inactive_timeout=PT4S;evs.install_timeout=PT3S"
)


def binary(name: str) -> str | None:
    # Debian installs mariadbd in sbin, which a user's PATH may lack.
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]))


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open until all are known)."""
    probes = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            probes.append(probe)
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@dataclass
class GaleraNode:
    number: int
    root: Path
    port: int  # SQL
    group_port: int  # group communication (gcomm)
    ist_port: int  # incremental state transfer
    sst_port: int  # full state transfer (rsync)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/opmail?charset=utf8mb4"

    def connect(self, timeout: float = 2) -> pymysql.Connection:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", connect_timeout=timeout,
            read_timeout=10, autocommit=True,
        )

    def query(self, sql: str, *args, database: str | None = None, sync_wait: bool = False) -> list[tuple]:
        """``sql``'s rows (``%s`` placeholders; ``%%`` for a literal %)."""
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                if database:
                    connection.select_db(database)
                if sync_wait:  # first apply what the cluster committed elsewhere
                    cursor.execute("SET SESSION wsrep_sync_wait = 1")
                cursor.execute(sql, args)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def rows(self, sql: str, *args) -> list[tuple]:
        """Read opmail's tables on this node as of everything the cluster has committed."""
        return self.query(sql, *args, database="opmail", sync_wait=True)

    def status(self, name: str) -> str | None:
        try:
            found = self.query("SHOW GLOBAL STATUS LIKE %s", name)
        except pymysql.MySQLError:
            return None
        return found[0][1] if found else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


class GaleraCluster:
    """Three nodes; ``start()`` bootstraps node 1 and joins 2 and 3; ``stop()`` ends them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        ports = free_ports(4 * NODES)
        self.nodes = [
            GaleraNode(number, root / f"node{number}", *ports[4 * (number - 1): 4 * number])
            for number in range(1, NODES + 1)
        ]

    def node(self, number: int) -> GaleraNode:
        return self.nodes[number - 1]

    def install(self) -> None:
        mysql = pwd.getpwnam("mysql")
        for node in self.nodes:
            node.root.mkdir()
            subprocess.run(
                [
                    binary("mariadb-install-db"), "--no-defaults", "--user=mysql",
                    f"--datadir={node.root / 'data'}", "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ],
                check=True, capture_output=True, timeout=120,
            )
            for path in (node.root, *node.root.rglob("*")):
                os.chown(path, mysql.pw_uid, mysql.pw_gid)

    def start_node(self, node: GaleraNode, *, new_cluster: bool = False) -> None:
        members = ",".join(f"127.0.0.1:{other.group_port}" for other in self.nodes)
        node.process = subprocess.Popen(
            [
                binary("mariadbd"), "--no-defaults", "--user=mysql",
                f"--datadir={node.root / 'data'}", f"--socket={node.root / 'mysqld.sock'}",
                f"--pid-file={node.root / 'mysqld.pid'}", f"--log-error={node.root / 'error.log'}",
                f"--port={node.port}", "--bind-address=127.0.0.1",
                "--skip-grant-tables", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=0", "--max-connections=200",
                # What Galera requires of every node.
                "--binlog-format=ROW", "--default-storage-engine=InnoDB", "--innodb-autoinc-lock-mode=2",
                "--wsrep-on=ON", f"--wsrep-provider={PROVIDER}", "--wsrep-cluster-name=opmail-test",
                f"--wsrep-cluster-address=gcomm://{members}", f"--wsrep-node-name=node{node.number}",
                f"--wsrep-node-address=127.0.0.1:{node.group_port}",
                f"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{node.group_port};"
                f"ist.recv_addr=127.0.0.1:{node.ist_port};{PROVIDER_OPTIONS}",
                "--wsrep-sst-method=rsync", f"--wsrep-sst-receive-address=127.0.0.1:{node.sst_port}",
                *(["--wsrep-new-cluster"] if new_cluster else []),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.wait_synced(node)

    def wait_synced(self, node: GaleraNode, timeout: float = START_WITHIN) -> None:
        deadline = time.monotonic() + timeout
        while node.status("wsrep_local_state_comment") != "Synced" or node.status("wsrep_ready") != "ON":
            if not node.running() or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"Galera node {node.number} did not start and sync:\n{node.log()}")
            time.sleep(0.2)

    def start(self) -> None:
        self.install()
        self.start_node(self.node(1), new_cluster=True)
        for node in self.nodes[1:]:
            self.start_node(node)
        self.node(1).query(
            "CREATE DATABASE opmail CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )

    def size(self, node: GaleraNode) -> int:
        return int(node.status("wsrep_cluster_size") or 0)

    def kill(self, node: GaleraNode) -> None:
        """``kill -9``: no shutdown, no goodbye to the other nodes."""
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)

    def survivors(self) -> list[GaleraNode]:
        return [node for node in self.nodes if node.running()]

    def wait_for_size(self, size: int, timeout: float = 30) -> None:
        """Until every running node sees a primary cluster of ``size`` nodes and is synced."""
        deadline = time.monotonic() + timeout
        while not all(
            self.size(node) == size and node.status("wsrep_local_state_comment") == "Synced"
            for node in self.survivors()
        ):
            if time.monotonic() > deadline:
                pytest.fail(f"the cluster did not settle at {size} nodes")
            time.sleep(0.2)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            if node.running():
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait()


def require_galera() -> None:
    """The packages are there (in CI, a failure when they are not, never a skip)."""
    missing = [
        what for what, found in (
            ("mariadb-server (mariadbd, mariadb-install-db)", binary("mariadbd") and binary("mariadb-install-db")),
            ("galera-4 (/usr/lib/galera/libgalera_smm.so)", PROVIDER.exists()),
            ("rsync", shutil.which("rsync")),
        ) if not found
    ]
    require(not missing, f"{', '.join(missing)} not installed (see .ci/run)")
    require(os.geteuid() == 0, "the Galera nodes run as the mysql user: the tests must run as root")


@pytest.fixture(scope="module")
def galera() -> Iterator[GaleraCluster]:
    """A started 3-node cluster for the module (it takes 10-15 s), removed afterwards."""
    require_galera()
    # Not under pytest's tmp directory: that one is root's alone (0700), and the nodes run as mysql.
    root = Path(tempfile.mkdtemp(prefix="opmail-galera-"))
    root.chmod(0o755)
    cluster = GaleraCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
