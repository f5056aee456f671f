"""Encoding message bodies, deciding which content a consumer accepts, compression.

Content types, encodings and the ``compression`` header follow kombu's wire
conventions, so messages flow both ways between brokerpool and kombu:

==========  ==================================  ==========  ====================
name        content type                        encoding    body
==========  ==================================  ==========  ====================
``json``    ``application/json``                ``utf-8``   any JSON value
``text``    ``text/plain``                      ``utf-8``   :class:`str`
``raw``     ``application/data``                ``binary``  :class:`bytes`
``pickle``  ``application/x-python-serialize``  ``binary``  any picklable object
==========  ==================================  ==========  ====================

Without an explicit serializer, :class:`bytes` go out raw, :class:`str` as
text and everything else as JSON (the default serializer).

``accept`` restricts what is *decoded*. A content type with a registered
serializer is decoded only when the consumer's ``accept`` list names it, and
refused otherwise (:class:`~broker.errors.ContentDisallowed`). The default
list is json, text and raw; pickle runs arbitrary code when loaded, so it is
only decoded when a consumer names it. Content nothing would decode -- raw
binary (``application/data``, no content type), and any type without a
registered serializer (``application/octet-stream``, ``image/png``,
protobuf...) -- is handed over as the bytes it is, as kombu does. Text is
decoded in the message's declared ``content_encoding``, and an empty body
keeps its kind (``""`` for text, ``b""`` otherwise).
What a consumer without an ``accept`` list decodes can be widened or narrowed
process-wide with kombu's :func:`enable_insecure_serializers` and
:func:`disable_insecure_serializers`.
"""

from __future__ import annotations

import bz2
import datetime
import decimal
import json
import lzma
import pickle
import threading
import uuid
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NamedTuple

from broker.errors import (
    ConfigurationError,
    ContentDisallowed,
    DecodeError,
    EncodeError,
    SerializationError,
    SerializerNotInstalled,
)

__all__ = [
    "COMPRESSION_HEADER",
    "DEFAULT_ACCEPT",
    "Codec",
    "Registry",
    "compress",
    "compression_codec",
    "compression_methods",
    "decompress",
    "disable_insecure_serializers",
    "dumps",
    "enable_insecure_serializers",
    "loads",
    "prepare_accept",
    "register",
    "register_compression",
    "registry",
    "unregister",
]

#: The message header naming the compression of a body (kombu's name).
COMPRESSION_HEADER = "compression"

RAW_CONTENT_TYPE = "application/data"
TEXT_CONTENT_TYPE = "text/plain"
JSON_CONTENT_TYPE = "application/json"
PICKLE_CONTENT_TYPE = "application/x-python-serialize"

#: Decoded by default: json, text and raw bytes (never pickle).
DEFAULT_ACCEPT = frozenset({JSON_CONTENT_TYPE, TEXT_CONTENT_TYPE, RAW_CONTENT_TYPE})
#: What :func:`enable_insecure_serializers` enables when not told (kombu's list;
#: the names that are not registered are skipped).
INSECURE_SERIALIZERS = ("pickle", "yaml", "msgpack")

# Content that is handed over as bytes untouched, so accepting it is harmless.
_ALWAYS_TRUSTED = frozenset({RAW_CONTENT_TYPE})
_NO_DECODE = frozenset({"binary", "ascii-8bit"})

Encoder = Callable[[Any], bytes | str]
Decoder = Callable[[bytes], Any]


class Codec(NamedTuple):
    """One registered serializer."""

    name: str
    content_type: str
    content_encoding: str
    encoder: Encoder
    decoder: Decoder


def _json_default(obj: Any) -> Any:
    # Types that come up in real payloads, sent as their canonical text
    # (what kombu did before it grew tagged types; kombu decodes them as text).
    if isinstance(obj, datetime.datetime | datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID | decimal.Decimal):
        return str(obj)
    if isinstance(obj, bytes | bytearray):
        return bytes(obj).decode("utf-8")
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


# One encoder instance: json.dumps would rebuild one per call when given options.
_json_encode = json.JSONEncoder(default=_json_default).encode


def _json_dumps(obj: Any) -> bytes:
    return _json_encode(obj).encode("utf-8")


def _raw_encode(obj: Any) -> bytes:
    if isinstance(obj, bytes):
        return obj
    if isinstance(obj, bytearray | memoryview):
        return bytes(obj)
    raise TypeError(f"the raw serializer takes bytes, not {type(obj).__name__}")


def _text_encode(obj: Any) -> bytes:
    if isinstance(obj, str):
        return obj.encode("utf-8")
    raise TypeError(f"the text serializer takes str, not {type(obj).__name__}")


