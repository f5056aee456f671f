"""After os.fork() a child never gets, nor closes, the items its parent made."""

from __future__ import annotations

import os

import pytest

from tests.support.fake_pools import FakePool, gil_mode  # noqa: F401

pytestmark = pytest.mark.usefixtures("gil_mode")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_gets_or_closes_the_parents_items() -> None:
    pool = FakePool(3)
    pool.acquire().release()
    borrowed = pool.acquire()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status, never raise
        code = 0
        try:
            if (pool.in_use, pool.idle) != (0, 0):
                code = 10
            with pool.acquire() as lease:
                if lease.resource.pid != os.getpid() or len(pool.created) != 2:
                    code = 11
            borrowed.release()  # inherited: forgotten, never disposed of
            if pool.disposed or (pool.in_use, pool.idle) != (0, 1):
                code = 12
        except BaseException:
            code = 13
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (pool.in_use, pool.idle) == (1, 0)  # the parent is undisturbed
    borrowed.release()
    assert pool.disposed == []
