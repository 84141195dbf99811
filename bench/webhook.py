"""The Panel webhook under gunicorn, loaded by wrk, beside a bare floor app (bench/floor.py).

Both servers run ``gunicorn`` with 2 sync workers on loopback against the same MariaDB database and
get the same wrk load (bench/webhook.lua: alternating ``create`` and ``password`` calls, a new address
per call, a pre-computed bcrypt hash) for a bounded time. ratio = webhook req/s ÷ floor req/s.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path

import sqlalchemy as sa

from opmail.passwords import hash_password

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKERS = 2
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(app: str, env: dict[str, str]):
    """``gunicorn -w 2`` serving ``app`` on a free loopback port; yields the base URL and its pid."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}", app],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gunicorn {app} did not start: {server.stderr.read().decode()[-2000:]}"
                    ) from None
                time.sleep(0.2)
        time.sleep(1)  # both workers up, not only the arbiter's socket
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def _children(pid: int) -> list[int]:
    """The gunicorn workers (the arbiter itself does no request work)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _mariadbd() -> list[int]:
    """The local MariaDB server's pid, when it runs on this machine (else its CPU is not counted)."""
    # pgrep exits 1 when there is none: no server to count.
    found = subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        # Fields 14 and 15 (utime, stime) follow the ")" that ends the command name.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def parse_wrk(output: str) -> dict:
    """Requests/s, p50/p99 (``--latency``) and failed responses from wrk's report."""

    def latency(percent: str) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return round(float(value) * _UNITS[unit], 2)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "req_per_s": round(float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), 1),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1).strip() if socket_errors else "",
    }


def load(url: str, env: dict[str, str], seconds: int, connections: int) -> dict:
    command = [
        "wrk", "--threads", "2", "--connections", str(connections), "--duration", f"{seconds}s",
        "--timeout", "5s", "--latency", "--script", str(HERE / "webhook.lua"), f"{url}/api/sync/account",
    ]
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return parse_wrk(result.stdout)


