"""The fence around py-amqp's private members (transports/amqp/pyamqp_internals.py).

The AMQP transport relies on a few private py-amqp members. These tests fail,
naming the member, when the installed py-amqp no longer has one as relied on,
and when a module other than pyamqp_internals touches one.
"""

from __future__ import annotations

import pathlib
import re

import amqp
import pytest

import transports
from transports.amqp import pyamqp_internals
from transports.amqp.driver import Driver
from transports.amqp.pyamqp_internals import PRIVATE_MEMBERS, PrivateMember


@pytest.mark.parametrize("member", PRIVATE_MEMBERS, ids=str)
def test_the_installed_py_amqp_still_has_the_member(member: PrivateMember) -> None:
    problem = member.problem()
    assert problem is None, f"py-amqp {amqp.__version__}: {problem}"


def test_all_members_are_checked_together() -> None:
    assert pyamqp_internals.missing_members() == []


def test_a_member_py_amqp_lacks_is_reported_by_name() -> None:
    gone = PrivateMember(amqp.Connection, "_no_such_member", "collect", "an example")
    assert gone.problem() == (
        "amqp.connection.Connection._no_such_member: Connection.collect no longer uses it "
        "(an example)"
    )
    moved = PrivateMember(amqp.Connection, "_transport", "no_such_method", "an example")
    assert moved.problem() == (
        "amqp.connection.Connection._transport: Connection.no_such_method is gone (an example)"
    )


def test_no_other_module_touches_a_listed_member() -> None:
    names = sorted({member.name for member in PRIVATE_MEMBERS})
    touch = re.compile(r"(\.|\bdef )(" + "|".join(map(re.escape, names)) + r")\b")
    fence = pathlib.Path(pyamqp_internals.__file__).resolve()
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in pathlib.Path(transports.__file__).parent.rglob("*.py")
        if path.resolve() != fence
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if touch.search(line)
    ]
    assert offenders == []


def test_the_connection_adapter_never_connects_by_itself() -> None:
    driver = Driver(host="127.0.0.1:1")
    assert driver.current_transport is None
    assert driver.channels_in_use == 0
    with pytest.raises(amqp.RecoverableConnectionError, match="already closed"):
        driver.transport  # noqa: B018  (py-amqp's getter would connect here)
