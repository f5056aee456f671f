"""The ``brokerpool`` command line, on the embedded memory:// broker.

Commands run through ``broker.cli.main.main([...])`` in-process (the memory
broker is per process), with stdout/stderr captured by ``capsys``.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from broker import Connection
from broker.cli.bench import Progress
from broker.cli.main import main
from broker.cli.output import error_line
from broker.cli.publish import parse_headers
from broker.errors import ConfigurationError, OperationalError

SECRET = "Zq9-distinctive-Pw"
ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def declare(queue: str) -> None:
    with Connection("memory://") as conn:
        conn.default_channel.queue_declare(queue=queue, auto_delete=False)


# -- demo ------------------------------------------------------------------------


def test_demo_narrates_a_round_trip_on_memory(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("connected to memory://")
    assert lines[1].startswith("declared queue 'brokerpool-demo-")
    assert sum(line.startswith("published ") for line in lines) == 3
    received = [line for line in lines if line.startswith("received ")]
    assert len(received) == 3
    assert all(line.endswith("-> acked") for line in received)
    assert "{'n': 1, 'text': 'hello'}" in received[0]
    assert lines[-2] == "consumed 3 of 3 messages, each acknowledged"
    assert lines[-1].startswith("closed the connection to memory://")
    assert err == ""


def test_demo_masks_the_password_of_its_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo", "--url", f"memory://user:{SECRET}@localhost//")

    assert code == 0
    assert SECRET not in out + err
    assert "user:**@" in out


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"amqp://guest:{SECRET}@127.0.0.1:99999//", "port 99999 is out of range"),
        (f"amqpp://guest:{SECRET}@127.0.0.1//", "did you mean 'amqp'"),
        (f"amqp://guest:{SECRET}@127.0.0.1//?bogus_option=1", "bogus_option"),
    ],
)
def test_a_bad_url_prints_one_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], url: str, expected: str
) -> None:
    code, out, err = run(capsys, "check", url)

    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("brokerpool: error: ")
    assert expected in err
    assert "Traceback" not in err
    assert SECRET not in err


def test_verbose_shows_the_traceback_still_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "check", "-v", f"amqp://guest:{SECRET}@127.0.0.1:99999//")

    assert code == 1
    assert "Traceback" in err
    assert "ConfigurationError" in err
    assert err.rstrip().splitlines()[-1].startswith("brokerpool: error: ")
    assert SECRET not in err


def test_verbose_may_also_come_before_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-v", "check", "amqp://h:99999//")

    assert code == 1
    assert "Traceback" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["check"],
        ["consume", "memory://"],
        ["check", "--timeout", "0", "x"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)

    assert code == 2
    assert "usage: brokerpool" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")

    assert code == 0
    for command in ("demo", "check", "publish", "consume", "bench"):
        assert command in out


def test_error_line_folds_lines_and_masks_passwords() -> None:
    exc = OperationalError(f"could not connect to amqp://u:{SECRET}@h:1//\nafter 3 attempts")

    assert error_line(exc) == "could not connect to amqp://u:**@h:1// after 3 attempts"
    assert error_line(TimeoutError("slow")) == "TimeoutError: slow"


def test_main_leaves_logging_as_it_found_it(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("broker")
    before = (list(logger.handlers), logger.level, logger.propagate)

    run(capsys, "-v", "check", "memory://")

    assert (list(logger.handlers), logger.level, logger.propagate) == before


# -- check -----------------------------------------------------------------------


def test_check_memory_prints_server_facts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "memory://")

    assert code == 0
    assert "reached       memory://" in out
    assert "server        brokerpool-memory" in out
    assert "publisher_confirms" in out
    assert "heartbeat     off" in out
    assert "frame_max" in out
    assert "round trip" in out


def test_check_json_is_one_parseable_object(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--json", "memory://")

    assert code == 0
    facts = json.loads(out)
    assert facts["ok"] is True
    assert facts["transport"] == "memory"
    assert facts["capabilities"]["publisher_confirms"] is True
    assert facts["latency_ms"] >= 0
    assert facts["alternates"] == [facts["uri"]]


def test_check_json_failure_still_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", "--json", f"amqp://u:{SECRET}@h:99999//")

    assert code == 1
    assert json.loads(out) == {
        "ok": False,
        "error": err.strip().removeprefix("brokerpool: error: "),
    }
    assert SECRET not in out


# -- publish / consume -----------------------------------------------------------


def test_publish_then_consume_round_trips_body_and_headers(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    declare(unique_name)

    code, out, _ = run(
        capsys, "publish", "memory://", "-k", unique_name, "--header", "a=1", "--confirm", "héllo"
    )
    assert code == 0
    assert f"routing key {unique_name!r}" in out
    assert "(confirmed by the broker)" in out

    code, out, _ = run(
        capsys, "consume", "memory://", unique_name, "--count", "1", "--json", "--ack"
    )
    assert code == 0
    message = json.loads(out)
    assert message["body"] == "héllo"
    assert message["properties"]["application_headers"] == {"a": "1"}
    assert message["properties"]["content_type"] == "text/plain"
    assert message["routing_key"] == unique_name


def test_publish_reads_the_body_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, unique_name: str
) -> None:
    declare(unique_name)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x00binary\xff")))

    assert run(capsys, "publish", "memory://", "-k", unique_name, "--persistent", "-")[0] == 0
    _, out, _ = run(capsys, "consume", "memory://", unique_name, "-n", "1", "--json", "--ack")

    message = json.loads(out)
    assert message["body_encoding"] == "base64"
    assert message["properties"]["delivery_mode"] == 2


def test_consume_without_ack_leaves_messages_in_the_queue(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    declare(unique_name)
    for body in ("one", "two"):
        run(capsys, "publish", "memory://", "-k", unique_name, body)

    code, out, _ = run(capsys, "consume", "memory://", unique_name, "--count", "2")
    assert (code, out) == (0, "one\ntwo\n")

    code, out, _ = run(capsys, "consume", "memory://", unique_name, "--count", "2", "--ack")
    assert (code, out) == (0, "one\ntwo\n")
    code, out, err = run(capsys, "consume", "memory://", unique_name, "--timeout", "0.1")
    assert (code, out, err) == (0, "", "")


def test_consume_short_of_count_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    declare(unique_name)

    code, _, err = run(capsys, "consume", "memory://", unique_name, "-n", "3", "--timeout", "0.1")

    assert code == 1
    assert err == f"brokerpool: error: received 0 of 3 messages from {unique_name!r} within 0.1 s\n"


def test_consume_from_a_missing_queue_is_an_error_not_a_new_queue(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    code, _, err = run(capsys, "consume", "memory://", unique_name)

    assert code == 1
    assert err.count("\n") == 1
    assert "404" in err or "NOT_FOUND" in err


def test_bad_header_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "publish", "memory://", "--header", "novalue", "body")

    assert code == 1
    assert "--header must look like KEY=VALUE, got 'novalue'" in err


def test_parse_headers() -> None:
    assert parse_headers(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ConfigurationError, match="'=v'"):
        parse_headers(["=v"])


# -- bench -----------------------------------------------------------------------


def test_bench_on_memory_prints_a_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "bench", "--messages", "50", "--size", "10")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("brokerpool bench on memory://")
    phases = [line.split("  ")[0] for line in lines[2:]]
    assert phases == ["publish", "publish, pipelined confirms", "consume + ack"]
    assert lines[4].split()[3] == "100"  # consume + ack drains both publish phases


def test_progress_draws_only_after_the_delay_and_finishes_the_line() -> None:
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(
        "publish", 10, stream=stream, clock=lambda: now[0], delay=1.0, interactive=True
    )

    progress.update(3)
    assert stream.getvalue() == ""
    now[0] = 1.5
    progress.update(5)
    assert stream.getvalue() == "\rpublish: 5/10 ( 50%)"
    now[0] = 1.55
    progress.update(6)  # redraws are throttled to 10 a second
    assert stream.getvalue() == "\rpublish: 5/10 ( 50%)"
    progress.finish()
    assert stream.getvalue().endswith("\rpublish: 10/10 (100%)\n")


def test_progress_of_a_quick_phase_prints_nothing() -> None:
    stream = io.StringIO()
    progress = Progress("publish", 10, stream=stream, clock=lambda: 0.0, interactive=True)
    progress.update(10)
    progress.finish()

    assert stream.getvalue() == ""


# -- entry points ----------------------------------------------------------------


def test_python_dash_m_broker_help_works() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "broker", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: brokerpool")
