"""``brokerpool check`` and ``consume`` print the trace id of what they handled when traced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace

from broker import Connection, Producer
from broker.cli.main import main
from tests.support.otel import Recording, recording


@pytest.fixture
def otel() -> Iterator[Recording]:
    with recording() as rec:
        yield rec


def test_check_prints_the_trace_id_of_its_span(
    otel: Recording, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "memory://"]) == 0
    out = capsys.readouterr().out
    span = otel.span("brokerpool check")
    trace_id = trace.format_trace_id(span.context.trace_id)
    assert f"trace         {trace_id}" in out.splitlines()
    assert main(["check", "--json", "memory://"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["trace_id"] == trace.format_trace_id(otel.spans()[-1].context.trace_id)


def test_check_prints_no_trace_line_when_not_traced(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json", "memory://"]) == 0
    assert "trace_id" not in json.loads(capsys.readouterr().out)


def test_consume_prints_the_trace_each_message_continues(
    otel: Recording, capsys: pytest.CaptureFixture[str]
) -> None:
    with Connection("memory://") as conn:
        conn.default_channel.queue_declare(queue="otel-cli", auto_delete=False)
        Producer(conn, routing_key="otel-cli").publish(b"hello")
        assert main(["consume", "memory://", "otel-cli", "-n", "1", "--ack", "--json"]) == 0
        Producer(conn, routing_key="otel-cli").publish(b"again")
        assert main(["consume", "memory://", "otel-cli", "-n", "1"]) == 0
    captured = capsys.readouterr()
    first, second = otel.spans("publish otel-cli")
    [line] = captured.out.splitlines()[:1]
    assert json.loads(line)["trace_id"] == trace.format_trace_id(first.context.trace_id)
    assert captured.out.splitlines()[1] == "again"  # the body alone on stdout...
    # ...and its trace on stderr.
    assert f"brokerpool: trace {trace.format_trace_id(second.context.trace_id)}" in captured.err
    assert otel.span("ack otel-cli").parent is not None
    for process in otel.spans("process otel-cli"):
        assert process.parent is not None


def test_opentelemetry_instrument_turns_it_on_for_the_command(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    command = bin_dir / "opentelemetry-instrument"
    if not command.exists():
        pytest.skip("opentelemetry-instrument is not installed (the test extra has it)")
    env = {**os.environ, "OTEL_SERVICE_NAME": "brokerpool-test"}
    result = subprocess.run(
        [str(command), "--traces_exporter", "console", "--metrics_exporter", "none",
         "--logs_exporter", "none", str(bin_dir / "brokerpool"), "check", "--json", "memory://"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    facts = json.loads(lines[0])
    # The console exporter prints the span after the command's own output.
    assert f'"trace_id": "0x{facts["trace_id"]}"' in result.stdout
    assert '"name": "brokerpool check"' in result.stdout
