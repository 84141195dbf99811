"""opmail at scale: list pages, bulk actions and Add Account on a seeded database.

Run by ``make bench`` (or ``.venv/bin/python -m bench.bench --help``). Each backend gets a database of
its own, created, seeded with ``flask opmail seed-demo``'s code and removed at the end: a temporary
SQLite file, and a MariaDB database ``opmail_bench`` (dropped and recreated) on the server of
``OPMAIL_BENCH_MYSQL_URL``. Prints a table and writes ``bench/results.json``.

Every request goes through the Flask test client, logged in as an admin, so times include routing,
the access check, the queries and the template. For each list request the statements it ran are
recorded and then replayed on a raw DB-API cursor: that replay is the floor no framework can beat,
and page time ÷ floor is what opmail adds on top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from bench import webhook
from opmail import create_app, demo
from opmail.auth import set_admin_password
from opmail.db import create_schema, get_engine
from opmail.models import MailAccount, MailAlias, MailDomain, utcnow
from opmail.rules.domains import create_domain

HERE = Path(__file__).resolve().parent
ADMIN_PASSWORD = "bench admin password"
BULK_SIZE = 10_000
# A figure stops repeating after this long (but has at least two samples): some requests take seconds.
BUDGET_SECONDS = 5
_CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"|name="csrf_token"[^>]*value="([^"]+)"')


class Statements:
    """Counts (and, when asked, records) the SQL statements an engine runs."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self.recorded: list[tuple[str, object]] | None = None
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, parameters, _context, _executemany) -> None:
        self.count += 1
        if self.recorded is not None:
            self.recorded.append((statement, parameters))

    @contextmanager
    def counting(self, record: bool = False):
        self.count, self.recorded = 0, [] if record else None
        yield self
        self.recorded = self.recorded if record else None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class Bench:
    def __init__(self, backend: str, url: str, size: int, domains: int, repeat: int) -> None:
        self.backend, self.size, self.domains, self.repeat = backend, size, domains, repeat
        self.app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": url,
                "SECRET_KEY": "bench",
                # bcrypt's cost is the same at any table size: keep it out of the Add Account figure.
                "OPMAIL_BCRYPT_ROUNDS": 4,
                "MAIL_SYNC_SECRET": "",
            },
            instance_path=tempfile.mkdtemp(prefix="opmail-bench-"),
        )
        self.results: dict = {"backend": backend, "accounts": size, "domains": domains}
        with self.app.app_context():
            create_schema()
            set_admin_password("bench", ADMIN_PASSWORD)
            self.engine = get_engine()
        self.statements = Statements(self.engine)
        self.client = self.app.test_client()
        login_page = self.client.get("/admin/login").text
        self.client.post(
            "/admin/login",
            data={"username": "bench", "password": ADMIN_PASSWORD, "csrf_token": self._token(login_page)},
        )
        self.token = self._token(self.client.get("/admin/login").text)

    @staticmethod
    def _token(html: str) -> str:
        match = _CSRF_RE.search(html)
        return match.group(1) or match.group(2)

    # --- the figures ---------------------------------------------------------------------------

    def add_account(self, label: str, domain: str) -> None:
        """Add Account through the admin form, a few times: its time must not depend on table size."""
        times, counts = [], []
        for number in range(self.repeat):
            email = f"added-{label}-{number}@{domain}"
            with self.statements.counting() as seen:
                start = time.perf_counter()
                response = self.client.post(
                    "/admin/accounts/new/",
                    data={"email": email, "password": "bench-mailbox-1", "quota_mb": "0", "csrf_token": self.token},
                )
                times.append(time.perf_counter() - start)
            assert response.status_code == 302, (response.status_code, response.text[:500])
            counts.append(seen.count)
        self.results.setdefault("add_account", {})[label] = {
            "p50_ms": ms(statistics.median(times)),
            "p95_ms": ms(percentile(times, 0.95)),
            "statements": max(counts),
        }

    def seed(self) -> None:
        with self.app.app_context():
            start = time.perf_counter()
            demo.seed_demo(self.size, self.domains, "{PLAIN}unused-bench-hash")
            self.results["seed_seconds"] = round(time.perf_counter() - start, 1)
            self._seed_aliases()

    def _seed_aliases(self) -> None:
        """seed-demo adds no aliases: one per demo domain (info@, two destinations), for the list."""
        now = utcnow()
        with self.engine.begin() as connection:
            ids = connection.execute(sa.select(MailDomain.id, MailDomain.domain).where(MailDomain.domain.like("demo%"))).all()
            for start in range(0, len(ids), 1000):
                connection.execute(
                    sa.insert(MailAlias),
                    [
                        {"domain_id": domain_id, "alias_email": f"info@{name}", "destination_email": f"{who}@{name}",
                         "is_active": True, "created_at": now, "updated_at": now}
                        for domain_id, name in ids[start : start + 1000]
                        for who in ("office", "owner")
                    ],
                )
            if self.engine.dialect.name in ("mysql", "mariadb"):
                connection.exec_driver_sql("ANALYZE TABLE mail_aliases")

    def list_pages(self) -> None:
        domain_name = demo.demo_domain(self.domains // 2)
        probe = str(self.size // 8 + 45)  # e.g. user12545 at 100k: a prefix with ~11 matches
        scenarios = {
            "first page": "/admin/accounts/",
            f"prefix search {probe}": f"/admin/accounts/?q=user{probe}",
            "domain prefix search": f"/admin/accounts/?q={demo.demo_domain(self.domains // 3)}",
            f"substring search *{probe}": f"/admin/accounts/?q=*{probe}",
            "domain filter": f"/admin/accounts/?domain={domain_name}",
            "sort by usage": "/admin/accounts/?sort=usage&dir=desc",
            "sort by quota %": "/admin/accounts/?sort=percent&dir=desc",
            "domain filter, sort by usage": f"/admin/accounts/?domain={domain_name}&sort=usage&dir=desc",
            "near quota filter": "/admin/accounts/?near_quota=1",
            "deep page (last)": "/admin/accounts/?page=1000000",
        }
        self.results["list"] = {name: self._list_page(url) for name, url in scenarios.items()}

    def full_pages(self) -> None:
        """Each list's full page (a first visit, a refresh, a link, a URL opened directly) beside the
        htmx partial that search, filters and the pager swap in, with both sizes. Lists without a
        partial (their pager reloads the page) have the full page only."""
        middle = demo.demo_domain(self.domains // 2)
        with_partial = {
            "accounts": "/admin/accounts/",
            "accounts, domain filter": f"/admin/accounts/?domain={middle}",
            "aliases": "/admin/aliases/",
            "aliases, domain filter": f"/admin/aliases/?domain={middle}",
            "domains": "/admin/domains/",
            "domains, middle page": f"/admin/domains/?page={max(1, self.domains // 100)}",
        }
        full_only = {
            "dashboard": "/admin/",
            "groups": "/admin/groups/",
            "autoresponders": "/admin/autoresponders/",
            "sync log": "/admin/sync-log/",
            "audit log": "/admin/audit/",
        }
        pages = {}
        for name, url in {**with_partial, **full_only}.items():
            full = self._request(url, {})
            assert "<html" in full.pop("text"), url
            partial = self._request(url, {"HX-Request": "true"}) if name in with_partial else None
            if partial:
                assert "<html" not in partial.pop("text"), url
            pages[name] = {"url": url, "full": full, "partial": partial}
        prefix = middle[: len(middle) - 9]  # "demo0500": up to 20 of the names starting so
        picker = self._request(f"/admin/accounts/domain-options/?domain={prefix}", {"HX-Request": "true"})
        shown = picker.pop("text").count('role="option"')
        self.results["pages"] = pages
        self.results["picker"] = {"prefix": prefix, "options": shown, **picker}

    def domain_admin_pages(self) -> None:
        """The same pages for a domain admin of two demo domains beside the server admin: its
        scope is one more IN list in each statement, which must not make its pages slower."""
        managed = [demo.demo_domain(self.domains // 2), demo.demo_domain(self.domains // 3)]
        with self.app.app_context():
            set_admin_password("bench-domain", ADMIN_PASSWORD, managed)
        server_client, self.client = self.client, self.app.test_client()
        login_page = self.client.get("/admin/login").text
        self.client.post(
            "/admin/login",
            data={"username": "bench-domain", "password": ADMIN_PASSWORD, "csrf_token": self._token(login_page)},
        )
        urls = {
            "accounts": "/admin/accounts/",
            "accounts, sort by usage": "/admin/accounts/?sort=usage&dir=desc",
            "accounts, search user1": "/admin/accounts/?q=user1",
            "dashboard": "/admin/",
            "aliases": "/admin/aliases/",
            "domains": "/admin/domains/",
            "audit log": "/admin/audit/",
        }
        scoped = {name: self._request(url, {"HX-Request": "true"} if "accounts" in name else {}) for name, url in urls.items()}
        self.client = server_client
        compared = {}
        for name, url in urls.items():
            server = self._request(url, {"HX-Request": "true"} if "accounts" in name else {})
            scoped[name].pop("text")
            server.pop("text")
            compared[name] = {"domain_admin": scoped[name], "server_admin": server}
        self.results["domain_admin"] = {"domains": managed, "pages": compared}

    def _request(self, url: str, headers: dict) -> dict:
        """p50/p95, statements and size of GET ``url`` (after a warm-up request); ``text``: the body."""
        self.client.get(url, headers=headers)
        times = []
        deadline = time.perf_counter() + BUDGET_SECONDS
        while len(times) < self.repeat and (len(times) < 2 or time.perf_counter() < deadline):
            with self.statements.counting() as seen:
                start = time.perf_counter()
                response = self.client.get(url, headers=headers)
                times.append(time.perf_counter() - start)
            assert response.status_code == 200, (url, response.status_code)
        return {
            "p50_ms": ms(statistics.median(times)),
            "p95_ms": ms(percentile(times, 0.95)),
            "statements": seen.count,
            "kb": round(len(response.data) / 1000, 1),
            "text": response.text,
        }

    def _list_page(self, url: str) -> dict:
        headers = {"HX-Request": "true"}  # the table fragment, as search/sort/pager swaps it in
        self.client.get(url, headers=headers)  # warm caches, like any page after the first
        times = []
        deadline = time.perf_counter() + BUDGET_SECONDS
        while len(times) < self.repeat and (len(times) < 2 or time.perf_counter() < deadline):
            with self.statements.counting(record=True) as seen:
                start = time.perf_counter()
                response = self.client.get(url, headers=headers)
                times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.status_code
        statements, recorded = seen.count, seen.recorded
        tracemalloc.start()
        self.client.get(url, headers=headers)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        floor = self._replay(recorded)
        # The rows query (the one that must read an index in order), not the count or the dropdowns.
        plan = self._plan(*next(r for r in recorded if "FROM mail_accounts" in r[0] and "ORDER BY" in r[0]))
        page = statistics.median(times)
        count = re.search(r"data-result-count>([^<]*)<", response.text)
        return {
            "p50_ms": ms(page),
            "p95_ms": ms(percentile(times, 0.95)),
            "statements": statements,
            "raw_sql_ms": ms(floor),
            "ratio": round(page / floor, 1) if floor else None,
            "peak_kib": peak // 1024,
            "samples": len(times),
            "shows": count.group(1).strip() if count else "",
            "plan": plan,
        }

    def _plan(self, statement: str, parameters) -> str:
        """The database's plan for a statement, one step per table: index used, and any sort."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if self.engine.dialect.name == "sqlite":
                cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
                return "; ".join(row[-1] for row in cursor.fetchall())
            cursor.execute(f"EXPLAIN {statement}", parameters)
            names = [column[0] for column in cursor.description]
            steps = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            return "; ".join(
                f"{step['table']}: {step['type']} {step['key'] or '-'} ~{step['rows']} rows"
                + (f" ({step['Extra']})" if step["Extra"] else "")
                for step in steps
            )
        finally:
            raw.rollback()
            raw.close()

    def _replay(self, recorded: list[tuple[str, object]]) -> float:
        """Median time of the same statements on a raw DB-API cursor (fetching every row)."""
        raw = self.engine.raw_connection()
        try:
            times = []
            deadline = time.perf_counter() + BUDGET_SECONDS
            while len(times) < self.repeat and (len(times) < 2 or time.perf_counter() < deadline):
                cursor = raw.cursor()
                start = time.perf_counter()
                for statement, parameters in recorded:
                    cursor.execute(statement, parameters)
                    cursor.fetchall()
                times.append(time.perf_counter() - start)
                cursor.close()
            raw.rollback()
            return statistics.median(times)
        finally:
            raw.close()

    def bulk(self) -> None:
        """Suspend, Edit Quota and Delete on BULK_SIZE selected accounts, through the action form:
        once on neighbouring rows (added together, like an imported domain), once on rows spread
        over the whole table (each one on another index page)."""
        with self.app.app_context(), self.engine.connect() as connection:
            every_id = connection.scalars(sa.select(MailAccount.id).order_by(MailAccount.id)).all()
        middle = len(every_id) // 2
        neighbours = every_id[middle : middle + BULK_SIZE]
        rest = every_id[:middle] + every_id[middle + BULK_SIZE :]
        selections = {"neighbours": neighbours, "spread": random.Random(0).sample(rest, min(BULK_SIZE, len(rest)))}
        actions = {
            "suspend": {},
            "edit quota": {"quota_mb": "2048"},
            "delete": {"admin_password": ADMIN_PASSWORD},
        }
        self.results["bulk"] = {}
        for selection, ids in selections.items():
            for name, extra in actions.items():
                data = {
                    "action": "quota" if name == "edit quota" else name,
                    "rowid": [str(i) for i in ids],
                    "url": "/admin/accounts/",
                    "csrf_token": self.token,
                    **extra,
                }
                with self.statements.counting() as seen:
                    start = time.perf_counter()
                    response = self.client.post("/admin/accounts/action/", data=data)
                    elapsed = time.perf_counter() - start
                assert response.status_code == 302, (response.status_code, response.text[:500])
                self.results["bulk"][f"{name}, {selection}"] = {
                    "ms": ms(elapsed), "statements": seen.count, "selected": len(ids)
                }
            with self.app.app_context(), self.engine.connect() as connection:
                left = connection.scalar(sa.select(sa.func.count()).where(MailAccount.id.in_(ids)))
            assert left == 0, f"{left} selected accounts survived the bulk delete"

    def run(self, pages_only: bool = False) -> dict:
        if self.engine.dialect.name in ("mysql", "mariadb"):
            # Bulk times depend on it most: the 1M-account tables are about 0.8 GB with their indexes.
            with self.engine.connect() as connection:
                pool = connection.scalar(sa.text("SELECT @@innodb_buffer_pool_size"))
            self.results["innodb_buffer_pool_mb"] = int(pool) // 2**20
        with self.app.app_context():
            create_domain("added.example.net")
        if not pages_only:
            self.add_account("empty", "added.example.net")
        self.seed()
        if not pages_only:
            self.add_account("seeded", "added.example.net")
        self.full_pages()
        self.domain_admin_pages()
        self.list_pages()
        if not pages_only:
            self.bulk()
        with self.app.app_context():
            get_engine().dispose()
        return self.results


# --- databases ---------------------------------------------------------------------------------


@contextmanager
def sqlite_database():
    with tempfile.TemporaryDirectory(prefix="opmail-bench-") as folder:
        yield f"sqlite:///{folder}/bench.db"


@contextmanager
def mysql_database(server_url: str, name: str = "opmail_bench"):
    url = sa.make_url(server_url)
    server = sa.create_engine(url.set(database=""))
    with server.begin() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        connection.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield url.set(database=name, query={"charset": "utf8mb4"}).render_as_string(hide_password=False)
    finally:
        with server.begin() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        server.dispose()


# --- output ------------------------------------------------------------------------------------


def table(results: list[dict]) -> str:
    lines = []
    for result in results:
        lines.append(
            f"\n{result['backend']} · {result['accounts']:,} accounts in {result['domains']:,} domains "
            f"(seeded in {result['seed_seconds']} s)"
            + (f", InnoDB buffer pool {result['innodb_buffer_pool_mb']:,} MB" if "innodb_buffer_pool_mb" in result else "")
        )
        lines.append(
            f"{'list request':38} {'p50 ms':>8} {'p95 ms':>8} {'stmts':>5} {'raw SQL ms':>10} "
            f"{'ratio':>6} {'peak KiB':>8}  shows"
        )
        for name, row in result["list"].items():
            lines.append(
                f"{name:38} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['statements']:5} "
                f"{row['raw_sql_ms']:10.2f} {row['ratio'] or 0:6.1f} {row['peak_kib']:8}  {row['shows']}"
            )
            lines.append(f"{'':6}plan: {row['plan']}")
        lines.append(
            f"\n{'full page beside its htmx partial':38} {'full p50':>8} {'full p95':>8} {'KB':>6} {'stmts':>5}"
            f" {'part p50':>8} {'KB':>6} {'stmts':>5} {'full÷part':>9}"
        )
        for name, row in result["pages"].items():
            full, partial = row["full"], row["partial"]
            line = f"{name:38} {full['p50_ms']:8.1f} {full['p95_ms']:8.1f} {full['kb']:6.1f} {full['statements']:5}"
            if partial:
                line += (
                    f" {partial['p50_ms']:8.1f} {partial['kb']:6.1f} {partial['statements']:5}"
                    f" {full['p50_ms'] / partial['p50_ms']:9.2f}"
                )
            lines.append(line)
        picker = result["picker"]
        lines.append(
            f"{'picker: domains starting ' + picker['prefix']:38} {picker['p50_ms']:8.1f} {picker['p95_ms']:8.1f}"
            f" {picker['kb']:6.1f} {picker['statements']:5}  ({picker['options']} options)\n"
        )
        scoped = result.get("domain_admin")
        if scoped:
            lines.append(
                f"{'domain admin of 2 domains beside server':38} {'dom p50':>8} {'stmts':>5} {'srv p50':>8}"
                f" {'stmts':>5} {'dom÷srv':>8}"
            )
            for name, row in scoped["pages"].items():
                mine, server = row["domain_admin"], row["server_admin"]
                lines.append(
                    f"{name:38} {mine['p50_ms']:8.1f} {mine['statements']:5} {server['p50_ms']:8.1f}"
                    f" {server['statements']:5} {mine['p50_ms'] / server['p50_ms']:8.2f}"
                )
            lines.append("")
        for name, row in result.get("bulk", {}).items():
            lines.append(
                f"bulk {name} ({row['selected']:,})".ljust(38)
                + f" {row['ms']:8.1f} {'':8} {row['statements']:5}"
            )
        for label, row in result.get("add_account", {}).items():
            lines.append(
                f"Add Account ({label} table)".ljust(38)
                + f" {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['statements']:5}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite-accounts", type=int, default=100_000)
    parser.add_argument("--mysql-accounts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="Requests per figure (p50/p95).")
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("OPMAIL_BENCH_MYSQL_URL", os.environ.get("OPMAIL_TEST_MYSQL_URL")),
        help="MariaDB server URL (a database opmail_bench is created and dropped there); "
        "MariaDB is skipped without one.  [default: $OPMAIL_BENCH_MYSQL_URL or $OPMAIL_TEST_MYSQL_URL]",
    )
    parser.add_argument("--backend", choices=("sqlite", "mysql", "both"), default="both")
    parser.add_argument(
        "--pages-only", action="store_true", help="Only the list pages (no Add Account, bulk actions, webhook)."
    )
    parser.add_argument(
        "--domains", type=int, default=None, help="Domains per run.  [default: accounts ÷ 100]"
    )
    parser.add_argument(
        "--webhook-seconds", type=int, default=10, help="wrk's duration per server (MariaDB only; 0 = skip)."
    )
    parser.add_argument("--webhook-connections", type=int, default=4, help="wrk's open connections.")
    args = parser.parse_args(argv)

    results = []
    if args.backend in ("sqlite", "both"):
        with sqlite_database() as url:
            domains = args.domains or args.sqlite_accounts // 100
            results.append(Bench("SQLite", url, args.sqlite_accounts, domains, args.repeat).run(args.pages_only))
            print(table(results[-1:]), flush=True)
    if args.backend in ("mysql", "both"):
        if args.mysql_url:
            with mysql_database(args.mysql_url) as url:
                domains = args.domains or args.mysql_accounts // 100
                results.append(Bench("MariaDB", url, args.mysql_accounts, domains, args.repeat).run(args.pages_only))
                print(table(results[-1:]), flush=True)
                webhook_wanted = args.webhook_seconds and not args.pages_only
                if webhook_wanted and webhook.wrk_available():
                    results[-1]["webhook"] = webhook.run(
                        url, domains, args.webhook_seconds, args.webhook_connections
                    )
                    print(webhook.table(results[-1]["webhook"]), flush=True)
                elif webhook_wanted:
                    print("Webhook benchmark skipped: wrk is not installed.", file=sys.stderr)
        else:
            print("MariaDB skipped: set OPMAIL_BENCH_MYSQL_URL (or pass --mysql-url).", file=sys.stderr)
    report = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()}, "runs": results}
    (HERE / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nWrote {HERE / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
