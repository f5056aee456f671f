"""Optional instrumentation: OpenTelemetry traces and metrics (``pip install brokerpool[otel]``).

Turn it on in one line, ``broker.instrument()`` (or the standard
``BrokerpoolInstrumentor().instrument()``; ``opentelemetry-instrument`` finds
it through its entry point), and off with ``broker.uninstrument()``. What is
recorded, under which names and units, is in ``docs/observability.rst``.

Nothing here imports OpenTelemetry until instrumentation is turned on:
:mod:`broker.instrumentation.hooks`, which the library's hot paths read, has
no imports at all, and the names below load :mod:`broker.instrumentation.otel`
on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from broker.instrumentation import hooks

__all__ = ["BrokerpoolInstrumentor", "instrument", "is_instrumented", "uninstrument"]


def instrument(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Record brokerpool's spans and metrics with OpenTelemetry.

    Args:
        tracer_provider: the ``TracerProvider`` to use; the global one when omitted.
        meter_provider: the ``MeterProvider`` to use; the global one when omitted.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed (``pip install brokerpool[otel]``).
    """
    _instrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)


def uninstrument() -> None:
    """Stop recording; the library's hot paths are back to a single ``None`` check."""
    if hooks.active is not None:
        _instrumentor().uninstrument()


def is_instrumented() -> bool:
    """Whether instrumentation is on."""
    return hooks.active is not None


#: Where the OpenTelemetry side lives. It is loaded by name, on first use, so that this
#: package -- which every layer imports for :mod:`~broker.instrumentation.hooks` --
#: depends on nothing above it.
_OTEL = "broker.instrumentation.otel"


def _instrumentor() -> Any:
    try:
        otel = importlib.import_module(_OTEL)
    except ImportError as exc:
        raise ImportError(
            f"brokerpool's instrumentation needs OpenTelemetry's API ({exc}); "
            f"install it with: pip install 'brokerpool[otel]'"
        ) from exc
    return otel.BrokerpoolInstrumentor()


def __getattr__(name: str) -> Any:
    if name == "BrokerpoolInstrumentor":
        return importlib.import_module(_OTEL).BrokerpoolInstrumentor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