def _text_decode(data: bytes) -> str:
    # The text serializer's decoder when called directly; Registry.loads
    # decodes text/plain in the message's own content_encoding instead.
    return data.decode("utf-8")


def _pickle_dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=4)  # 4: readable by every supported kombu


class Registry:
    """Serializers by name and by content type.

    Thread-safe for registration; lookups are plain dict reads.

    It also holds the *default accept list*: the content types decoded for a
    consumer that gives no ``accept`` (:data:`DEFAULT_ACCEPT` until
    :meth:`enable` or :meth:`disable` change it).
    """

    def __init__(self, default: str = "json") -> None:
        self._by_name: dict[str, Codec] = {}
        self._by_type: dict[str, Codec] = {}
        self._lock = threading.Lock()
        self._default = default
        self._default_accept = DEFAULT_ACCEPT

    # -- registration -----------------------------------------------------------

    def register(
        self,
        name: str,
        encoder: Encoder,
        decoder: Decoder,
        content_type: str,
        content_encoding: str = "utf-8",
    ) -> None:
        """Register (or replace) the serializer ``name``.

        Args:
            name: the name producers and ``accept`` lists use, e.g. ``"yaml"``.
            encoder: turns a body into :class:`bytes` (or :class:`str`, which is
                encoded with ``content_encoding``).
            decoder: turns the received :class:`bytes` back into a body.
            content_type: the MIME type sent with each message.
            content_encoding: the charset, or ``"binary"``.

        Raises:
            ConfigurationError: a name or content type is empty.
        """
        if not name or not isinstance(name, str):
            raise ConfigurationError(f"serializer name must be a non-empty string, got {name!r}")
        if not content_type or "/" not in content_type:
            raise ConfigurationError(
                f"serializer {name!r}: content_type must look like 'type/subtype', "
                f"got {content_type!r}"
            )
        codec = Codec(name, content_type, content_encoding, encoder, decoder)
        with self._lock:
            old = self._by_name.get(name)
            if old is not None:
                self._by_type.pop(old.content_type, None)
            self._by_name[name] = codec
            self._by_type[content_type] = codec

    def unregister(self, name: str) -> None:
        """Remove the serializer ``name``.

        Raises:
            SerializerNotInstalled: no serializer has that name.
        """
        with self._lock:
            codec = self._by_name.pop(name, None)
            if codec is None:
                raise SerializerNotInstalled(self._unknown(name))
            self._by_type.pop(codec.content_type, None)

    @property
    def default(self) -> str:
        """Name of the serializer used for bodies that are neither bytes nor str."""
        return self._default

    @default.setter
    def default(self, name: str) -> None:
        self.get(name)
        self._default = name

    def get(self, name: str) -> Codec:
        """The codec registered as ``name`` (a name or a content type).

        Raises:
            SerializerNotInstalled: nothing is registered under that name.
        """
        codec = self._by_name.get(name) or self._by_type.get(name)
        if codec is None:
            raise SerializerNotInstalled(self._unknown(name))
        return codec

    def names(self) -> list[str]:
        """Every registered serializer name, sorted."""
        return sorted(self._by_name)

    def content_type_of(self, name: str) -> str:
        """The content type for a serializer name (content types pass through)."""
        if "/" in name:
            return name
        return self.get(name).content_type

    @property
    def name_to_type(self) -> Mapping[str, str]:
        """Each serializer name and its content type (kombu's attribute; a copy)."""
        return {name: codec.content_type for name, codec in self._by_name.items()}

    @property
    def type_to_name(self) -> Mapping[str, str]:
        """Each content type and its serializer name (kombu's attribute; a copy)."""
        return {ctype: codec.name for ctype, codec in self._by_type.items()}

    # -- the default accept list ----------------------------------------------------

    @property
    def default_accept(self) -> frozenset[str]:
        """Content types decoded for a consumer that gives no ``accept`` list."""
        return self._default_accept

    def enable(self, name: str) -> None:
        """Decode ``name`` (a serializer name or content type) when no ``accept`` is given.

        Raises:
            SerializerNotInstalled: a name that is not registered.
        """
        content_type = self.content_type_of(name)
        with self._lock:
            self._default_accept = self._default_accept | {content_type}

    def disable(self, name: str) -> None:
        """Stop decoding ``name`` when no ``accept`` is given (an explicit ``accept`` still can).

        Raw binary content stays accepted: it is handed over undecoded.

        Raises:
            SerializerNotInstalled: a name that is not registered.
        """
        content_type = self.content_type_of(name)
        with self._lock:
            self._default_accept = self._default_accept - {content_type}

    def _unknown(self, name: str) -> str:
        return f"unknown serializer {name!r} (registered: {', '.join(self.names())})"

    # -- encoding ---------------------------------------------------------------

    def dumps(self, body: Any, serializer: str | None = None) -> tuple[str, str, bytes]:
        """Encode ``body``; return ``(content_type, content_encoding, data)``.

        Without ``serializer``, bytes go out raw, str as text/plain, anything
        else with the default serializer.

        Raises:
            SerializerNotInstalled: ``serializer`` is not registered.
            EncodeError: the body cannot be encoded.
        """
        if serializer is None:
            cls = body.__class__
            if cls is bytes:
                return RAW_CONTENT_TYPE, "binary", body
            if cls is str:
                return TEXT_CONTENT_TYPE, "utf-8", body.encode("utf-8")
            serializer = self._default
        codec = self._by_name.get(serializer)
        if codec is None:
            raise SerializerNotInstalled(self._unknown(serializer))
        try:
            data = codec.encoder(body)
        except Exception as exc:
            raise EncodeError(
                f"cannot encode {type(body).__name__} body with {serializer!r}: {exc}"
            ) from exc
        if data.__class__ is not bytes:
            data = data.encode(codec.content_encoding) if isinstance(data, str) else bytes(data)
        return codec.content_type, codec.content_encoding, data

    # -- decoding ---------------------------------------------------------------

    def prepare_accept(self, accept: Iterable[str] | None) -> frozenset[str]:
        """Turn names and content types into a set of content types.

        ``None`` gives the default accept list
        (:attr:`~broker.messaging.serialization.Registry.default_accept`).

        Raises:
            SerializerNotInstalled: a name is not a registered serializer.
            ConfigurationError: ``accept`` is a string rather than a list.
        """
        if accept is None:
            return self._default_accept
        if isinstance(accept, str):
            raise ConfigurationError(
                f"accept must be a list of serializer names or content types, "
                f"got the string {accept!r} (did you mean [{accept!r}]?)"
            )
        return frozenset(self.content_type_of(item) for item in accept)

    def loads(
        self,
        data: bytes,
        content_type: str | None,
        content_encoding: str | None,
        accept: Collection[str] | None = None,
        force: bool = False,
    ) -> Any:
        """Decode ``data`` sent with ``content_type`` / ``content_encoding``.

        * A content type with a registered serializer is decoded by it if
          ``accept`` lists it, else refused; ``text/plain`` is decoded with
          the declared ``content_encoding``.
        * Any other content type (``application/octet-stream``, ``image/png``,
          protobuf, ...) is handed over as the raw bytes: nothing runs on it.
          Listed in ``accept``, it is decoded as text in its declared
          ``content_encoding`` instead, unless that is ``binary``.
        * No content type means raw binary (bytes).

        An empty body keeps its kind: ``""`` when it would decode as text,
        else ``b""``.

        Args:
            data: the (already decompressed) body.
            content_type: as received; ``None`` means raw binary.
            content_encoding: as received; ``None`` means utf-8.
            accept: content types whose decoders may run (see :meth:`prepare_accept`);
                ``None``: the default accept list
                (:attr:`~broker.messaging.serialization.Registry.default_accept`).
            force: with ``accept=None``, decode any registered content type
                (kombu's keyword, for content the caller trusts).

        Raises:
            ContentDisallowed: ``content_type`` has a registered decoder and
                is not in ``accept``.
            DecodeError: the data does not decode.
        """
        if accept is None:
            accept = self._by_type.keys() if force else self._default_accept
        if not content_type:
            return data
        codec = self._by_type.get(content_type)
        if content_type not in accept and content_type not in _ALWAYS_TRUSTED:
            if codec is None:
                return data  # nothing would decode it: the bytes, untouched
            raise ContentDisallowed(
                f"refusing to decode {codec.name} ({content_type}) content: not in accept "
                f"[{', '.join(sorted(accept))}]; pass accept=[...] to the consumer to allow it"
            )
        try:
            if codec is not None and codec.decoder is not _text_decode:
                # An empty body stays b"": kombu's rule, and no decoder sees nothing.
                return codec.decoder(data) if data else data
            encoding = (content_encoding or "utf-8").lower()
            if encoding in _NO_DECODE or not isinstance(data, bytes | bytearray):
                return data
            return bytes(data).decode(encoding)
        except Exception as exc:
            raise DecodeError(f"cannot decode {content_type} body: {exc}") from exc


