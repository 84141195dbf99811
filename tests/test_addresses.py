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
    ],
)
def test_bad_addresses_are_refused_with_a_message(raw, message):
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.").replace("(", r"\(")):
        normalize_address(raw)


def test_domain_shown_in_unicode():
    assert display_domain(normalize_domain("BÜCHER.de")) == "bücher.de"
