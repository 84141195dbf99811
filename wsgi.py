"""Production entry point: ``gunicorn wsgi:app`` (the same app as ``flask --app app run``)."""

from app import app  # noqa: F401