#: The process-wide registry used by producers and consumers.
registry = Registry()
registry.register("json", _json_dumps, json.loads, JSON_CONTENT_TYPE, "utf-8")
registry.register("text", _text_encode, _text_decode, TEXT_CONTENT_TYPE, "utf-8")
registry.register("raw", _raw_encode, bytes, RAW_CONTENT_TYPE, "binary")
registry.register("pickle", _pickle_dumps, pickle.loads, PICKLE_CONTENT_TYPE, "binary")

register = registry.register
unregister = registry.unregister
dumps = registry.dumps
loads = registry.loads
prepare_accept = registry.prepare_accept


def enable_insecure_serializers(choices: Iterable[str] | None = INSECURE_SERIALIZERS) -> None:
    """Decode these serializers for consumers that give no ``accept`` list (kombu's helper).

    Args:
        choices: serializer names or content types; names that are not
            registered are skipped, as kombu does. ``None`` changes nothing.

    pickle runs arbitrary code when loaded: enable it only for brokers whose
    every publisher you trust. A consumer's own ``accept`` list always wins.
    """
    for choice in choices or ():
        if choice in registry.name_to_type or "/" in choice:
            registry.enable(choice)


def disable_insecure_serializers(allowed: Iterable[str] | None = ("json",)) -> None:
    """Decode only ``allowed`` (and plain text) for consumers that give no ``accept`` list.

    kombu's helper: every registered serializer but ``allowed`` is disabled.
    Plain text and raw bytes stay accepted (neither runs a decoder that could
    do harm); producers can still encode with any serializer.

    Raises:
        SerializerNotInstalled: a name in ``allowed`` is not registered.
    """
    keep = registry.prepare_accept(list(allowed or ()))
    for name in registry.names():
        if name != "text" and registry.content_type_of(name) not in keep:
            registry.disable(name)
    for content_type in keep:
        registry.enable(content_type)


