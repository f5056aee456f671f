"""The default pool limit, validation of pool settings, and the error of a refused limit."""

from __future__ import annotations

from broker.errors import BrokerError, ConfigurationError

__all__ = ["DEFAULT_LIMIT", "PoolInUse", "check_limit", "check_seconds", "get_limit"]

#: The limit a pool gets when none is given (see :func:`get_limit`).
DEFAULT_LIMIT = 10
_default_limit = DEFAULT_LIMIT


class PoolInUse(BrokerError, RuntimeError):
    """A new limit would fall below the items borrowed from the pool (kombu's ``RuntimeError``).

    Raised by ``pool.set_limit(n)`` (and ``pool.limit = n``) without
    ``force=True``; nothing was changed.
    """


def get_limit() -> int:
    """The limit of pools created with ``limit=None``: 10 unless :func:`pools.set_limit` ran."""
    return _default_limit


def set_default_limit(limit: int) -> None:
    """Change what :func:`get_limit` returns (:func:`pools.set_limit` also resizes groups)."""
    global _default_limit
    _default_limit = check_limit(limit)


def check_limit(value: object, key: str = "limit") -> int:
    """Validate a pool size: a positive ``int`` (pools are never unbounded)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{key} must be a positive integer (pools are always bounded), got {value!r}"
        )
    return value


def check_seconds(value: object, key: str, allow_zero: bool = False) -> float | None:
    """Validate a duration: ``None`` or a number of seconds (> 0, or >= 0 if allowed)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value  # nan: every comparison with it is false
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        low = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{key} must be None or a number of seconds {low}, got {value!r}")
    return float(value)
