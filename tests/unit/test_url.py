"""Broker URL parsing, formatting, alternates and password masking (no I/O)."""

from __future__ import annotations

import dataclasses
import ssl
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from broker.errors import ConfigurationError
from broker.url.parse import (
    TLS_SCHEMES,
    URL_OPTIONS,
    BrokerURL,
    format_url,
    mask_password,
    parse_url,
    parse_urls,
)

SECRET = "s3cr3t-Pa55"

# -- good URLs ----------------------------------------------------------------

# (url, scheme, hostname, port, userid, password, virtual_host)
GOOD = [
    ("amqp://guest:guest@localhost:5672//", "amqp", "localhost", 5672, "guest", "guest", "/"),
    ("amqp://localhost", "amqp", "localhost", None, None, None, None),
    ("amqp://localhost/", "amqp", "localhost", None, None, None, None),
    ("amqp://h/%2F", "amqp", "h", None, None, None, "/"),
    ("amqp://h/%2f", "amqp", "h", None, None, None, "/"),
    ("amqp://h/foo", "amqp", "h", None, None, None, "foo"),
    ("amqp://h/foo/bar", "amqp", "h", None, None, None, "foo/bar"),
    ("amqp://h///x", "amqp", "h", None, None, None, "//x"),
    ("amqp://h/a%20b%3Fc", "amqp", "h", None, None, None, "a b?c"),
    ("amqp://h/a b", "amqp", "h", None, None, None, "a b"),  # raw spaces taken literally
    ("AMQP://H:1/v", "amqp", "H", 1, None, None, "v"),
    ("pyamqp://u@h", "pyamqp", "h", None, "u", None, None),
    ("amqps://u:p@h:65535", "amqps", "h", 65535, "u", "p", None),
    ("memory://", "memory", None, None, None, None, None),
    ("memory:///", "memory", None, None, None, None, None),
    ("memory:////", "memory", None, None, None, None, "/"),
    ("amqp://u:p@/vh", "amqp", None, None, "u", "p", "vh"),
    ("amqp://:5672//", "amqp", None, 5672, None, None, "/"),
    ("amqp://[::1]:5672//", "amqp", "::1", 5672, None, None, "/"),
    ("amqp://[::1]", "amqp", "::1", None, None, None, None),
    ("amqp://u:p@[2001:db8::1]:5671/x", "amqp", "2001:db8::1", 5671, "u", "p", "x"),
    ("amqp://[fe80::1%25eth0]:5672//", "amqp", "fe80::1%eth0", 5672, None, None, "/"),
    ("amqp://127.0.0.1:5672//", "amqp", "127.0.0.1", 5672, None, None, "/"),
    ("amqp://us%40er:p%3Aa%2Fs%3Bs%3F%23%25@h//", "amqp", "h", None, "us@er", "p:a/s;s?#%", "/"),
    ("amqp://u:p@ss@h//", "amqp", "h", None, "u", "p@ss", "/"),  # raw '@': host after the last
    ("amqp://u:a:b@h//", "amqp", "h", None, "u", "a:b", "/"),  # ':' in the password is fine
    ("amqp://:pw@h//", "amqp", "h", None, None, "pw", "/"),
    ("amqp://u:@h//", "amqp", "h", None, "u", None, "/"),  # empty password means absent
    ("amqp://r%C3%A9mi:%E2%82%AC@h//", "amqp", "h", None, "rémi", "€", "/"),
    ("  amqp://h//  ", "amqp", "h", None, None, None, "/"),
    ("my-bus+tls.v2://rabbit_1:15672", "my-bus+tls.v2", "rabbit_1", 15672, None, None, None),
]


