"""Broker URLs: parsing, formatting, lists of alternates and password masking.

The accepted form is::

    scheme://userid:password@hostname:port/virtual_host?key=value&key=value

* ``scheme`` is required and case-insensitive (stored lower-case): ``amqp``,
  ``pyamqp``, ``amqps``, ``memory`` or any registered transport name. Which
  transport it names is decided by :mod:`transports`, not here.
* Every other part is optional. An absent part is ``None`` and the transport
  fills in its default later; an empty user name, password, host name or
  virtual host counts as absent.
* User name, password, host name and virtual host are percent-decoded. Inside
  them, write ``/ ? # @ ; %`` and spaces percent-encoded (``%2F %3F %23 %40
  %3B %25 %20``). A raw ``@`` in the password is tolerated: the host starts
  after the last ``@`` of the authority.
* IPv6 literals go in brackets, ``amqp://[::1]:5672//``, and are stored
  without them.
* The path names the virtual host: ``amqp://h//`` and ``amqp://h/%2F`` mean
  ``/``, ``amqp://h/foo`` means ``foo``. No path, or a bare ``amqp://h/``,
  means ``None``: "use the default" (``/`` for AMQP). A virtual host never
  holds a NUL or ``://`` (``amqp://a//,amqp://b//`` is two URLs joined by the
  wrong separator, not a virtual host).
* A ``%`` always starts an escape of two hex digits: ``%ZZ`` is refused,
  a literal ``%`` is written ``%25``.
* The query holds the options of :data:`URL_OPTIONS`, each at most once;
  values are percent-decoded (``+`` stays a plus) and converted. The ``ssl_*``
  keys are gathered into ``options["ssl"]``, a dict keyed ``ca_certs``,
  ``certfile``, ``keyfile``, ``cert_reqs``, ``check_hostname``,
  ``server_hostname``; ``ssl=true`` alone gives ``options["ssl"] = True``.
* ``amqps://`` and ``rediss://`` (:data:`TLS_SCHEMES`) always use TLS:
  ``ssl=false`` contradicts them and is refused.
* Several brokers: ``"amqp://a;amqp://b"``, a list, or both (see
  :func:`parse_urls`). Each alternate stands alone and inherits nothing.

Malformed input raises :class:`~broker.errors.ConfigurationError` naming the
part, the bad value and what is allowed, and quoting the URL as it was typed
with anything that may be a password masked (:func:`masked_input`).
Passwords never appear in messages, ``repr``, ``str`` or
:meth:`BrokerURL.as_uri` unless explicitly asked for.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, unquote

from broker.errors import ConfigurationError
from broker.url.query import URL_OPTIONS, URLOption
from broker.url.query import InvalidValue as _Invalid
from broker.url.query import normalise_options as _normalise_options
from broker.url.query import unknown_option as _unknown_option

__all__ = ["TLS_SCHEMES", "URL_OPTIONS", "BrokerURL", "ParsedEntry", "URLOption", "format_url",
           "mask_password", "masked_input", "parse_entries", "parse_url", "parse_urls"]  # fmt: skip

#: Schemes that mean TLS: their URLs may not say ``ssl=false``.
TLS_SCHEMES = frozenset({"amqps", "rediss"})

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# scheme://user:PASSWORD@ -- the password runs to the last '@' before a '/', '?', '#' or space.
_CREDENTIALS_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)[^\s/?#]+@")
_PORTISH_RE = re.compile(r"[-+0-9.:]*")  # shown in errors; anything else may be a password
_HOST_FORBIDDEN = frozenset("/?#@[]\\")
_BARE_FORBIDDEN = frozenset("/?#@ \t")  # in a bare host[:port] (no '://')
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODING_HINT = "percent-encode '/', '?', '#', '@' and ';' in the user name, password and vhost"
_FORM = "scheme://[user[:password]@][host][:port][/vhost][?key=value&...]"


def _check_host(host: str) -> None:
    if " " in host or not host.isprintable():  # isprintable() is False for other whitespace
        raise _Invalid(f"host name {host!r} contains whitespace or a control character")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Invalid(f"host {host!r} is not a valid IPv6 address") from None
    elif _HOST_FORBIDDEN.intersection(host):
        raise _Invalid(f"host name {host!r} contains one of / ? # @ [ ] \\")


def _check_vhost(vhost: str) -> None:
    if "\x00" in vhost:
        raise _Invalid(f"virtual host {vhost!r} contains a NUL character")
    if "://" in vhost:
        raise _Invalid(
            f"virtual host {vhost!r} contains '://': separate several broker URLs with ';' "
            f"('amqp://a//;amqp://b//'), and write a '/' in a virtual host as %2F"
        )


@dataclass(frozen=True, slots=True)
class BrokerURL:
    """One parsed broker URL. Immutable, hashable, and safe to print.

    Constructing one directly validates and normalises every field the same
    way :func:`parse_url` does (``options`` may hold URL strings or converted
    values), so ``dataclasses.replace(url, port=5673)`` is safe too.
    """

    scheme: str
    hostname: str | None = None
    port: int | None = None
    userid: str | None = None
    password: str | None = field(default=None, repr=False)
    virtual_host: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        try:
            self._normalise()
        except _Invalid as exc:
            raise ConfigurationError(str(exc)) from None

    def _normalise(self) -> None:
        set_ = object.__setattr__  # the dataclass is frozen; this is its initialiser
        if not isinstance(self.scheme, str) or not _SCHEME_RE.fullmatch(self.scheme):
            garbled = isinstance(self.scheme, str) and bool({":", "@"} & set(self.scheme))
            shown = "(not shown)" if garbled else repr(self.scheme)  # may hold credentials
            raise _Invalid(f"scheme {shown} must be a letter then letters, digits, '+-.'")
        set_(self, "scheme", self.scheme.lower())
        for name in ("hostname", "userid", "password", "virtual_host"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _Invalid(f"{name} must be a str or None, got {type(value).__name__}")
            set_(self, name, value or None)  # empty means absent
        if self.hostname is not None:
            _check_host(self.hostname)
        if self.virtual_host is not None:
            _check_vhost(self.virtual_host)
        port = self.port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
            raise _Invalid(f"port {port!r} is not an integer; allowed: 1..65535")
        if port is not None and not 1 <= port <= 65535:
            raise _Invalid(f"port {port} is out of range; allowed: 1..65535")
        set_(self, "options", MappingProxyType(_normalise_options(self.options or {})))
        if self.scheme in TLS_SCHEMES and self.options.get("ssl") is False:
            plain = self.scheme[:-1]
            raise _Invalid(
                f"{self.scheme}:// always uses TLS and ssl=false contradicts it; "
                f"drop ssl=false, or use {plain}:// for a plain connection"
            )

    def as_uri(self, *, include_password: bool = False, mask: str = "**") -> str:
        """The URL as text; the password is replaced by ``mask`` unless asked for.

        With ``include_password=True`` the result parses back to an equal
        :class:`BrokerURL`: every part is percent-encoded as needed.
        """
        out = [self.scheme, "://"]
        if self.userid is not None or self.password is not None:
            out.append(quote(self.userid or "", safe=""))
            if self.password is not None:
                out += [":", quote(self.password, safe="") if include_password else mask]
            out.append("@")
        if self.hostname is not None:
            host = self.hostname
            out.append(f"[{quote(host, safe=':')}]" if ":" in host else quote(host, safe=""))
        if self.port is not None:
            out.append(f":{self.port}")
        if self.virtual_host is not None:
            out.append("/" + quote(self.virtual_host, safe="/"))
        query = [f"{key}={quote(text, safe='/:')}" for key, text in self._query_items()]
        if query:
            out.append("?" + "&".join(query))
        return "".join(out)

    def _query_items(self) -> list[tuple[str, str]]:
        values = dict(self.options)
        if isinstance(ssl_options := values.get("ssl"), Mapping):  # back to flat ssl_* keys
            del values["ssl"]
            values.update((f"ssl_{key}", value) for key, value in ssl_options.items())
        return [
            (name, opt.to_text(values[name])) for name, opt in URL_OPTIONS.items() if name in values
        ]

    def __str__(self) -> str:
        return self.as_uri()

    def __repr__(self) -> str:
        return f"<BrokerURL {self.as_uri()}>"

    def __hash__(self) -> int:
        # options is a mapping (unhashable); the canonical text stands for all fields.
        return hash(self.as_uri(include_password=True))


def masked_input(text: str, mask: str = "**") -> str:
    """``text``, typed as a broker URL (maybe malformed), with what may be a password hidden.

    For quoting what a user typed in an error message: the text is kept as
    it is (no scheme added, nothing normalised) but for the password of
    every ``scheme://user:password@`` in it, credentials holding a raw ``/``,
    ``?``, ``#`` or ``;``, and an ``amqp://user:password`` that lost its
    ``@host``. A bracketed IPv6 host and its port are kept readable.
    """
    spans = [m.span() for m in _CREDENTIALS_RE.finditer(text)]
    stray = [i for i, char in enumerate(text) if char == "@" and not _in_option_value(text, i)
             and not any(a <= i < b for a, b in spans)]  # fmt: skip
    if stray:  # credentials holding a raw '/', '?', '#' or ';': hide all up to the last '@'
        cut = text.find("://")
        start = cut + 3 if 0 <= cut < stray[-1] and _SCHEME_RE.fullmatch(text[:cut]) else 0
        text = text[:start] + mask + text[stray[-1] :]
    text = mask_password(text, mask)
    head, sep, rest = text.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not sep or "@" in authority:
        return text
    if authority.startswith("[") and "]" in authority:
        return text  # '[IPv6]:port': no user name, so no password either
    host, colon, port = authority.partition(":")
    if colon and not _PORTISH_RE.fullmatch(port):
        text = f"{head}://{host}:{mask}{rest[len(authority) :]}"  # 'amqp://user:password'
    return text


def _in_option_value(text: str, index: int) -> bool:
    """Whether ``text[index]`` lies in the value of a known query option."""
    item = text[max(text.rfind("?", 0, index), text.rfind("&", 0, index)) + 1 : index]
    key, eq, _ = item.partition("=")
    return bool(eq) and key in URL_OPTIONS and "?" in text[:index]


def _decode(text: str, part: str, *, secret: bool = False) -> str:
    bad = _BAD_ESCAPE_RE.search(text)
    if bad is not None:
        shown = "" if secret else f" ({text[bad.start() : bad.start() + 3]!r} in {text!r})"
        raise _Invalid(
            f"the {part} has a '%' that starts no percent escape{shown}; a '%' must be "
            f"followed by two hex digits, and a literal '%' is written %25"
        )
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _Invalid(f"the {part} is not valid UTF-8 after percent-decoding") from None


def _split_host_port(hostport: str) -> tuple[str, str | None]:
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise _Invalid(f"unbalanced '[' in host {hostport!r}; IPv6 looks like [::1]:5672")
        host, after = hostport[1:close], hostport[close + 1 :]
        if after and not after.startswith(":"):
            raise _Invalid(f"unexpected {after!r} after host [{host}]; allowed: ':port'")
        if not host or ":" not in host:
            raise _Invalid(f"host [{host}] in brackets is not an IPv6 address")
        return host, after[1:] if after else None
    if "[" in hostport or "]" in hostport:
        raise _Invalid(f"unbalanced brackets in host {hostport!r}; IPv6 looks like [::1]:5672")
    host, colon, port = hostport.partition(":")
    return host, port if colon else None


def _parse_port(text: str) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    shown = repr(text) if _PORTISH_RE.fullmatch(text) else "(hidden: maybe a password)"
    hint = "; IPv6 addresses go in brackets: [::1]:5672" if ":" in text else ""
    raise _Invalid(f"port {shown} is not an integer; allowed: 1..65535{hint}")


def parse_url(url: str) -> BrokerURL:
    """Parse one broker URL (see the module docs for the accepted forms).

    Surrounding whitespace is ignored. A value without ``://`` is rejected:
    treating a bare name as a host name is the caller's decision.

    Examples: ``amqp://guest:guest@localhost:5672//``,
    ``amqps://user:p%40ss@[::1]/prod?heartbeat=10&ssl_cert_reqs=required``,
    ``memory://``.

    Raises:
        ConfigurationError: naming the malformed part, its value (passwords
            masked) and what is allowed.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a broker URL must be a str, got {type(url).__name__}")
    text = url.strip()
    if not text:
        raise ConfigurationError(f"a broker URL must not be empty; expected {_FORM}")
    return _parse_quoting(text, text)


