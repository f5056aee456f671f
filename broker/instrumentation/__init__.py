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

from typing import TYPE_CHECKING, Any

from broker.instrumentation import hooks

if TYPE_CHECKING:
    from broker.instrumentation.otel import BrokerpoolInstrumentor

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


def _instrumentor() -> BrokerpoolInstrumentor:
    try:
        from broker.instrumentation.otel import BrokerpoolInstrumentor
    except ImportError as exc:
        raise ImportError(
            f"brokerpool's instrumentation needs OpenTelemetry's API ({exc}); "
            f"install it with: pip install 'brokerpool[otel]'"
        ) from exc
    return BrokerpoolInstrumentor()


def __getattr__(name: str) -> Any:
    if name == "BrokerpoolInstrumentor":
        from broker.instrumentation.otel import BrokerpoolInstrumentor

        return BrokerpoolInstrumentor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