@pytest.mark.parametrize(("url", "scheme", "hostname", "port", "userid", "password", "vhost"), GOOD)
def test_parse_good_urls(
    url: str,
    scheme: str,
    hostname: str | None,
    port: int | None,
    userid: str | None,
    password: str | None,
    vhost: str | None,
) -> None:
    parsed = parse_url(url)
    assert (parsed.scheme, parsed.hostname, parsed.port) == (scheme, hostname, port)
    assert (parsed.userid, parsed.password, parsed.virtual_host) == (userid, password, vhost)
    assert parsed.options == {}
    assert parse_url(parsed.as_uri(include_password=True)) == parsed


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("heartbeat=10", {"heartbeat": 10.0}),
        ("heartbeat=0", {"heartbeat": 0.0}),
        ("heartbeat=2.5&connect_timeout=.5", {"heartbeat": 2.5, "connect_timeout": 0.5}),
        ("login_method=plain", {"login_method": "PLAIN"}),
        ("login_method=External", {"login_method": "EXTERNAL"}),
        ("ssl=true", {"ssl": True}),
        ("ssl=On", {"ssl": True}),
        ("ssl=0", {"ssl": False}),
        ("ssl=no", {"ssl": False}),
        ("ssl_ca_certs=/etc/ca.pem", {"ssl": {"ca_certs": "/etc/ca.pem"}}),
        (
            "ssl=yes&ssl_certfile=/c%20d.pem&ssl_keyfile=k.pem",
            {"ssl": {"certfile": "/c d.pem", "keyfile": "k.pem"}},
        ),
        ("ssl_cert_reqs=required", {"ssl": {"cert_reqs": ssl.CERT_REQUIRED}}),
        ("ssl_certfile=/home/me@corp/c.pem", {"ssl": {"certfile": "/home/me@corp/c.pem"}}),
        ("ssl_cert_reqs=CERT_NONE", {"ssl": {"cert_reqs": ssl.CERT_NONE}}),
        ("ssl_cert_reqs=Optional", {"ssl": {"cert_reqs": ssl.CERT_OPTIONAL}}),
        (
            "ssl_check_hostname=false&ssl_server_hostname=rabbit.example",
            {"ssl": {"check_hostname": False, "server_hostname": "rabbit.example"}},
        ),
        ("connection_name=worker%201%26co", {"connection_name": "worker 1&co"}),
        ("connection_name=a+b", {"connection_name": "a+b"}),  # '+' is not a space
        ("frame_max=4096&channel_max=65535", {"frame_max": 4096, "channel_max": 65535}),
        ("frame_max=2147483647&channel_max=1", {"frame_max": 2**31 - 1, "channel_max": 1}),
        ("heartbeat=1&&", {"heartbeat": 1.0}),  # empty query items are ignored
    ],
)
def test_query_options_are_converted(query: str, expected: dict[str, Any]) -> None:
    parsed = parse_url(f"amqp://h//?{query}")
    assert dict(parsed.options) == expected
    assert parse_url(parsed.as_uri()) == parsed


def test_cert_reqs_is_a_verify_mode() -> None:
    options = parse_url("amqps://h//?ssl_cert_reqs=none").options
    assert options["ssl"]["cert_reqs"] is ssl.VerifyMode.CERT_NONE


def test_options_are_read_only() -> None:
    url = parse_url("amqp://h//?heartbeat=5")
    with pytest.raises(TypeError):
        url.options["heartbeat"] = 1  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        url.port = 1  # type: ignore[misc]


def test_every_option_has_a_description() -> None:
    assert set(URL_OPTIONS) >= {"heartbeat", "connect_timeout", "ssl", "frame_max"}
    for name, option in URL_OPTIONS.items():
        assert option.name == name
        assert option.description and "\n" not in option.description


def test_options_without_vhost_or_host_format_back() -> None:
    assert parse_url("amqp://h?heartbeat=3").as_uri() == "amqp://h?heartbeat=3"
    assert parse_url("memory://?connection_name=x").as_uri() == "memory://?connection_name=x"


def test_as_uri_writes_options_in_table_order() -> None:
    url = parse_url("amqp://h//?frame_max=8192&ssl_keyfile=k&heartbeat=1&ssl_certfile=c")
    assert url.as_uri() == "amqp://h//?heartbeat=1&ssl_certfile=c&ssl_keyfile=k&frame_max=8192"


# -- malformed input ----------------------------------------------------------

