"""kombu's public names in brokerpool: the modules to import, the error classes, the constants.

``docs/migrating.rst`` promises that kombu code runs by changing the import;
these tests hold the table there to its word (each kombu-named module
re-exports the implementation, nothing of its own), and check where kombu's
error classes sit in the one error tree.
"""

from __future__ import annotations

import importlib

import pytest

import broker
import broker.common
import broker.compression
import broker.mixins
import broker.serialization
from broker import Exchange, Queue
from broker.errors import (
    BrokerError,
    ConfigurationError,
    ContentDisallowed,
    DecodeError,
    EncodeError,
    LimitExceeded,
    MessageStateError,
    NotBoundError,
    OperationalError,
    SerializationError,
    SerializerNotInstalled,
)

# kombu module -> (brokerpool module, names it must offer)
KOMBU_MODULES = {
    "kombu.common": (
        "broker.common",
        "Broadcast collect_replies drain_consumer eventloop ignore_errors itermessages "
        "maybe_declare send_reply uuid",
    ),
    "kombu.compression": (
        "broker.compression",
        "compress decompress encoders get_decoder get_encoder register",
    ),
    "kombu.mixins": ("broker.mixins", "ConsumerMixin ConsumerProducerMixin"),
    "kombu.serialization": (
        "broker.serialization",
        "disable_insecure_serializers dumps enable_insecure_serializers loads registry "
        "register unregister",
    ),
    "kombu": (
        "broker",
        "Connection Exchange Queue Producer Consumer Message SimpleQueue SimpleBuffer "
        "binding eventloop uuid enable_insecure_serializers disable_insecure_serializers",
    ),
    "kombu.pools": ("pools", "ProducerPool PoolGroup connections producers get_limit set_limit"),
}


@pytest.mark.parametrize("kombu_module", sorted(KOMBU_MODULES))
def test_each_kombu_module_has_a_home_with_its_names(kombu_module: str) -> None:
    home, names = KOMBU_MODULES[kombu_module]
    module = importlib.import_module(home)
    missing = [name for name in names.split() if not hasattr(module, name)]
    assert not missing, f"{home} (for {kombu_module}) lacks {missing}"


@pytest.mark.parametrize("thin", [broker.common, broker.compression, broker.mixins])
def test_kombu_named_modules_only_re_export(thin: object) -> None:
    home = importlib.import_module(thin.__name__.replace("broker.", "broker.messaging."))
    for name in thin.__all__:  # type: ignore[attr-defined]
        assert getattr(thin, name) is getattr(home, name), name


def test_the_serialization_module_re_exports_the_registry() -> None:
    from broker.messaging import serialization

    for name in broker.serialization.__all__:
        assert getattr(broker.serialization, name) is getattr(serialization, name), name


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kombu_class", "brokerpool_base"),
    [
        (NotBoundError, ConfigurationError),
        (SerializerNotInstalled, ConfigurationError),
        (EncodeError, SerializationError),
        (DecodeError, SerializationError),
        (ContentDisallowed, SerializationError),
        (LimitExceeded, BrokerError),
        (OperationalError, BrokerError),
        (MessageStateError, BrokerError),
    ],
)
def test_kombus_error_classes_sit_in_the_one_tree(
    kombu_class: type[Exception], brokerpool_base: type[Exception]
) -> None:
    assert issubclass(kombu_class, brokerpool_base)
    assert getattr(broker, kombu_class.__name__) is kombu_class


def test_an_unbound_entity_raises_not_bound_error() -> None:
    with pytest.raises(NotBoundError, match="not bound to a channel"):
        Queue("q").declare()
    with pytest.raises(ConfigurationError):  # what brokerpool code caught before
        Exchange("x").declare()


# -- constants ------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", [Exchange, Queue])
def test_delivery_mode_constants(entity: type[Exchange] | type[Queue]) -> None:
    assert entity.TRANSIENT_DELIVERY_MODE == 1
    assert entity.PERSISTENT_DELIVERY_MODE == 2
    transient = Exchange("x", delivery_mode=entity.TRANSIENT_DELIVERY_MODE)
    assert transient.default_delivery_mode == 1


def test_uuid_is_a_random_uuid_text() -> None:
    first, second = broker.uuid(), broker.uuid()
    assert first != second
    assert len(first) == 36 and first.count("-") == 4
