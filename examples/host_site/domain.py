"""The public page of each hosted website. The blueprint is called ``domain``: the name a
Flask-Admin view for a ``Domain`` model would take by default, which is why opmail's are ``opmail_*``."""

from __future__ import annotations

from flask import Blueprint, render_template

from .models import Site, db

bp = Blueprint("domain", __name__, url_prefix="/domain")


@bp.route("/<name>")
def show(name: str):
    site = db.first_or_404(db.select(Site).filter_by(domain=name))
    return render_template("domain/show.html", site=site)
