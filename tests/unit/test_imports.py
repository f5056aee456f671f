"""Each top-level package imports alone, and imports flow one way (docs/architecture.rst)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["broker", "transports", "pools"])
def test_package_imports_alone_in_a_fresh_interpreter(package: str) -> None:
    code = (
        f"import sys, {package}\n"
        "assert 'broker.connection.connection' not in sys.modules or "
        f"'{package}' == 'broker', sorted(m for m in sys.modules if m.startswith('broker'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("package", ["transports", "pools"])
def test_lower_packages_never_import_the_facade(package: str) -> None:
    code = (
        "import sys, importlib, pkgutil\n"
        f"import {package}\n"
        f"for m in pkgutil.iter_modules({package}.__path__, '{package}.'):\n"
        "    importlib.import_module(m.name)\n"
        "heavy = ('broker.connection.connection', 'broker.messaging.producer')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_layers_below_the_facade_never_import_it() -> None:
    # The retry loops drive a Reconnectable, entities and messaging a
    # ChannelOwner: neither needs the Connection class at run time.
    code = (
        "import sys, importlib, pkgutil\n"
        "import broker.retry.ensure, broker.entities, broker.messaging\n"
        "for pkg in (broker.entities, broker.messaging):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "assert 'broker.connection.connection' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith('broker.connection'))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_every_exported_name_resolves() -> None:
    import broker

    for name in broker.__all__:
        value = getattr(broker, name)
        assert getattr(value, "__name__", name) == name
    assert broker.Connection.__module__ == "broker.connection.connection"
    with pytest.raises(AttributeError):
        broker.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
