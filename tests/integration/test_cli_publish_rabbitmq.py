"""``brokerpool publish`` against the real RabbitMQ: nothing is dropped silently.

The command confirms and sets ``mandatory`` by default, so a missing exchange
or a message no queue takes is an error (exit 1) instead of "published";
``--queue`` declares the queue the message is meant for.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import amqp
import pytest

from broker.cli.main import main
from broker.url.parse import parse_url

pytestmark = pytest.mark.broker


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def raw(rabbitmq_url: str) -> Iterator[amqp.Channel]:
    """A raw py-amqp channel on the same broker, to inspect and clean up."""
    p = parse_url(rabbitmq_url)
    conn = amqp.Connection(host=f"{p.hostname}:{p.port}", userid=p.userid, password=p.password)
    conn.connect()
    try:
        yield conn.channel()
    finally:
        conn.close()


@pytest.fixture
def cleanup(raw: amqp.Channel) -> Iterator[list[str]]:
    """Names of queues a test made; each is deleted afterwards (with its bindings)."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(Exception):
            raw.queue_delete(queue=name)


def test_publish_to_a_missing_exchange_exits_1(
    capsys: pytest.CaptureFixture[str], rabbitmq_url: str, unique_name: str
) -> None:
    code, out, err = run(capsys, "publish", rabbitmq_url, "-e", unique_name, "-k", "k", "x")

    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "NOT_FOUND" in err


def test_publish_that_no_queue_takes_exits_1(
    capsys: pytest.CaptureFixture[str], rabbitmq_url: str, unique_name: str
) -> None:
    code, out, err = run(capsys, "publish", rabbitmq_url, "-k", unique_name, "x")

    assert code == 1
    assert out == ""
    assert "NO_ROUTE" in err


def test_publish_to_an_exchange_with_no_queue_bound_exits_1(
    capsys: pytest.CaptureFixture[str], rabbitmq_url: str
) -> None:
    code, out, err = run(capsys, "publish", rabbitmq_url, "-e", "amq.fanout", "x")

    assert code == 1
    assert out == ""
    assert "NO_ROUTE" in err


def test_publish_with_queue_declares_it_and_the_message_waits_there(
    capsys: pytest.CaptureFixture[str],
    rabbitmq_url: str,
    unique_name: str,
    raw: amqp.Channel,
    cleanup: list[str],
) -> None:
    cleanup.append(unique_name)

    code, out, err = run(
        capsys, "publish", rabbitmq_url, "-q", unique_name, "--header", "origin=cli", "hello"
    )

    assert code == 0, err
    assert out.endswith("(confirmed by the broker)\n")
    ok = raw.queue_declare(queue=unique_name, passive=True)
    assert ok.message_count == 1
    code, out, _ = run(capsys, "consume", rabbitmq_url, unique_name, "-n", "1", "--ack", "--json")
    assert code == 0
    message = json.loads(out)
    assert message["body"] == "hello"
    assert message["properties"]["application_headers"] == {"origin": "cli"}


def test_publish_with_queue_binds_it_to_the_exchange(
    capsys: pytest.CaptureFixture[str],
    rabbitmq_url: str,
    unique_name: str,
    raw: amqp.Channel,
    cleanup: list[str],
) -> None:
    cleanup.append(unique_name)

    code, _, err = run(
        capsys, "publish", rabbitmq_url, "-e", "amq.direct", "-k", "jobs", "-q", unique_name, "j"
    )

    assert code == 0, err
    assert raw.queue_declare(queue=unique_name, passive=True).message_count == 1


def test_publish_with_queue_uses_a_queue_declared_differently(
    capsys: pytest.CaptureFixture[str],
    rabbitmq_url: str,
    unique_name: str,
    raw: amqp.Channel,
    cleanup: list[str],
) -> None:
    cleanup.append(unique_name)
    raw.queue_declare(queue=unique_name, durable=False, arguments={"x-max-length": 10})

    code, _, err = run(capsys, "publish", rabbitmq_url, "-q", unique_name, "x")

    assert code == 0, err
    assert raw.queue_declare(queue=unique_name, passive=True).message_count == 1


def test_no_confirm_does_not_claim_delivery(
    capsys: pytest.CaptureFixture[str], rabbitmq_url: str, unique_name: str
) -> None:
    code, out, _ = run(
        capsys, "publish", rabbitmq_url, "--no-confirm", "-e", unique_name, "-k", "k", "x"
    )

    assert code == 0
    assert "not known whether the broker took it" in out
