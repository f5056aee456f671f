"""A connection RabbitMQ closes with 541 INTERNAL_ERROR is worth a reconnect.

Seen in the rolling restart of tests/cluster/test_cluster_failover.py: while a
node shuts down, the channels of quorum queue consumers die under their
connection, which the node then closes with 541 rather than 320.
"""

from __future__ import annotations

from amqp import exceptions as amqp_exc

from broker.errors import IrrecoverableConnectionError, RecoverableConnectionError
from transports.amqp.errors import translate

WHERE = "amqp://guest:**@127.0.0.1:5681//"


def test_541_internal_error_is_recoverable() -> None:
    error = translate(amqp_exc.InternalError("INTERNAL_ERROR", reply_code=541), WHERE)
    assert isinstance(error, RecoverableConnectionError) and error.reply_code == 541
    assert str(error) == f"{WHERE} closed the connection: INTERNAL_ERROR (reply code 541)"


def test_other_hard_errors_stay_irrecoverable() -> None:
    error = translate(amqp_exc.FrameError("FRAME_ERROR", reply_code=501), WHERE)
    assert isinstance(error, IrrecoverableConnectionError) and error.reply_code == 501
