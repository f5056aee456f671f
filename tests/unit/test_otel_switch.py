"""Turning instrumentation on and off: zero imports when off, the instrumentor's shape.

When off, nothing of OpenTelemetry is imported and every hot path sees
``hooks.active is None``; ``instrument()``/``uninstrument()`` swap one object in
and out; ``opentelemetry-instrument`` finds the instrumentor by its entry point.
"""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys

import pytest

import broker
from broker.instrumentation import BrokerpoolInstrumentor, hooks, is_instrumented
from tests.support.otel import recording


def test_off_by_default_and_nothing_of_opentelemetry_is_imported() -> None:
    code = (
        "import sys, broker, broker.aio, pools, broker.cli.main\n"
        "from broker import Connection, Producer, Queue\n"
        "import broker.instrumentation\n"
        "with Connection('memory://') as c:\n"
        "    Producer(c, routing_key='q').publish(b'x')\n"
        "    p = c.Pool(1); p.acquire().release()\n"
        "assert broker.instrumentation.hooks.active is None\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_instrument_and_uninstrument_swap_the_hooks() -> None:
    assert hooks.active is None and not is_instrumented()
    with recording():
        assert is_instrumented()
        assert BrokerpoolInstrumentor().is_instrumented_by_opentelemetry
        assert repr(BrokerpoolInstrumentor()) == "<BrokerpoolInstrumentor on>"
    assert hooks.active is None
    assert not BrokerpoolInstrumentor().is_instrumented_by_opentelemetry
    broker.uninstrument()  # twice is harmless


def test_the_instrumentor_is_one_per_process_and_instrumenting_twice_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert BrokerpoolInstrumentor() is BrokerpoolInstrumentor()
    assert list(BrokerpoolInstrumentor().instrumentation_dependencies()) == ["brokerpool"]
    with recording():
        first = hooks.active
        with caplog.at_level(logging.WARNING, logger="broker.instrumentation"):
            BrokerpoolInstrumentor().instrument()
        assert hooks.active is first
        assert "already instrumented" in caplog.text


def test_the_global_providers_are_used_when_none_are_given() -> None:
    broker.instrument()
    try:
        assert is_instrumented()
        with broker.Connection("memory://") as conn:  # the API's no-op providers: no error
            broker.Producer(conn, routing_key="q").publish(b"x")
    finally:
        broker.uninstrument()


def test_opentelemetry_instrument_finds_it_by_its_entry_point() -> None:
    found = importlib.metadata.entry_points(group="opentelemetry_instrumentor", name="brokerpool")
    [entry_point] = list(found)
    assert entry_point.load() is BrokerpoolInstrumentor