def _parse_quoting(text: str, typed: str) -> BrokerURL:
    """Parse ``text``; errors quote ``typed`` (what the user wrote), masked."""
    try:
        return _parse(text)
    except (_Invalid, ConfigurationError) as exc:
        raise ConfigurationError(f"invalid broker URL {masked_input(typed)!r}: {exc}") from None


def _parse(text: str) -> BrokerURL:
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _Invalid(f"missing '://' after the scheme; expected {_FORM}")
    if "#" in rest:
        raise _Invalid("raw '#' found (URL fragments are not used); write it as %23")
    before_query, _, query = rest.partition("?")
    end = before_query.find("/")
    authority, path = (before_query, "") if end < 0 else (before_query[:end], before_query[end:])
    pairs = [item.partition("=") for item in query.split("&") if item]
    if "@" in path or any("@" in k + v and k not in URL_OPTIONS for k, _, v in pairs):
        raise _Invalid(f"raw '@' after the host: {_ENCODING_HINT}")
    userinfo, at, hostport = authority.rpartition("@")
    userid = password = None
    if at:
        if " " in userinfo or not userinfo.isprintable():
            raise _Invalid("whitespace in the user name or password; write a space as %20")
        user_text, colon, password_text = userinfo.partition(":")
        userid = _decode(user_text, "user name")
        password = _decode(password_text, "password", secret=True) if colon else None
    host, port_text = _split_host_port(hostport)
    options: dict[str, str] = {}
    for key_text, eq, value_text in pairs:
        key = _decode(key_text, "query key")
        if key not in URL_OPTIONS:
            raise _unknown_option(key)
        if not eq:
            raise _Invalid(f"query option {key!r} has no '=value'")
        if key in options:
            raise _Invalid(f"query option {key!r} is repeated; give each option once")
        options[key] = _decode(value_text, f"value of {key}")
    return BrokerURL(
        scheme=scheme,
        hostname=_decode(host, "host name"),
        port=None if port_text is None else _parse_port(port_text),
        userid=userid,
        password=password,
        virtual_host=_decode(path[1:], "virtual host") if path else None,
        options=options,
    )


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One broker of a list, parsed, with what the user typed for it (password masked)."""

    url: BrokerURL
    #: The entry as typed, masked by :func:`masked_input`: quote this in messages.
    shown: str


def parse_urls(value: str | Sequence[str]) -> tuple[BrokerURL, ...]:
    """Parse ``'url1;url2'``, a list of URLs, or a list holding ``'a;b'`` strings.

    Every entry is parsed on its own and inherits nothing (port, vhost,
    credentials) from its neighbours. Surrounding whitespace is ignored;
    a ``;`` inside a password must be written ``%3B``.

    Raises:
        ConfigurationError: the value is not a str or sequence of str, holds
            no URL, has an empty entry (``'a;;b'``, a trailing ``;``) or an
            entry without ``://``, or one entry is malformed.
    """
    return tuple(entry.url for entry in parse_entries(value))


def parse_entries(
    value: str | Sequence[str], *, bare_scheme: str | None = None
) -> tuple[ParsedEntry, ...]:
    """:func:`parse_urls`, keeping what was typed for each entry (masked) to quote in errors.

    Args:
        value: ``'url1;url2'``, a list of URLs, or a list holding ``'a;b'`` strings.
        bare_scheme: when given, an entry without ``://`` may be a bare host
            name, ``host[:port]`` (kombu's ``Connection('localhost')``): it
            means ``bare_scheme://host[:port]``. Errors still quote it as typed.

    Raises:
        ConfigurationError: as :func:`parse_urls`.
    """
    items: Sequence[object] = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence):
        raise ConfigurationError(f"broker URLs must be a str or a list of str, "
                                 f"got {type(value).__name__}")  # fmt: skip
    if not items:
        raise ConfigurationError("the list of broker URLs is empty")
    single = isinstance(value, str) and ";" not in value
    pieces: list[tuple[str, str]] = []  # (text to parse, text as typed)
    for item in items:
        if not isinstance(item, str):
            raise ConfigurationError(f"broker URL entries must be str, got {type(item).__name__}")
        for index, piece in enumerate(item.split(";"), 1):
            piece = piece.strip()
            # Checked before parsing anything: a raw ';' in a password splits it in two, and
            # parsing the first half would echo part of the password in the error.
            if not piece or not _is_url_or_host(piece, bare_scheme is not None):
                shown = masked_input(item)
                if single and piece:
                    expected = _FORM + (" or host[:port]" if bare_scheme else "")
                    raise ConfigurationError(
                        f"invalid broker URL {shown!r}: missing '://' after the scheme; "
                        f"expected {expected}"
                    )
                problem = "is empty" if not piece else "has no '://'"
                raise ConfigurationError(
                    f"entry {index} of {shown!r} {problem}; separate URLs with one ';' "
                    f"(no trailing ';') and {_ENCODING_HINT}"
                )
            text = piece if "://" in piece else f"{bare_scheme}://{piece}"
            pieces.append((text, piece))
    return tuple(
        ParsedEntry(_parse_quoting(text, typed), masked_input(typed)) for text, typed in pieces
    )


def _is_url_or_host(piece: str, bare_ok: bool) -> bool:
    """Whether ``piece`` has ``://``, or may be a bare ``host[:port]`` where those are allowed."""
    if "://" in piece:
        return True
    if not bare_ok or _BARE_FORBIDDEN.intersection(piece):
        return False
    # 'amqp:localhost:5672' lost its '//'; '[::1]:5672' is a host.
    _, colon, after = piece.partition(":")
    return not (colon and ":" in after and not piece.startswith("["))


def format_url(
    scheme: str,
    hostname: str | None = None,
    port: int | None = None,
    userid: str | None = None,
    password: str | None = None,
    virtual_host: str | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    include_password: bool = False,
    mask: str = "**",
) -> str:
    """Build a URL from parts; the inverse of :func:`parse_url` with ``include_password``.

    Raises:
        ConfigurationError: a part or option is invalid (same rules as parsing).
    """
    url = BrokerURL(scheme, hostname, port, userid, password, virtual_host, options or {})
    return url.as_uri(include_password=include_password, mask=mask)


def mask_password(text: str, mask: str = "**") -> str:
    """Replace the password of every ``scheme://user:password@`` URL found in ``text``.

    Meant for log records and exception messages; the user name and the rest
    of each URL stay readable.
    """
    return _CREDENTIALS_RE.sub(lambda m: f"{m.group(1)}{mask}@", text)
