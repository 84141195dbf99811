"""The webhook benchmark's floor: a bare Flask endpoint doing one raw PyMySQL upsert per call.

``gunicorn bench.floor:app`` with ``BENCH_FLOOR_MYSQL_URL`` set. No validation, no ORM, no sync log:
what a Flask app on this server and database cannot beat, measured beside the webhook in each run.
"""

from __future__ import annotations

import functools
import os

import pymysql
import sqlalchemy as sa
from flask import Flask, jsonify, request

TABLE = "bench_floor"
_url = sa.make_url(os.environ["BENCH_FLOOR_MYSQL_URL"])
app = Flask(__name__)


@functools.cache
def _connection() -> pymysql.Connection:
    """One per worker process, kept open like a pool's."""
    return pymysql.connect(
        host=_url.host, port=_url.port or 3306, user=_url.username, password=_url.password or "",
        database=_url.database, charset="utf8mb4", autocommit=True,
    )


def _cursor():
    return _connection().cursor()


@app.post("/api/sync/account")
def upsert():
    body = request.get_json(force=True)
    with _cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (email, password) VALUES (%s, %s) "
            "ON DUPLICATE KEY UPDATE password = VALUES(password)",
            (body["email"], body.get("password", "")),
        )
    return jsonify(status="ok")
