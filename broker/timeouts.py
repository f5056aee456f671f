"""Validation of timeout arguments, shared by every layer.

A bottom-layer module (it imports :mod:`broker.errors` only), so that
``transports`` and ``pools`` check their timeouts the way the façade does.
Every public parameter that is a number of seconds goes through one of the
two functions here and raises :class:`~broker.errors.ConfigurationError`
naming the parameter, the value and what is allowed, before anything waits:
a ``nan`` would otherwise make every deadline comparison false and wait
forever, and a string would fail later with a bare :class:`TypeError`.

Rules:

* a timeout is ``None`` where the parameter allows it (no limit), or a real
  number (``int``, ``float`` or another :class:`numbers.Real`; ``bool`` is
  refused) that is not ``nan``;
* it is never negative, and never zero where the parameter says ``positive``;
* ``math.inf`` means "no limit" and is accepted unless the parameter says
  ``finite`` (a socket or heartbeat interval cannot be infinite).
"""

from __future__ import annotations

import math
from numbers import Real

from broker.errors import ConfigurationError

__all__ = ["check_seconds", "check_timeout"]


def check_timeout(value: object, name: str = "timeout") -> float | None:
    """A wait's timeout: ``None`` (no limit) or a number of seconds ``>= 0``.

    Args:
        value: what the caller passed.
        name: the parameter as the caller knows it (``"timeout"``,
            ``"confirm_timeout"``), quoted in the error.

    Returns:
        ``None``, or ``value`` as a float (``math.inf`` stays infinite).

    Raises:
        ConfigurationError: ``value`` is ``nan``, negative, a ``bool`` or not a number.
    """
    # The common case without the ABC check: drain_events runs this for every message.
    if isinstance(value, float):
        if value >= 0:  # nan fails ``>= 0``
            return value
    elif isinstance(value, int) and value.__class__ is not bool and value >= 0:
        return float(value)
    return _seconds(value, name, none_ok=True, positive=False, finite=False)


def check_seconds(
    value: object, name: str, *, positive: bool = False, finite: bool = False
) -> float:
    """A duration that must be given: a number of seconds (``None`` is refused).

    Args:
        value: what the caller passed.
        name: the parameter, quoted in the error.
        positive: refuse zero too (e.g. ``connect_timeout``).
        finite: refuse ``math.inf`` too (e.g. an interval handed to a socket).

    Raises:
        ConfigurationError: ``value`` is not an allowed number of seconds.
    """
    seconds = _seconds(value, name, none_ok=False, positive=positive, finite=finite)
    assert seconds is not None  # none_ok=False never returns None
    return seconds


def _seconds(
    value: object, name: str, *, none_ok: bool, positive: bool, finite: bool
) -> float | None:
    if value is None and none_ok:
        return None
    is_number = False
    if isinstance(value, Real) and not isinstance(value, bool):
        is_number = True
        number = float(value)
        in_range = number > 0 or (number == 0 and not positive)  # False for nan
        if in_range and not (finite and math.isinf(number)):
            return number
    allowed = f"{'a finite' if finite else 'a'} number of seconds {'> 0' if positive else '>= 0'}"
    if none_ok:
        allowed = f"None (no limit) or {allowed}"
    kind = "" if is_number or value is None else f" (a {type(value).__name__})"
    raise ConfigurationError(f"{name} must be {allowed}, got {value!r}{kind}")
