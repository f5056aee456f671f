"""The command line's edges, on the embedded memory:// broker.

``publish`` confirms by default and fails when nothing takes the message;
``--queue`` declares the target; ``consume`` prints bodies inert; every
numeric option is checked by the parser (a usage error, exit 2); the bench's
progress line is drawn on terminals only.
"""

from __future__ import annotations

import io
import json

import pytest

from broker import Connection
from broker.cli.bench import Progress
from broker.cli.main import main
from broker.cli.output import printable


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def declare(queue: str, **arguments: object) -> None:
    with Connection("memory://") as conn:
        conn.default_channel.queue_declare(
            queue=queue, auto_delete=False, arguments=dict(arguments) or None
        )


def message_count(queue: str) -> int:
    with Connection("memory://") as conn:
        ok = conn.default_channel.queue_declare(queue=queue, passive=True)
        assert ok is not None
        return ok.message_count


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# -- numeric options -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["check", "--passes", "0", "memory://"], "--passes: expected a whole number >= 1"),
        (["check", "--passes", "two", "memory://"], "--passes: expected a whole number, got"),
        (["check", "--heartbeat", "-1", "memory://"], "--heartbeat: expected a number of seconds"),
        (["check", "--heartbeat", "nan", "memory://"], "--heartbeat"),
        (["check", "--heartbeat", "inf", "memory://"], "--heartbeat"),
        (["check", "--heartbeat", "70000", "memory://"], "from 0 to 65535"),
        (["check", "--timeout", "-1", "memory://"], "--timeout: expected a number of seconds > 0"),
        (["consume", "--count", "-1", "memory://", "q"], "--count: expected a whole number >= 1"),
        (["consume", "--count", "0", "memory://", "q"], "--count"),
        (["consume", "--timeout", "nan", "memory://", "q"], "--timeout"),
        (["publish", "--timeout", "0", "memory://", "x"], "--timeout"),
        (["bench", "--messages", "0"], "--messages: expected a whole number >= 1"),
        (["bench", "--size", "-1"], "--size: expected a whole number >= 0"),
        (["bench", "--prefetch", "0"], "--prefetch: expected a whole number from 1 to 65535"),
        (["bench", "--prefetch", "65536"], "--prefetch"),
        (["demo", "--timeout", "0"], "--timeout"),
    ],
)
def test_a_senseless_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    assert "usage: brokerpool" in err
    assert complaint in err


