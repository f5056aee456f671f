"""The ``redis_key_prefix`` fixture deletes its test's keys on the machine's Redis, and only those.

Each check runs after the fixture's teardown: the checking fixture is set up
first and the fixture under test is requested inside the test body with
``request.getfixturevalue``, so it is torn down before the check runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.support.services import REDIS_DB, REDIS_URL, delete_redis_keys, redis_glob_escape

pytestmark = pytest.mark.redis

#: More than one ``SCAN``/``DEL`` batch of :func:`delete_redis_keys`.
MANY = 1234


@pytest.fixture
def db13(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client of db 13 of the machine's Redis."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


class Expectation:
    """Keys a test expects to be gone (by literal prefix) and to survive, after teardown."""

    def __init__(self) -> None:
        self.gone_prefix = ""
        self.survivors: list[str] = []


@pytest.fixture
def after_teardown(db13: redis.Redis) -> Iterator[Expectation]:
    """Checks an :class:`Expectation` once the fixtures set up after it are torn down."""
    expect = Expectation()
    yield expect
    try:
        assert expect.gone_prefix, "the test set no prefix to check"
        match = f"{redis_glob_escape(expect.gone_prefix)}*"
        left = list(db13.scan_iter(match=match, count=1000))
        assert left == [], f"{len(left)} keys under {expect.gone_prefix!r} survived"
        missing = [key for key in expect.survivors if not db13.exists(key)]
        assert missing == [], "keys of others were deleted"
    finally:
        if expect.survivors:
            db13.delete(*expect.survivors)


def test_redis_url_names_the_test_db(redis_url: str) -> None:
    assert redis_url == REDIS_URL == f"redis://127.0.0.1:6379/{REDIS_DB}"
    assert REDIS_DB == 13


def test_redis_key_prefix_deletes_only_its_own_keys(
    request: pytest.FixtureRequest, after_teardown: Expectation, db13: redis.Redis
) -> None:
    prefix: str = request.getfixturevalue("redis_key_prefix")
    assert re.fullmatch(r"bp-test:[0-9a-f]{8}:", prefix)
    after_teardown.gone_prefix = prefix
    other = f"bp-test:{uuid.uuid4().hex[:8]}:"
    after_teardown.survivors = [
        f"{other}k",  # another test's key
        prefix.rstrip(":"),  # the prefix without its last character
        f"x{prefix}k",  # the prefix, but not at the start
    ]

    with db13.pipeline(transaction=False) as pipe:
        for i in range(MANY):
            pipe.set(f"{prefix}k{i}", i)
        pipe.hset(f"{prefix}hash", mapping={"a": 1})
        pipe.rpush(f"{prefix}list", "x", "y")
        pipe.sadd(f"{prefix}set", "x")
        for key in after_teardown.survivors:
            pipe.set(key, "keep")
        pipe.execute()
    assert len(list(db13.scan_iter(match=f"{prefix}*", count=1000))) == MANY + 3


def test_delete_redis_keys_takes_the_prefix_literally(
    after_teardown: Expectation, db13: redis.Redis
) -> None:
    base = f"bp-test:{uuid.uuid4().hex[:8]}:"
    prefix = f"{base}g*[ab]?\\:"  # Redis glob characters
    after_teardown.gone_prefix = prefix
    after_teardown.survivors = [f"{base}gXXa1:k", f"{base}g[ab]?:k"]  # globbed, not literal
    db13.set(f"{prefix}k", 1)
    for key in after_teardown.survivors:
        db13.set(key, "keep")

    assert delete_redis_keys(prefix) == 1
    assert db13.exists(f"{prefix}k") == 0
    assert delete_redis_keys(prefix) == 0


def test_delete_redis_keys_refuses_an_empty_prefix(redis_url: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        delete_redis_keys("")
