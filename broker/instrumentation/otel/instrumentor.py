"""``BrokerpoolInstrumentor``: the standard shape of an OpenTelemetry instrumentation.

Like the ``opentelemetry-instrumentation-*`` packages: one instance per
process, ``instrument(tracer_provider=..., meter_provider=...)`` and
``uninstrument()``, and an ``opentelemetry_instrumentor`` entry point named
``brokerpool``, so ``opentelemetry-instrument`` turns it on (and
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=brokerpool`` leaves it off). It needs
only ``opentelemetry-api``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from typing import Any, ClassVar

from opentelemetry import metrics, trace

from broker import __version__
from broker.instrumentation import hooks
from broker.instrumentation.otel.telemetry import OpenTelemetryHooks

__all__ = ["BrokerpoolInstrumentor"]

logger = logging.getLogger("broker.instrumentation")

#: The instrumentation scope brokerpool's spans and metrics are recorded under.
SCOPE = "brokerpool"


class BrokerpoolInstrumentor:
    """Turns brokerpool's OpenTelemetry spans and metrics on and off (a singleton)."""

    _instance: ClassVar[BrokerpoolInstrumentor | None] = None
    _guard: ClassVar[threading.Lock] = threading.Lock()
    _hooks: OpenTelemetryHooks | None

    def __new__(cls) -> BrokerpoolInstrumentor:
        with cls._guard:
            if cls._instance is None:
                instance = super().__new__(cls)
                instance._hooks = None
                cls._instance = instance
            return cls._instance

    def instrumentation_dependencies(self) -> Collection[str]:
        """The instrumented library: brokerpool itself (``opentelemetry-instrument`` checks it)."""
        return ("brokerpool",)

    @property
    def is_instrumented_by_opentelemetry(self) -> bool:
        """Whether :meth:`instrument` is in effect."""
        return self._hooks is not None

    def instrument(self, **kwargs: Any) -> None:
        """Start recording.

        Keyword Args:
            tracer_provider: the ``TracerProvider``; the global one when omitted.
            meter_provider: the ``MeterProvider``; the global one when omitted.

        Other keywords (``opentelemetry-instrument`` passes some) are ignored.
        Instrumenting twice logs a warning and changes nothing.
        """
        with self._guard:
            if self._hooks is not None:
                logger.warning("brokerpool is already instrumented; uninstrument() first")
                return
            version = __version__
            tracer = trace.get_tracer(SCOPE, version, tracer_provider=kwargs.get("tracer_provider"))
            meter = metrics.get_meter(SCOPE, version, meter_provider=kwargs.get("meter_provider"))
            self._hooks = OpenTelemetryHooks(tracer, meter)
            hooks.install(self._hooks)

    def uninstrument(self, **kwargs: Any) -> None:
        """Stop recording; the library's hot paths are back to one ``None`` check."""
        with self._guard:
            installed, self._hooks = self._hooks, None
            if installed is not None:
                hooks.remove(installed)
                installed.close()

    def __repr__(self) -> str:
        state = "on" if self._hooks is not None else "off"
        return f"<BrokerpoolInstrumentor {state}>"