# -- compression ----------------------------------------------------------------

_compressors: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {}
_compression_aliases: dict[str, str] = {}


def register_compression(
    content_type: str,
    compress_fn: Callable[[bytes], bytes],
    decompress_fn: Callable[[bytes], bytes],
    aliases: Iterable[str] = (),
) -> None:
    """Register a compression method, sent as the ``compression`` header value.

    Args:
        content_type: the header value, e.g. ``"application/x-gzip"``.
        compress_fn: compresses bytes.
        decompress_fn: reverses ``compress_fn``.
        aliases: short names producers may use, e.g. ``["zlib", "gzip"]``.
    """
    _compressors[content_type] = (compress_fn, decompress_fn)
    for alias in aliases:
        _compression_aliases[alias] = content_type


def compression_methods() -> list[str]:
    """The registered compression methods, by the header value naming each."""
    return list(_compressors)


def compression_codec(
    method: str,
) -> tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    """``(header value, compress, decompress)`` of a method given by alias or header value.

    Raises:
        ConfigurationError: ``method`` is not registered.
    """
    content_type = _resolve_compression(method)
    compress_fn, decompress_fn = _compressors[content_type]
    return content_type, compress_fn, decompress_fn


def _resolve_compression(method: str) -> str:
    content_type = _compression_aliases.get(method, method)
    if content_type not in _compressors:
        known = sorted({*_compression_aliases, *_compressors})
        raise ConfigurationError(f"unknown compression {method!r} (registered: {', '.join(known)})")
    return content_type


def compress(data: bytes, method: str) -> tuple[bytes, str]:
    """Compress ``data``; return it with the header value naming the method.

    Raises:
        ConfigurationError: ``method`` is not registered.
    """
    content_type = _resolve_compression(method)
    return _compressors[content_type][0](data), content_type


def decompress(data: bytes, content_type: str) -> bytes:
    """Reverse :func:`compress` given the received header value.

    Raises:
        SerializationError: the method is unknown or the data is corrupt.
    """
    entry = _compressors.get(_compression_aliases.get(content_type, content_type))
    if entry is None:
        raise SerializationError(f"cannot decompress: unknown compression {content_type!r}")
    try:
        return entry[1](data)
    except Exception as exc:
        raise SerializationError(f"cannot decompress {content_type} body: {exc}") from exc


# kombu's names: its "gzip" is zlib's format, sent as application/x-gzip.
register_compression("application/x-gzip", zlib.compress, zlib.decompress, ("zlib", "gzip"))
register_compression("application/x-bz2", bz2.compress, bz2.decompress, ("bzip2", "bz2"))
register_compression("application/x-lzma", lzma.compress, lzma.decompress, ("lzma", "xz"))
