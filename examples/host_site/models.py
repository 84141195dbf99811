"""The host site's own data: its users and the websites it hosts, in its own database."""

from __future__ import annotations

from flask_login import UserMixin
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

db = SQLAlchemy()


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Only staff may use the mail admin: the host decides that, through OpMail(access=...).
    is_staff: Mapped[bool] = mapped_column(default=False)
    # A customer who is not staff may manage these mail domains (space-separated) and no others.
    mail_domains: Mapped[str] = mapped_column(String(1000), default="")

    def __str__(self) -> str:
        # What opmail's audit log shows as the admin who made a change.
        return self.email

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Site(db.Model):
    """A website the host serves; its page is the ``domain`` blueprint's."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")


def add_user(email: str, password: str, *, staff: bool = False, mail_domains: str = "") -> User:
    user = User(
        email=email, password_hash=generate_password_hash(password), is_staff=staff, mail_domains=mail_domains
    )
    db.session.add(user)
    db.session.commit()
    return user
