"""The command line as a user with narrow permissions, on a real RabbitMQ.

The user is made for the test and deleted after it: on the machine's node on
5672 through its ``rabbitmqctl`` (adding and deleting a throw-away user and
its permissions is the only change made there), or, when ``rabbitmqctl``
cannot reach that node, on an extra node of the test's own.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from broker.cli.main import main
from tests.support.rabbitnode import RabbitNode, require_extra_nodes
from tests.support.services import RABBITMQ_HOST, RABBITMQ_PORT, require_service

pytestmark = pytest.mark.broker

#: Permissions of an application that may only configure its own queues.
CONFIGURE, WRITE, READ = "^app-.*", ".*", ".*"

Ctl = Callable[..., None]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _system_ctl(*args: str) -> None:
    """``rabbitmqctl`` against the machine's node; RuntimeError when it fails."""
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {args[0]} exited {done.returncode}: {done.stderr}")


@pytest.fixture(scope="module")
def restricted_url() -> Iterator[str]:
    """``amqp://`` URL of a user whose configure permission is ``^app-.*``."""
    require_service("RabbitMQ", RABBITMQ_HOST, RABBITMQ_PORT)
    user, password = f"bp-test-{uuid.uuid4().hex[:8]}", secrets.token_hex(12)
    node: RabbitNode | None = None
    ctl: Ctl = _system_ctl
    port = RABBITMQ_PORT
    try:
        if shutil.which("rabbitmqctl") is None:
            raise RuntimeError("rabbitmqctl is not on PATH")
        ctl("add_user", user, password)
    except RuntimeError:
        require_extra_nodes()
        node = RabbitNode()
        node.start()
        ctl, port = node.ctl, node.port
        ctl("add_user", user, password)
    try:
        ctl("set_permissions", "-p", "/", user, CONFIGURE, WRITE, READ)
        yield f"amqp://{user}:{password}@127.0.0.1:{port}//"
    finally:
        ctl("delete_user", user)
        if node is not None:
            node.close()


def test_check_reports_the_broker_reachable_and_the_probe_unavailable(
    capsys: pytest.CaptureFixture[str], restricted_url: str
) -> None:
    code, out, err = run(capsys, "check", "--json", restricted_url)

    assert code == 0, err
    facts = json.loads(out)
    assert facts["ok"] is True
    assert facts["product"] == "RabbitMQ"
    assert facts["latency_ms"] is None
    assert "ACCESS_REFUSED" in facts["latency_unavailable"]
    password = urlsplit(restricted_url).password
    assert password and password not in out


def test_check_text_says_the_round_trip_is_unavailable(
    capsys: pytest.CaptureFixture[str], restricted_url: str
) -> None:
    code, out, err = run(capsys, "check", restricted_url)

    assert code == 0, err
    assert "server        RabbitMQ " in out
    assert "round trip    unavailable: ACCESS_REFUSED" in out


def test_publish_queue_option_reports_a_refused_declare(
    capsys: pytest.CaptureFixture[str], restricted_url: str
) -> None:
    code, out, err = run(capsys, "publish", restricted_url, "--queue", "not-app-queue", "x")

    assert code == 1
    assert out == ""
    assert "ACCESS_REFUSED" in err