BAD = [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    ("localhost", "missing '://'"),
    ("amqp:/localhost", "missing '://'"),
    ("amqp:localhost:5672", "missing '://'"),
    ("://localhost", "scheme ''"),
    ("1amqp://h", "scheme '1amqp'"),
    ("am_qp://h", "scheme 'am_qp'"),
    ("amqp://h:abc//", "port"),
    ("amqp://h:0//", "port 0 is out of range"),
    ("amqp://h:65536//", "port 65536 is out of range; allowed: 1..65535"),
    ("amqp://h:-1//", "port '-1' is not an integer"),
    ("amqp://h:5672.0//", "port '5672.0' is not an integer"),
    ("amqp://h://", "port '' is not an integer"),
    ("amqp://::1//", "IPv6 addresses go in brackets"),
    ("amqp://[::1//", "unbalanced '['"),
    ("amqp://::1]:5672//", "unbalanced brackets"),
    ("amqp://[::1]x//", "unexpected 'x' after host [::1]"),
    ("amqp://[localhost]//", "host [localhost] in brackets is not an IPv6 address"),
    ("amqp://[12::34::56]//", "'12::34::56' is not a valid IPv6 address"),
    ("amqp://ho st//", "host name 'ho st' contains whitespace"),
    ("amqp://ho%20st//", "host name 'ho st' contains whitespace"),
    ("amqp://h%2Fx//", "host name 'h/x' contains one of"),
    ("amqp://h/%FF", "virtual host is not valid UTF-8"),
    ("amqp://h/v@x", "raw '@' after the host"),
    ("amqp://h//#top", "raw '#'"),
    ("amqp://h//?hearbeat=1", "unknown option 'hearbeat' (did you mean 'heartbeat'?)"),
    ("amqp://h//?Heartbeat=1", "did you mean 'heartbeat'"),
    ("amqp://h//?bogus=1", "valid options: heartbeat, connect_timeout"),
    ("amqp://h//?heartbeat=1&heartbeat=2", "'heartbeat' is repeated"),
    ("amqp://h//?heartbeat", "'heartbeat' has no '=value'"),
    ("amqp://h//?heartbeat=-1", "heartbeat='-1' is invalid: expected a finite number >= 0"),
    ("amqp://h//?heartbeat=abc", "heartbeat='abc' is invalid"),
    ("amqp://h//?heartbeat=nan", "heartbeat='nan' is invalid"),
    ("amqp://h//?heartbeat=inf", "heartbeat='inf' is invalid"),
    ("amqp://h//?heartbeat=", "heartbeat='' is invalid"),
    (
        "amqp://h//?connect_timeout=0",
        "connect_timeout='0' is invalid: expected a finite number > 0",
    ),
    ("amqp://h//?login_method=GSSAPI", "expected one of AMQPLAIN, PLAIN, EXTERNAL"),
    ("amqp://h//?ssl=maybe", "ssl='maybe' is invalid: expected one of true/false"),
    ("amqp://h//?ssl_check_hostname=2", "ssl_check_hostname='2' is invalid"),
    ("amqp://h//?ssl_cert_reqs=sometimes", "ssl_cert_reqs='sometimes' is invalid"),
    ("amqp://h//?ssl_ca_certs=", "ssl_ca_certs='' is invalid: expected a non-empty string"),
    ("amqp://h//?ssl_server_hostname=", "ssl_server_hostname='' is invalid"),
    ("amqp://h//?frame_max=100", "frame_max='100' is invalid: expected an integer in 4096.."),
    ("amqp://h//?frame_max=2147483648", "frame_max='2147483648' is invalid"),
    ("amqp://h//?channel_max=0", "channel_max='0' is invalid: expected an integer in 1..65535"),
    ("amqp://h//?channel_max=65536", "channel_max='65536' is invalid"),
    ("amqp://h//?channel_max=1e3", "channel_max='1e3' is invalid"),
    ("amqp://h//?ssl=false&ssl_ca_certs=/ca", "ssl=false contradicts ssl_ca_certs"),
    ("amqp://h//?connection_name=", "connection_name='' is invalid: expected a non-empty string"),
    # contradictions: the scheme says TLS
    ("amqps://h//?ssl=false", "amqps:// always uses TLS and ssl=false contradicts it"),
    ("AMQPS://h//?ssl=off", "use amqp:// for a plain connection"),
    ("rediss://h/0?ssl=false", "rediss:// always uses TLS and ssl=false contradicts it"),
    ("rediss://h/0?ssl=0", "use redis:// for a plain connection"),
    # a virtual host that cannot be one
    ("amqp://a//,amqp://b//", "virtual host '/,amqp://b//' contains '://'"),
    ("amqp://a//,amqp://b//", "separate several broker URLs with ';'"),
    ("amqp://h/a%00b", "virtual host 'a\\x00b' contains a NUL character"),
    ("amqp://h/%ZZ", "the virtual host has a '%' that starts no percent escape ('%ZZ'"),
    ("amqp://h/50%", "a literal '%' is written %25"),
    ("amqp://h/%2", "the virtual host has a '%' that starts no percent escape"),
    ("amqp://us%er@h//", "the user name has a '%' that starts no percent escape"),
    ("amqp://h//?connection_name=a%ZZ", "the value of connection_name has a '%'"),
    ("amqp://[fe80::1%eth0]//", "the host name has a '%' that starts no percent escape"),
]


