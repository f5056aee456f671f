"""OpenTelemetry instrumentation of brokerpool (needs ``opentelemetry-api``).

:class:`BrokerpoolInstrumentor` turns it on and off; what it records is
described in :mod:`broker.instrumentation.otel.telemetry` and the names in
:mod:`broker.instrumentation.otel.semconv`.
"""

from __future__ import annotations

from broker.instrumentation.otel.instrumentor import BrokerpoolInstrumentor

__all__ = ["BrokerpoolInstrumentor"]