def run(database_url: str, domains: int, seconds: int, connections: int, rounds: int = 3) -> dict:
    """Both servers up, then ``rounds`` of the floor's load and the webhook's in turn; the figures
    of all rounds together, and the ratio of each round.

    Alternating rounds, not one long run each: on a shared machine the CPU's speed drifts over a
    minute, which would fall on one server only.
    """
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS bench_floor (email VARCHAR(254) PRIMARY KEY, "
            "password VARCHAR(255) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )
    secret = secrets.token_hex(16)
    load_env = {
        "SYNC_SECRET": secret,
        # What the Panel sends: a finished bcrypt hash, stored as given (no hashing per call).
        "SYNC_PASSWORD_HASH": hash_password("bench mailbox password", "BLF-CRYPT").removeprefix("{BLF-CRYPT}"),
        "SYNC_DOMAINS": str(domains),
    }
    results = {"workers": WORKERS, "connections": connections, "seconds": seconds, "rounds": rounds}
    servers = {
        "floor": ("bench.floor:app", {"BENCH_FLOOR_MYSQL_URL": database_url}),
        "webhook": (
            "wsgi:app",
            {"DATABASE_URL": database_url, "MAIL_SYNC_SECRET": secret, "SECRET_KEY": secrets.token_hex(16)},
        ),
    }
    loads: dict[str, list[dict]] = {name: [] for name in servers}
    cpu = {name: {"python": 0.0, "mariadb": 0.0} for name in servers}
    with ExitStack() as stack:
        started = {name: stack.enter_context(gunicorn(app, env)) for name, (app, env) in servers.items()}
        for number in range(rounds):
            for name, (url, arbiter) in started.items():
                workers = _children(arbiter)
                before = {"python": _cpu_seconds(workers), "mariadb": _cpu_seconds(_mariadbd())}
                # A fresh address prefix per server and round: creates never hit an existing row.
                loads[name].append(load(url, {**load_env, "SYNC_RUN": f"{name[0]}{number}"}, seconds, connections))
                for process, start in before.items():
                    cpu[name][process] += _cpu_seconds(workers if process == "python" else _mariadbd()) - start
    for name, rows in loads.items():
        requests = sum(row["requests"] for row in rows)
        results[name] = {
            "requests": requests,
            "req_per_s": round(sum(row["req_per_s"] for row in rows) / rounds, 1),
            "p50_ms": statistics.median(row["p50_ms"] for row in rows),
            "p99_ms": max(row["p99_ms"] for row in rows),  # the worst round's
            "non_2xx": sum(row["non_2xx"] for row in rows),
            "socket_errors": "; ".join(row["socket_errors"] for row in rows if row["socket_errors"]),
            # CPU per request: what the throughput ratio is made of, less sensitive to other load.
            **{f"{process}_cpu_us": round(used / requests * 1e6) for process, used in cpu[name].items()},
        }
    with engine.connect() as connection:
        # Every create must have made its account: the load measured work that was done.
        results["webhook"]["accounts_created"] = connection.scalar(
            sa.text("SELECT COUNT(*) FROM mail_accounts WHERE email LIKE 'whw%'")
        )
        connection.exec_driver_sql("DROP TABLE bench_floor")
    engine.dispose()
    results["round_ratios"] = [
        round(hook["req_per_s"] / floor["req_per_s"], 2) for floor, hook in zip(loads["floor"], loads["webhook"], strict=True)
    ]
    results["ratio"] = round(results["webhook"]["req_per_s"] / results["floor"]["req_per_s"], 2)
    return results


def table(results: dict) -> str:
    lines = [
        f"\nWebhook · gunicorn {results['workers']} sync workers · wrk {results['connections']} connections, "
        f"{results['rounds']} alternating rounds of {results['seconds']} s each",
        f"{'server':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'non-2xx':>8} "
        f"{'CPU µs/request: Python':>23} {'MariaDB':>8}",
    ]
    for name, label in (("floor", "floor (Flask + 1 PyMySQL upsert)"), ("webhook", "webhook (create / password)")):
        row = results[name]
        lines.append(
            f"{label:34} {row['req_per_s']:8.1f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
            f"{row['requests']:9} {row['non_2xx']:8} {row['python_cpu_us']:23} {row['mariadb_cpu_us']:8}"
        )
    rounds = " / ".join(f"{ratio:.2f}" for ratio in results["round_ratios"])
    lines.append(f"{'webhook ÷ floor':34} {results['ratio']:8.2f}   (rounds: {rounds})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The webhook figure alone (``python -m bench.webhook``): a small seeded database, then ratio."""
    import argparse

    from bench.bench import mysql_database
    from opmail import create_app, demo
    from opmail.db import create_schema, get_engine

    parser = argparse.ArgumentParser(description="The webhook ÷ floor benchmark alone (MariaDB, wrk).")
    parser.add_argument("--accounts", type=int, default=10_000, help="Seeded accounts (default 10,000).")
    parser.add_argument("--seconds", type=int, default=10, help="wrk's duration per server.")
    parser.add_argument("--connections", type=int, default=4, help="wrk's open connections.")
    parser.add_argument("--rounds", type=int, default=3, help="Alternating rounds of both loads.")
    parser.add_argument(
        "--mysql-url", default=os.environ.get("OPMAIL_BENCH_MYSQL_URL", os.environ.get("OPMAIL_TEST_MYSQL_URL"))
    )
    args = parser.parse_args(argv)
    if not args.mysql_url or not wrk_available():
        print("Needs a MariaDB URL (OPMAIL_BENCH_MYSQL_URL) and wrk.", file=sys.stderr)
        return 1
    domains = max(1, args.accounts // 100)
    with mysql_database(args.mysql_url, "opmail_bench_webhook") as url:
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "MAIL_SYNC_SECRET": ""})
        with app.app_context():
            create_schema()
            demo.seed_demo(args.accounts, domains, "{PLAIN}unused-bench-hash")
            get_engine().dispose()
        results = run(url, domains, args.seconds, args.connections, args.rounds)
    print(table(results))
    print(f"webhook ÷ floor {results['ratio']:.2f} ({' / '.join(map(str, results['round_ratios']))}) · p99 {results['webhook']['p99_ms']} ms · CPU per call "
          f"{results['webhook']['python_cpu_us']} µs Python + {results['webhook']['mariadb_cpu_us']} µs MariaDB "
          f"(floor {results['floor']['python_cpu_us']} + {results['floor']['mariadb_cpu_us']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
