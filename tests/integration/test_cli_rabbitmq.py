"""The ``brokerpool`` command line against the real RabbitMQ on 127.0.0.1:5672.

One test runs the installed console script (``.venv/bin/brokerpool``, or
``python -m broker`` when the package was not installed with pip) in a
subprocess; the others call ``broker.cli.main.main`` in-process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import amqp
import pytest

from broker.cli.main import main
from broker.url.parse import parse_url

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Zq9-distinctive-Pw"


def brokerpool_command() -> list[str]:
    """The console script next to this interpreter, else ``python -m broker``."""
    script = Path(sys.executable).with_name("brokerpool")
    if script.exists():
        return [str(script)]
    found = shutil.which("brokerpool")
    return [found] if found else [sys.executable, "-m", "broker"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def queue(rabbitmq_url: str, unique_name: str) -> Iterator[str]:
    """A durable-less queue on the real broker, deleted afterwards."""
    p = parse_url(rabbitmq_url)
    conn = amqp.Connection(host=f"{p.hostname}:{p.port}", userid=p.userid, password=p.password)
    conn.connect()
    ch = conn.channel()
    ch.queue_declare(queue=unique_name, auto_delete=False)
    yield unique_name
    ch.queue_delete(queue=unique_name)
    conn.close()


def test_check_prints_server_facts(capsys: pytest.CaptureFixture[str], rabbitmq_url: str) -> None:
    code, out, err = run(capsys, "check", rabbitmq_url)

    assert code == 0, err
    assert "reached       amqp://guest:**@127.0.0.1:5672//" in out
    assert "server        RabbitMQ " in out
    assert "publisher_confirms" in out
    assert "heartbeat     60 s" in out  # requested 60, RabbitMQ's default is 60
    assert "frame_max     131072 bytes" in out
    assert "round trip" in out


def test_check_json_parses(capsys: pytest.CaptureFixture[str], rabbitmq_url: str) -> None:
    code, out, _ = run(capsys, "check", "--json", "--heartbeat", "10", rabbitmq_url)

    assert code == 0
    facts = json.loads(out)
    assert facts["ok"] is True
    assert facts["product"] == "RabbitMQ"
    assert facts["host"] == "127.0.0.1:5672"
    assert facts["heartbeat"] == 10
    assert facts["frame_max"] > 0
    assert facts["capabilities"]["basic.nack"] is True
    assert 0 < facts["latency_ms"] < 5000


def test_check_fails_over_to_the_first_broker_that_answers(
    capsys: pytest.CaptureFixture[str], rabbitmq_url: str
) -> None:
    code, out, err = run(
        capsys, "check", "--json", f"amqp://guest:{SECRET}@127.0.0.1:1//", rabbitmq_url
    )

    assert code == 0, err
    facts = json.loads(out)
    assert facts["host"] == "127.0.0.1:5672"
    assert facts["alternates"][0] == "amqp://guest:**@127.0.0.1:1//"
    assert SECRET not in out + err


def test_check_of_a_dead_port_prints_one_line_and_exits_1_without_retrying(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "check", f"amqp://guest:{SECRET}@127.0.0.1:1//")

    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("brokerpool: error: could not connect to amqp://guest:**@127.0.0.1:1//")
    # One URL, one pass: a refused port ends the command at once, no backoff sleep.
    assert " after 1 attempt in " in err
    assert SECRET not in err


def test_a_wrong_password_is_reported_without_echoing_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "check", f"amqp://guest:{SECRET}@127.0.0.1:5672//")

    assert code == 1
    assert err.count("\n") == 1
    assert "refused" in err
    assert SECRET not in err


def test_publish_and_consume_round_trip_through_the_console_script(
    rabbitmq_url: str, queue: str
) -> None:
    command = brokerpool_command()

    published = subprocess.run(
        [*command, "publish", rabbitmq_url, "-k", queue, "--confirm", "--header", "k=v", "-"],
        input=b"hello rabbit",
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert published.returncode == 0, published.stderr
    assert b"(confirmed by the broker)" in published.stdout

    consumed = subprocess.run(
        [*command, "consume", rabbitmq_url, queue, "--count", "1", "--ack", "--json"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert consumed.returncode == 0, consumed.stderr
    message = json.loads(consumed.stdout)
    assert message["body"] == "hello rabbit"
    assert message["properties"]["application_headers"] == {"k": "v"}
    assert message["redelivered"] is False


def test_publish_mandatory_unroutable_with_confirm_exits_1(
    capsys: pytest.CaptureFixture[str], rabbitmq_url: str, unique_name: str
) -> None:
    code, _, err = run(
        capsys, "publish", rabbitmq_url, "-k", unique_name, "--mandatory", "--confirm", "x"
    )

    assert code == 1
    assert err.count("\n") == 1
    assert "NO_ROUTE" in err


def test_demo_against_rabbitmq(capsys: pytest.CaptureFixture[str], rabbitmq_url: str) -> None:
    code, out, err = run(capsys, "demo", "--url", rabbitmq_url)

    assert code == 0, err
    assert out.splitlines()[0].startswith("connected to amqp://guest:**@127.0.0.1:5672// (RabbitMQ")
    assert "consumed 3 of 3 messages, each acknowledged" in out


def test_bench_against_rabbitmq(capsys: pytest.CaptureFixture[str], rabbitmq_url: str) -> None:
    code, out, err = run(capsys, "bench", rabbitmq_url, "--messages", "200")

    assert code == 0, err
    assert [line.split("  ")[0] for line in out.splitlines()[2:]] == [
        "publish",
        "publish, pipelined confirms",
        "consume + ack",
    ]
