"""kombu's serialization and compression helpers on brokerpool's registry.

``enable_insecure_serializers`` / ``disable_insecure_serializers`` change the
*default accept list*: what a consumer without ``accept=`` decodes. An
explicit ``accept`` always wins. ``loads`` takes kombu's arguments.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterator

import pytest

from broker import Connection, Consumer, Queue, compression, serialization
from broker.compression import compress, decompress, encoders, get_decoder, get_encoder
from broker.errors import (
    ConfigurationError,
    ContentDisallowed,
    DecodeError,
    EncodeError,
    SerializerNotInstalled,
)
from broker.serialization import (
    disable_insecure_serializers,
    dumps,
    enable_insecure_serializers,
    loads,
    registry,
    unregister,
)
from tests.support.wait import drain_until

PICKLE = "application/x-python-serialize"
JSON = "application/json"


@pytest.fixture(autouse=True)
def _restore_default_accept() -> Iterator[None]:
    saved = registry.default_accept
    yield
    for name in registry.names():
        content_type = registry.content_type_of(name)
        if content_type in saved:
            registry.enable(name)
        else:
            registry.disable(name)
    assert registry.default_accept == saved


def test_pickle_is_refused_by_default_and_enabled_on_request() -> None:
    data = pickle.dumps({"a": 1})
    with pytest.raises(ContentDisallowed):
        loads(data, PICKLE, "binary")

    enable_insecure_serializers()

    assert loads(data, PICKLE, "binary") == {"a": 1}
    assert PICKLE in registry.prepare_accept(None)
    with pytest.raises(ContentDisallowed):  # an explicit accept list still wins
        loads(data, PICKLE, "binary", accept=[JSON])


def test_enable_skips_names_that_are_not_registered() -> None:
    enable_insecure_serializers(["pickle", "msgpack", "yaml"])  # kombu's default list
    assert PICKLE in registry.default_accept
    enable_insecure_serializers(None)  # kombu: changes nothing


def test_disable_keeps_only_what_is_allowed_plus_text_and_raw() -> None:
    enable_insecure_serializers()
    disable_insecure_serializers()

    assert registry.default_accept == {JSON, "text/plain"}
    assert loads(b"raw", "application/data", "binary") == b"raw"  # raw bytes never decode

    disable_insecure_serializers(allowed=None)
    with pytest.raises(ContentDisallowed):
        loads(b"{}", JSON, "utf-8")
    with pytest.raises(SerializerNotInstalled):
        disable_insecure_serializers(["no-such-serializer"])


def test_a_consumer_without_accept_follows_the_default_list() -> None:
    enable_insecure_serializers(["pickle"])
    received = []
    with Connection("memory://") as conn:
        queue = Queue("pickles")
        conn.Producer().publish(
            {"p": 1}, routing_key="pickles", declare=[queue], serializer="pickle"
        )
        with Consumer(conn, [queue], callbacks=[lambda body, message: received.append(body)]):
            drain_until(conn, lambda: received)
    assert received == [{"p": 1}]


def test_loads_takes_kombus_force() -> None:
    data = pickle.dumps("trusted")
    assert loads(data, PICKLE, "binary", force=True) == "trusted"
    with pytest.raises(ContentDisallowed):
        loads(data, PICKLE, "binary", accept=[JSON], force=True)  # force only without accept


def test_the_registry_maps_names_and_types_both_ways() -> None:
    assert registry.name_to_type["json"] == JSON
    assert registry.type_to_name[PICKLE] == "pickle"


def test_kombus_error_classes_are_raised() -> None:
    with pytest.raises(SerializerNotInstalled):
        dumps({}, serializer="yaml")
    with pytest.raises(SerializerNotInstalled):
        unregister("yaml")
    with pytest.raises(EncodeError):
        dumps(object(), serializer="json")
    with pytest.raises(DecodeError):
        loads(b"{nope", JSON, "utf-8")
    with pytest.raises(SerializerNotInstalled):
        registry.enable("yaml")


def test_register_and_unregister_a_serializer() -> None:
    serialization.register(
        "reversed", lambda s: s[::-1].encode(), lambda b: b.decode()[::-1], "text/x-rev"
    )
    assert dumps("abc", serializer="reversed") == ("text/x-rev", "utf-8", b"cba")
    unregister("reversed")
    assert "reversed" not in registry.names()


# -- compression ------------------------------------------------------------------------------


def test_compression_encoders_and_lookups_by_alias_or_header_value() -> None:
    assert {"application/x-gzip", "application/x-bz2", "application/x-lzma"} <= set(encoders())
    encode, header = get_encoder("zlib")
    assert header == "application/x-gzip"
    assert zlib.decompress(encode(b"data")) == b"data"
    assert get_decoder("gzip")(zlib.compress(b"data")) == b"data"
    assert get_decoder("application/x-gzip") is get_decoder("zlib")
    with pytest.raises(ConfigurationError, match="unknown compression 'snappy'"):
        get_encoder("snappy")


def test_register_takes_kombus_argument_order() -> None:
    compression.register(
        lambda b: b[::-1], lambda b: b[::-1], "application/x-test-reverse", aliases=["rev"]
    )

    body, header = compress(b"abc", "rev")

    assert (body, header) == (b"cba", "application/x-test-reverse")
    assert decompress(body, header) == b"abc"
    assert "application/x-test-reverse" in encoders()
