import pytest

from opmail.addresses import InvalidInput, display_domain, normalize_address, normalize_domain


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("jane@example.com", "jane@example.com"),
        ("Bob@Example.COM", "bob@example.com"),
        ("first.last_1-x@sub.example.co.uk", "first.last_1-x@sub.example.co.uk"),
        ("jane@bücher.de", "jane@xn--bcher-kva.de"),
        ("jane@xn--bcher-kva.de", "jane@xn--bcher-kva.de"),
        # IDNA 2008, non-transitional (issue 15): faß.de is its own domain, not fass.de.
        ("jane@faß.de", "jane@xn--fa-hia.de"),
        ("jane@FASS.de", "jane@fass.de"),
        ("jane@xn--fa-hia.de", "jane@xn--fa-hia.de"),
        ("jane@日本語.jp", "jane@xn--wgv71a119e.jp"),
        ("jane@latin日本.jp", "jane@xn--latin-6e1k07e.jp"),  # Latin with Han: how Japanese names mix
        ("jane@аррӏе.com", "jane@xn--80ak6aa92e.com"),  # one script (all Cyrillic) is not a mix
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
    ],
)
def test_valid_addresses_are_stored_lower_case_and_idna(raw, stored):
    assert normalize_address(raw) == stored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "Enter an email address"),
        ("jane", "exactly one @"),
        ("jane@@example.com", "exactly one @"),
        ("a@b@example.com", "exactly one @"),
        ("@example.com", "before @ is empty"),
        ("jane@", "Enter a domain"),
        (".jane@example.com", "must not start"),
        ("-jane@example.com", "must not start"),
        ("jane.@example.com", "must not end"),
        ("ja..ne@example.com", "two dots"),
        ("jane@example..com", "empty labels"),
        ("jane@.example.com", "empty labels"),
        ("jane@example.com.", "must not end with a dot"),
        ("ja ne@example.com", "spaces"),
        (" jane@example.com", "spaces"),
        ('"jane"@example.com', "may only contain a-z 0-9 . _ -"),
        ("jane(comment)@example.com", "may only contain"),
        ("jane+tag@example.com", "may only contain"),
        ("ja/ne@example.com", "may only contain"),
        ("ja$ne@example.com", "may only contain"),
        ("ja`ne@example.com", "may only contain"),
        ("jane@[127.0.0.1]", "domain name such as"),
        ("jane@127.0.0.1", "IP addresses"),
        ("jane@localhost", "at least two labels"),
        ("jane@-example.com", "hyphen"),
        ("jane@exa_mple.com", "letters, digits and hyphens"),
        ("jane\r\n@example.com", "control or invisible"),
        ("jane\x00@example.com", "control or invisible"),
        ("ja\u200bne@example.com", "control or invisible"),
        ("jane@exa\u202emple.com", "control or invisible"),
        ("a" * 65 + "@example.com", "longer than 64"),
        ("jane@" + "a" * 64 + ".com", "at most 63"),
        ("jane@" + ".".join(["a" * 60] * 5), "longer than 253"),
        ("a" * 64 + "@" + ".".join(["b" * 62] * 3) + ".cd", "longer than 254"),
        ("jane@xn--zz.com", "'xn--zz' is not valid punycode"),
        ("jane@xn--.com", "not valid punycode"),
        ("jane@p\u0430ypal.com", "mixes Cyrillic and Latin letters"),
        ("jane@xn--pypal-4ve.com", "mixes Cyrillic and Latin letters"),
        ("jane@\u03b1bc.com", "mixes Greek and Latin letters"),
        ("jane@\U0001f4a9.la", "not a valid international host name"),
        ("jane@xn--ls8h.la", "not a valid international host name"),
        ("jane@" + "a" * 63 + "\u00e9.com", "at most 63"),
    ],
)
def test_bad_addresses_are_refused_with_a_message(raw, message):
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.").replace("(", r"\(")):
        normalize_address(raw)


def test_domain_shown_in_unicode():
    assert display_domain(normalize_domain("BÜCHER.de")) == "bücher.de"
    # The standard library's IDNA 2003 codec could not show this one (it round-trips to fass.de).
    assert display_domain("xn--fa-hia.de") == "faß.de"
    assert display_domain("xn--zz.com") == "xn--zz.com"  # a stored form that does not decode stays


# --- init-db reports what IDNA 2008 changes in a database stored under IDNA 2003 (issue 15) ---------

def test_init_db_reports_stored_names_idna_2008_refuses_and_changes_none(app, runner):
    """Rows an earlier release stored (its IDNA 2003 codec took them): reported, never changed."""
    from sqlalchemy import select

    from opmail.db import get_session
    from opmail.models import MailAlias, MailDomain

    with app.app_context():
        db = get_session()
        for name in ("xn--zz.com", "xn--pypal-4ve.com", "xn--fa-hia.de", "fass.de"):
            db.add(MailDomain(domain=name))
        db.flush()
        domain_id = db.scalar(select(MailDomain.id).where(MailDomain.domain == "fass.de"))
        db.add(MailAlias(domain_id=domain_id, alias_email="info@fass.de", destination_email="x@xn--zz.org"))
        db.commit()

    result = runner.invoke(args=["opmail", "init-db"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "IDNA 2008: the domain xn--pypal-4ve.com is refused now (The domain part 'pаypal' mixes Cyrillic "
        "and Latin letters, as look-alikes of other names do: write each part in one script.) Left as it "
        "is: change it by hand.",
        "IDNA 2008: the domain xn--zz.com is refused now (The domain part 'xn--zz' is not valid punycode "
        "(an xn-- name must decode to an international name).) Left as it is: change it by hand.",
        "IDNA 2008: the destination x@xn--zz.org is refused now (The domain part 'xn--zz' is not valid "
        "punycode (an xn-- name must decode to an international name).) Left as it is: change it by hand.",
        "Schema ready.",
    ]
    with app.app_context():
        stored = get_session().scalars(select(MailDomain.domain).order_by(MailDomain.domain)).all()
    assert stored == ["fass.de", "xn--fa-hia.de", "xn--pypal-4ve.com", "xn--zz.com"]


def test_init_db_on_a_clean_database_reports_nothing_more(app, runner):
    result = runner.invoke(args=["opmail", "init-db"])
    assert result.output == "Schema ready.\n"