@pytest.mark.parametrize(("url", "message"), BAD)
def test_malformed_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    assert message in str(info.value)


@pytest.mark.parametrize("value", [None, 42, b"amqp://h//", ["amqp://h//"]])
def test_parse_url_rejects_non_strings(value: object) -> None:
    with pytest.raises(ConfigurationError, match="must be a str, got"):
        parse_url(value)  # type: ignore[arg-type]


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_url("nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "a b"}, "scheme 'a b'"),
        ({"scheme": "amqp", "port": 70000}, "port 70000 is out of range"),
        ({"scheme": "amqp", "port": "5672"}, "port '5672' is not an integer"),
        ({"scheme": "amqp", "port": True}, "not an integer"),
        ({"scheme": "amqp", "hostname": "a:b"}, "not a valid IPv6 address"),
        ({"scheme": "amqp", "userid": 7}, "userid must be a str"),
        ({"scheme": "amqp", "options": {"heartbeat": -1}}, "heartbeat=-1 is invalid"),
        ({"scheme": "amqp", "options": {"ssl": {"verify": True}}}, "unknown ssl option 'verify'"),
        ({"scheme": "amqp", "options": {"hartbeat": 1}}, "did you mean 'heartbeat'"),
        ({"scheme": "amqp", "options": {"ssl": ssl.create_default_context()}}, "ssl="),
    ],
)
def test_constructing_validates_like_parsing(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        BrokerURL(**kwargs)
    assert message in str(info.value)


# -- formatting and round trip ------------------------------------------------


def test_format_url_encodes_special_characters() -> None:
    uri = format_url("amqp", "::1", 5672, "a@b", "p/w;x?#%", "/", include_password=True)
    assert uri == "amqp://a%40b:p%2Fw%3Bx%3F%23%25@[::1]:5672//"
    assert parse_url(uri) == BrokerURL("amqp", "::1", 5672, "a@b", "p/w;x?#%", "/")


def test_format_url_masks_by_default() -> None:
    assert format_url("amqp", "h", None, "guest", SECRET) == "amqp://guest:**@h"
    assert format_url("amqp", "h", password=SECRET, mask="***") == "amqp://:***@h"
    assert format_url("amqp", "h", userid="guest") == "amqp://guest@h"


def test_format_url_writes_options_back() -> None:
    options = {"heartbeat": 10, "ssl": {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": "/ca.pem"}}
    uri = format_url("amqps", "h", options=options)
    assert uri == "amqps://h?heartbeat=10&ssl_ca_certs=/ca.pem&ssl_cert_reqs=required"
    assert parse_url(uri).options == {
        "heartbeat": 10.0,
        "ssl": {"ca_certs": "/ca.pem", "cert_reqs": ssl.CERT_REQUIRED},
    }


def test_empty_ssl_mapping_means_ssl_on() -> None:
    assert BrokerURL("amqp", options={"ssl": {}}).options == {"ssl": True}


def test_constructor_does_not_keep_the_callers_mapping() -> None:
    given_options: dict[str, Any] = {"heartbeat": 1}
    url = BrokerURL("amqp", options=given_options)
    given_options["heartbeat"] = 99
    assert url.options == {"heartbeat": 1.0}


def test_equal_urls_hash_alike() -> None:
    a = parse_url("amqp://u:p@h//?heartbeat=1&frame_max=8192")
    b = parse_url("AMQP://u:p@h/%2F?frame_max=8192&heartbeat=1.0")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, parse_url("amqp://u:q@h//?heartbeat=1&frame_max=8192")}) == 2


def test_replace_revalidates() -> None:
    url = parse_url("amqp://h:5672//")
    assert dataclasses.replace(url, port=5673).port == 5673
    with pytest.raises(ConfigurationError, match="port 0"):
        dataclasses.replace(url, port=0)


_NAME = st.characters(exclude_categories=("Cs",)) | st.sampled_from("@:/%;?#&=+[] \t")
_host_chars = st.characters(
    exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"),
    exclude_characters="/?#@[]\\:",
)
_hosts = st.one_of(
    st.none(),
    st.sampled_from(["localhost", "rabbit_1", "h.example.com"]),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.text(_host_chars, min_size=1, max_size=12),
)
_text_opt = st.text(_NAME, min_size=1, max_size=12)
# A virtual host never holds a NUL or '://' (both refused, see BAD).
_vhosts = _text_opt.filter(lambda vhost: "\x00" not in vhost and "://" not in vhost)
_ssl_dict = st.fixed_dictionaries(
    {},
    optional={
        "ca_certs": _text_opt,
        "certfile": _text_opt,
        "keyfile": _text_opt,
        "cert_reqs": st.sampled_from(list(ssl.VerifyMode)),
        "check_hostname": st.booleans(),
        "server_hostname": _text_opt,
    },
).filter(bool)
_options = st.fixed_dictionaries(
    {},
    optional={
        "heartbeat": st.floats(0, 1e9),
        "connect_timeout": st.floats(0, 1e9, exclude_min=True),
        "login_method": st.sampled_from(["AMQPLAIN", "PLAIN", "EXTERNAL"]),
        "ssl": st.booleans() | _ssl_dict,
        "connection_name": _text_opt,
        "frame_max": st.integers(4096, 2**31 - 1),
        "channel_max": st.integers(1, 65535),
    },
)


@given(
    scheme=st.sampled_from(["amqp", "pyamqp", "amqps", "memory", "My+Bus.2-x"]),
    hostname=_hosts,
    port=st.none() | st.integers(1, 65535),
    userid=st.none() | st.text(_NAME, min_size=1, max_size=12),
    password=st.none() | st.text(_NAME, min_size=1, max_size=12),
    virtual_host=st.none() | _vhosts,
    options=_options,
)
def test_format_then_parse_round_trips(
    scheme: str,
    hostname: str | None,
    port: int | None,
    userid: str | None,
    password: str | None,
    virtual_host: str | None,
    options: dict[str, Any],
) -> None:
    assume(not (scheme in TLS_SCHEMES and options.get("ssl") is False))  # refused: see BAD
    url = BrokerURL(scheme, hostname, port, userid, password, virtual_host, options)
    uri = format_url(
        scheme, hostname, port, userid, password, virtual_host, options, include_password=True
    )
    assert uri == url.as_uri(include_password=True)
    assert parse_url(uri) == url
    assert parse_urls(f"{uri};{uri}") == (url, url)  # no raw ';' leaks into the text
    if password is not None:
        assert parse_url(url.as_uri()).password == "**"


# -- several URLs -------------------------------------------------------------


def test_semicolon_list_is_split() -> None:
    urls = parse_urls("amqp://a:1//;amqp://b/x; amqp://c ")
    assert [(u.hostname, u.port, u.virtual_host) for u in urls] == [
        ("a", 1, "/"),
        ("b", None, "x"),
        ("c", None, None),
    ]


def test_alternates_inherit_nothing() -> None:
    first, second = parse_urls("amqp://u:p@a:5673/prod?heartbeat=5;amqp://b")
    assert (first.userid, first.password, first.port) == ("u", "p", 5673)
    assert (second.userid, second.password, second.port, second.virtual_host) == (
        None,
        None,
        None,
        None,
    )
    assert second.options == {}


def test_lists_and_nested_semicolons_flatten() -> None:
    urls = parse_urls(["amqp://a;amqp://b", "memory://", ("pyamqp://c")])
    assert [(u.scheme, u.hostname) for u in urls] == [
        ("amqp", "a"),
        ("amqp", "b"),
        ("memory", None),
        ("pyamqp", "c"),
    ]
    assert parse_urls(("amqp://x",)) == (parse_url("amqp://x"),)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("amqp://a;;amqp://b", "entry 2 of 'amqp://a;;amqp://b' is empty"),
        ("amqp://a;", "entry 2 of 'amqp://a;' is empty"),
        (";amqp://a", "entry 1 of ';amqp://a' is empty"),
        (["amqp://a", " "], "entry 1 of ' ' is empty"),
        ("", "is empty"),
        ([], "the list of broker URLs is empty"),
        ("amqp://a;b", "entry 2 of 'amqp://a;b' has no '://'"),
        (["amqp://a", 5], "entries must be str, got int"),
        (42, "must be a str or a list of str, got int"),
        ("amqp://a;amqp://b:x", "port"),
    ],
)
def test_bad_url_lists(value: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_urls(value)
    assert message in str(info.value)


# -- secrets stay secret ------------------------------------------------------


def test_password_never_shown() -> None:
    url = parse_url(f"amqp://guest:{SECRET}@h:5672//")
    assert url.password == SECRET
    for shown in (repr(url), str(url), url.as_uri(), f"{url}", repr([url])):
        assert SECRET not in shown
    assert repr(url) == "<BrokerURL amqp://guest:**@h:5672//>"
    assert str(url) == url.as_uri() == "amqp://guest:**@h:5672//"
    assert url.as_uri(mask="<hidden>") == "amqp://guest:<hidden>@h:5672//"
    assert SECRET in url.as_uri(include_password=True)


@pytest.mark.parametrize(
    "url",
    [
        f"amqp://guest:{SECRET}@h:99999//",
        f"amqp://guest:{SECRET}@h:x//",
        f"amqp://guest:{SECRET}@h//?hearbeat=1",
        f"amqp://guest:{SECRET}@h//?heartbeat=-1",
        f"amqp://guest:{SECRET}@[::1//",
        f"amqp://guest:{SECRET}@ho st//",
        f"amqp://guest:{SECRET}@h:5672//?ssl=false&ssl_keyfile=k",
        f"amqp://guest:{SECRET}@h//#x",
        f"am_qp://guest:{SECRET}@h//",
        f"guest:{SECRET}@h",  # no scheme at all
        f"x@amqp:{SECRET}@h",  # garbage before the scheme
        f"amqp://guest:{SECRET}%FF@h//",  # bad percent-encoding in the password
        f"amqp://guest:{SECRET} x@h//",  # raw space in the password
        f"amqp://guest:{SECRET}/x@h//",  # raw '/' in the password
        f"amqp://guest:{SECRET}?x@h//",  # raw '?' in the password
        f"amqp://guest:{SECRET}#x@h//",  # raw '#' in the password
        f"amqp://guest:x?{SECRET}=1@h//",  # raw '?' then '=' in the password
        f"user:{SECRET}@amqp://h//",  # credentials before the scheme
        f"amqp://guest:{SECRET}",  # forgot '@host': the "port" is the password
        f"amqp://guest:{SECRET}//",
        f"amqp://guest:{SECRET}%ZZ@h//",  # a bad percent escape in the password
        f"amqps://guest:{SECRET}@h//?ssl=false",
        f"amqp://guest:{SECRET}@h/a%00b",
        f"amqp://guest:{SECRET}@h//,amqp://b//",
        f"amqp://guest:{SECRET}@[::1]:99999//",
    ],
)
def test_password_not_in_error_messages(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


@pytest.mark.parametrize(
    "value",
    [
        f"amqp://guest:{SECRET};x@h//;amqp://b",  # raw ';' in the password
        f"amqp://guest:{SECRET}@a;;amqp://b",
        [f"amqp://guest:{SECRET}@a", "b"],
        f"amqp://a;amqp://guest:{SECRET}@b:0//",
        f"guest:{SECRET}@h",
        f"amqp://h;guest:{SECRET}@h",
    ],
)
def test_password_not_in_list_error_messages(value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_urls(value)
    assert SECRET not in str(info.value)


def test_error_display_keeps_what_is_not_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(f"amqp://guest:{SECRET}@rabbit:x//?ssl_certfile=/home/me@corp/c.pem")
    assert "'amqp://guest:**@rabbit:x//?ssl_certfile=/home/me@corp/c.pem'" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        parse_url(f"amqp://guest:{SECRET}/x@rabbit//")
    assert "'amqp://**@rabbit//'" in str(info.value)


def test_mask_password_in_free_text() -> None:
    text = (
        f"could not connect to amqp://guest:{SECRET}@a:5672// nor "
        f"amqps://admin:{SECRET}@[::1]/prod?heartbeat=5; alternates were "
        f"'amqp://u:{SECRET}@b;amqp://v:{SECRET}@c', memory:// and amqp://h:5672//"
    )
    masked = mask_password(text)
    assert SECRET not in masked
    assert masked == (
        "could not connect to amqp://guest:**@a:5672// nor "
        "amqps://admin:**@[::1]/prod?heartbeat=5; alternates were "
        "'amqp://u:**@b;amqp://v:**@c', memory:// and amqp://h:5672//"
    )
    assert mask_password(text, mask="XXX").count("XXX") == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amqp://u:p@ss@h//", "amqp://u:**@h//"),  # raw '@' in the password
        ("amqp://u:p;x@h//", "amqp://u:**@h//"),
        ("amqp://:pw@h", "amqp://:**@h"),
        ("amqp://u@h", "amqp://u@h"),  # no password, nothing to hide
        ("amqp://h:5672;amqp://u:p@h2", "amqp://h:5672;amqp://u:**@h2"),
        ("no urls here: user:pw@host", "no urls here: user:pw@host"),
        ("amqp://u:**@h", "amqp://u:**@h"),  # idempotent
    ],
)
def test_mask_password_cases(text: str, expected: str) -> None:
    assert mask_password(text) == expected


# -- URLs are quoted as typed ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "quoted"),
    [
        ("amqp://[::1]:99999//", "'amqp://[::1]:99999//'"),
        ("amqp://[2001:db8::1]:0/x", "'amqp://[2001:db8::1]:0/x'"),
        (f"amqp://u:{SECRET}@[::1]:99999//", "'amqp://u:**@[::1]:99999//'"),
        (f"amqps://u:{SECRET}@[::1]//?ssl=false", "'amqps://u:**@[::1]//?ssl=false'"),
        ("amqp://[::1]/%ZZ", "'amqp://[::1]/%ZZ'"),
    ],
)
def test_errors_quote_ipv6_urls_as_typed(url: str, quoted: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    assert f"invalid broker URL {quoted}:" in str(info.value)


# -- what Connection() refuses when it is made ---------------------------------------


@pytest.mark.parametrize(
    ("hostname", "message"),
    [
        ("amqp:/localhost", "invalid broker URL 'amqp:/localhost': missing '://' after the scheme"),
        ("amqp:localhost:5672", "invalid broker URL 'amqp:localhost:5672': missing '://'"),
        ("rabbit-1:abc", "invalid broker URL 'rabbit-1:abc': port"),
        ("rabbit-1:99999", "invalid broker URL 'rabbit-1:99999': port 99999 is out of range"),
        ("amqp://a;amqp:/b", "entry 2 of 'amqp://a;amqp:/b' has no '://'"),
        ("amqps://h//?ssl=false", "'amqps://h//?ssl=false': amqps:// always uses TLS"),
        ("rediss://h/0?ssl=false", "'rediss://h/0?ssl=false': rediss:// always uses TLS"),
        ("amqp://a//,amqp://b//", "'amqp://a//,amqp://b//': virtual host '/,amqp://b//'"),
        ("amqp://h/%ZZ", "'amqp://h/%ZZ': the virtual host has a '%'"),
        ("amqp://h/a%00b", "'amqp://h/a%00b': virtual host 'a\\x00b' contains a NUL"),
        ("redis://h/abc", "broker 'redis://h/abc': the path of a redis URL is the database number"),
        ("redis://h/-1", "got virtual host '-1'"),
        ("redis://h/2147483648", "got virtual host '2147483648'"),
        ("redis://h/0;redis://h2/x", "broker 'redis://h2/x': the path of a redis URL"),
    ],
)
def test_connection_refuses_malformed_urls_when_made(hostname: str, message: str) -> None:
    from broker import Connection

    with pytest.raises(ConfigurationError) as info:
        Connection(hostname)  # no I/O: nothing listens on these hosts
    assert message in str(info.value)
    assert "amqp://amqp:" not in str(info.value)  # never quoted with a scheme added


def test_connection_quotes_a_bare_host_as_typed_with_the_password_masked() -> None:
    from broker import Connection

    with pytest.raises(ConfigurationError) as info:
        Connection(f"guest:{SECRET}@rabbit-1")  # a login needs a URL: scheme://
    assert SECRET not in str(info.value)
    assert "'**@rabbit-1'" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        Connection(f"redis://:{SECRET}@h/orders")
    assert SECRET not in str(info.value)
    assert "broker 'redis://:**@h/orders'" in str(info.value)


def test_bare_host_names_still_mean_the_default_transport() -> None:
    from broker import Connection

    assert Connection("rabbit-1").as_uri() == "amqp://guest:**@rabbit-1:5672//"
    assert Connection("rabbit-1:5673;[::1]").describe_alternates() == (
        "amqp://guest:**@rabbit-1:5673//;amqp://guest:**@[::1]:5672//"
    )
    assert Connection(["rabbit-1"], alternates=["amqp://b//"]).alternate_count == 2
    assert Connection([], alternates=["amqp://b//"]).alternate_count == 1
    with pytest.raises(ConfigurationError, match="hostname and alternates are both empty"):
        Connection([])
