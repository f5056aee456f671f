"""Serialization: the registry, accept whitelists, compression (no I/O)."""

from __future__ import annotations

import datetime
import pickle
import uuid

import pytest

from broker.errors import ConfigurationError, ContentDisallowed, SerializationError
from broker.messaging.serialization import (
    DEFAULT_ACCEPT,
    Registry,
    compress,
    decompress,
    dumps,
    loads,
    prepare_accept,
    registry,
)


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [
        ({"a": [1, 2.5, None, True, "é"]}, "application/json", "utf-8"),
        ([1, 2, 3], "application/json", "utf-8"),
        (42, "application/json", "utf-8"),
        ("plain text é", "text/plain", "utf-8"),
        (b"\x00\xffraw", "application/data", "binary"),
    ],
)
def test_round_trip_with_automatic_serializer(body, content_type, encoding):
    ctype, enc, data = dumps(body)
    assert (ctype, enc) == (content_type, encoding)
    assert isinstance(data, bytes)
    assert loads(data, ctype, enc) == body


def test_json_is_the_default_for_values_that_are_not_bytes_or_str():
    assert dumps({"x": 1})[0] == "application/json"
    assert dumps(None)[0] == "application/json"


def test_explicit_json_serializer_encodes_strings_as_json():
    ctype, _, data = dumps("hi", serializer="json")
    assert ctype == "application/json"
    assert data == b'"hi"'


def test_json_sends_datetimes_and_uuids_as_text():
    when = datetime.datetime(2024, 1, 2, 3, 4, 5)
    ident = uuid.UUID(int=7)
    _, _, data = dumps({"when": when, "id": ident})
    assert loads(data, "application/json", "utf-8") == {
        "when": "2024-01-02T03:04:05",
        "id": str(ident),
    }


def test_unencodable_body_raises_serialization_error():
    with pytest.raises(SerializationError, match="cannot encode set body"):
        dumps({1, 2})


def test_unknown_serializer_is_a_configuration_error_naming_the_choices():
    with pytest.raises(ConfigurationError, match=r"unknown serializer 'yaml'.*json"):
        dumps({}, serializer="yaml")


def test_pickle_encodes_but_is_refused_on_decode_by_default():
    ctype, enc, data = dumps({"k": {1, 2}}, serializer="pickle")
    assert (ctype, enc) == ("application/x-python-serialize", "binary")
    with pytest.raises(ContentDisallowed, match=r"pickle \(application/x-python-serialize\)"):
        loads(data, ctype, enc)


def test_pickle_decodes_when_accepted_by_name_or_content_type():
    ctype, enc, data = dumps({"k": {1, 2}}, serializer="pickle")
    assert loads(data, ctype, enc, prepare_accept(["pickle"])) == {"k": {1, 2}}
    accept = prepare_accept(["application/x-python-serialize"])
    assert loads(data, ctype, enc, accept) == {"k": {1, 2}}


def test_accept_whitelist_refuses_other_content_types():
    accept = prepare_accept(["json"])
    with pytest.raises(ContentDisallowed, match="text/plain"):
        loads(b"hi", "text/plain", "utf-8", accept)
    assert loads(b'{"a": 1}', "application/json", "utf-8", accept) == {"a": 1}


def test_raw_binary_is_always_accepted_and_left_as_bytes():
    accept = prepare_accept(["json"])
    assert loads(b"\x01\x02", "application/data", "binary", accept) == b"\x01\x02"
    # No content type at all (e.g. from another client) counts as raw binary.
    assert loads(b"\x01\x02", None, None, accept) == b"\x01\x02"


def test_default_accept_is_json_text_and_raw():
    assert prepare_accept(None) == DEFAULT_ACCEPT
    assert {"application/json", "text/plain", "application/data"} == DEFAULT_ACCEPT


def test_accept_as_a_bare_string_is_rejected_with_a_hint():
    with pytest.raises(ConfigurationError, match=r"did you mean \['json'\]"):
        prepare_accept("json")  # type: ignore[arg-type]


def test_accept_with_an_unknown_name_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="unknown serializer 'msgpack'"):
        prepare_accept(["msgpack"])