def test_heartbeat_zero_turns_heartbeats_off(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--json", "--heartbeat", "0", "memory://")

    assert code == 0
    assert json.loads(out)["ok"] is True


def test_an_empty_body_is_a_valid_bench_size(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "bench", "--messages", "5", "--size", "0")

    assert code == 0, err
    assert ": 5 messages of 0 B" in out.splitlines()[0]


# -- publish confirms by default -------------------------------------------------


def test_publish_with_no_queue_to_take_it_fails(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    code, out, err = run(capsys, "publish", "memory://", "-k", unique_name, "lost?")

    assert code == 1
    assert out == ""  # never "published ... (sent)"
    assert err.count("\n") == 1
    assert "NO_ROUTE" in err


def test_publish_to_a_missing_exchange_fails(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    code, out, err = run(capsys, "publish", "memory://", "-e", unique_name, "-k", "x", "lost?")

    assert code == 1
    assert out == ""
    assert "NOT_FOUND" in err
    assert unique_name in err


def test_publish_says_confirmed_when_a_queue_took_it(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    declare(unique_name)

    code, out, _ = run(capsys, "publish", "memory://", "-k", unique_name, "kept")

    assert code == 0
    assert out.endswith("(confirmed by the broker)\n")
    assert message_count(unique_name) == 1


def test_no_confirm_only_sends_and_says_so(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    code, out, _ = run(capsys, "publish", "memory://", "--no-confirm", "-k", unique_name, "x")

    assert code == 0
    assert "(sent without waiting for a confirm: not known whether the broker took it)" in out


def test_no_mandatory_accepts_that_no_queue_takes_it(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    code, out, _ = run(capsys, "publish", "memory://", "--no-mandatory", "-k", unique_name, "x")

    assert code == 0
    assert "(confirmed by the broker)" in out


def test_queue_option_declares_the_queue_and_routes_to_it(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    code, out, err = run(capsys, "publish", "memory://", "--queue", unique_name, "job")

    assert code == 0, err
    assert f"routing key {unique_name!r}" in out
    code, out, _ = run(capsys, "consume", "memory://", unique_name, "-n", "1", "--json", "--ack")
    assert code == 0
    assert json.loads(out)["body"] == "job"


def test_queue_option_uses_an_existing_queue_as_it_is(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    declare(unique_name, **{"x-max-length": 5})  # declared differently by its owner

    for body in ("one", "two"):
        code, _, err = run(capsys, "publish", "memory://", "-q", unique_name, body)
        assert code == 0, err

    assert message_count(unique_name) == 2


def test_queue_option_binds_to_the_named_exchange(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    with Connection("memory://") as conn:
        conn.default_channel.exchange_declare(exchange=unique_name, type="direct")

    code, out, err = run(
        capsys, "publish", "memory://", "-e", unique_name, "-k", "jobs", "-q", unique_name, "j"
    )

    assert code == 0, err
    assert f"exchange {unique_name!r} with routing key 'jobs'" in out
    assert message_count(unique_name) == 1


def test_queue_option_with_a_missing_exchange_fails_before_publishing(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    code, out, err = run(capsys, "publish", "memory://", "-e", "no-such-x", "-q", unique_name, "j")

    assert code == 1
    assert out == ""
    assert "NOT_FOUND" in err


# -- consume prints bodies inert -------------------------------------------------


def test_consume_escapes_control_characters(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    declare(unique_name)
    body = "a\x00b\rc\nd\x1b[2J\x07\x9b\u202eevil\tend é ✓"
    assert run(capsys, "publish", "memory://", "-k", unique_name, body)[0] == 0

    code, out, _ = run(capsys, "consume", "memory://", unique_name, "-n", "1")

    assert code == 0
    assert out == "a\\x00b\\rc\\nd\\x1b[2J\\x07\\x9b\\u202eevil\\tend é ✓\n"


def test_consume_json_keeps_the_exact_body(
    capsys: pytest.CaptureFixture[str], unique_name: str
) -> None:
    declare(unique_name)
    body = "a\x00b\r\n\x1b[0m"
    run(capsys, "publish", "memory://", "-k", unique_name, body)

    _, out, _ = run(capsys, "consume", "memory://", unique_name, "-n", "1", "--json")

    assert out.count("\n") == 1
    assert json.loads(out)["body"] == body


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
        ("back\\slash", "back\\slash"),
        ("\x7f\x85\u2066\u2069", "\\x7f\\x85\\u2066\\u2069"),
        ("line\r\n", "line\\r\\n"),
    ],
)
def test_printable(text: str, shown: str) -> None:
    assert printable(text) == shown


# -- the bench's progress line ---------------------------------------------------


def test_progress_draws_nothing_on_a_pipe_or_file() -> None:
    now = [0.0]
    stream = io.StringIO()  # not a terminal
    progress = Progress("publish", 10, stream=stream, clock=lambda: now[0], delay=1.0)

    now[0] = 5.0
    progress.update(5)
    progress.finish()

    assert stream.getvalue() == ""
    assert "silent" in repr(progress)


def test_progress_draws_on_a_terminal() -> None:
    now = [0.0]
    stream = Terminal()
    progress = Progress("publish", 10, stream=stream, clock=lambda: now[0], delay=1.0)

    now[0] = 5.0
    progress.update(5)
    progress.finish()

    assert stream.getvalue() == "\rpublish: 5/10 ( 50%)\rpublish: 10/10 (100%)\n"
    assert "terminal" in repr(progress)


def test_bench_on_a_captured_stderr_prints_no_carriage_returns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "bench", "--messages", "20")

    assert code == 0
    assert "\r" not in err


# -- check on memory -------------------------------------------------------------


def test_check_json_says_the_latency_probe_worked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", "--json", "memory://")

    facts = json.loads(out)
    assert code == 0
    assert facts["latency_ms"] >= 0
    assert facts["latency_unavailable"] is None
