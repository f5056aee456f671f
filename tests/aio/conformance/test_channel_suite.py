"""The synchronous channel conformance suite, imported as it is (see ``conftest.py``)."""

from tests.conformance.test_channel_capabilities import *  # noqa: F403
from tests.conformance.test_channel_conformance import *  # noqa: F403
from tests.conformance.test_exchange_bindings import *  # noqa: F403