def test_unknown_content_type_decodes_as_text_when_accepted():
    accept = prepare_accept(["application/xml"])
    assert loads(b"<a/>", "application/xml", "utf-8", accept) == "<a/>"


def test_corrupt_json_raises_serialization_error():
    with pytest.raises(SerializationError, match="cannot decode application/json"):
        loads(b"{not json", "application/json", "utf-8")


def test_empty_body_decodes_to_empty_bytes():
    assert loads(b"", "application/json", "utf-8") == b""


def test_register_a_custom_serializer_on_a_private_registry():
    reg = Registry()
    reg.register("upper", lambda s: s.upper().encode(), lambda b: b.decode().lower(), "text/x-up")
    ctype, enc, data = reg.dumps("abc", serializer="upper")
    assert (ctype, enc, data) == ("text/x-up", "utf-8", b"ABC")
    accept = reg.prepare_accept(["upper"])
    assert reg.loads(data, ctype, enc, accept) == "abc"
    reg.unregister("upper")
    with pytest.raises(ConfigurationError):
        reg.get("upper")


def test_register_validates_its_arguments():
    with pytest.raises(ConfigurationError, match="content_type"):
        Registry().register("bad", str, str, "nodash")
    with pytest.raises(ConfigurationError, match="name"):
        Registry().register("", str, str, "a/b")


def test_the_global_registry_knows_the_builtin_names():
    assert {"json", "text", "raw", "pickle"} <= set(registry.names())


@pytest.mark.parametrize(
    ("method", "header"),
    [
        ("zlib", "application/x-gzip"),
        ("gzip", "application/x-gzip"),
        ("bz2", "application/x-bz2"),
        ("lzma", "application/x-lzma"),
    ],
)
def test_compression_round_trip_uses_kombus_header_values(method, header):
    data = b"spam " * 100
    packed, value = compress(data, method)
    assert value == header
    assert len(packed) < len(data)
    assert decompress(packed, value) == data


def test_unknown_compression_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="unknown compression 'snappy'"):
        compress(b"x", "snappy")


def test_corrupt_compressed_body_raises_serialization_error():
    with pytest.raises(SerializationError, match="cannot decompress"):
        decompress(b"not zlib", "application/x-gzip")


def test_pickle_protocol_is_readable_by_older_peers():
    _, _, data = dumps([1], serializer="pickle")
    assert data[1] <= 4  # protocol byte after PROTO opcode
    assert pickle.loads(data) == [1]


# -- decoding: accept restricts only what a decoder would run on --------------------------


def test_a_content_type_without_a_decoder_is_raw_bytes_whatever_accept():
    for accept in (DEFAULT_ACCEPT, prepare_accept(["json"]), prepare_accept([])):
        assert loads(b"\x00\xff", "application/octet-stream", "binary", accept) == b"\x00\xff"
        assert loads(b"\x00\xff", "image/png", None, accept) == b"\x00\xff"


def test_text_plain_decodes_with_its_declared_encoding():
    assert loads("é".encode("latin-1"), "text/plain", "latin-1") == "é"
    assert loads("é".encode("utf-16"), "text/plain", "UTF-16") == "é"
    assert loads(b"plain", "text/plain", None) == "plain"  # no encoding: utf-8


def test_text_plain_labelled_binary_is_left_as_bytes():
    # kombu's reading of content_encoding="binary": nothing to decode.
    assert loads(b"\xff", "text/plain", "binary") == b"\xff"


def test_the_text_codec_called_directly_decodes_utf8():
    assert registry.get("text").decoder("é".encode()) == "é"


def test_a_registered_text_type_replaced_by_the_user_uses_their_decoder():
    reg = Registry()
    reg.register("text", str.encode, lambda b: b.decode("ascii").upper(), "text/plain")
    assert reg.loads(b"abc", "text/plain", "latin-1", reg.prepare_accept(["text"])) == "ABC"


def test_an_empty_body_keeps_its_kind():
    assert loads(b"", "text/plain", "utf-8") == ""
    assert loads(b"", "application/data", "binary") == b""
    assert loads(b"", None, None) == b""
