"""Sphinx configuration for the brokerpool documentation.

``make docs`` builds it with ``-n -W``: every cross-reference must resolve and
any warning fails the build. The build needs no network (no intersphinx).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "brokerpool"
author = "brokerpool developers"
copyright = "2026, brokerpool developers"
release = "0.1.0"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# A default ``members`` documents every public member (``__all__`` of a module),
# whatever list a directive in api.rst names.
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []

# Every reference must resolve (``-n``), except to the standard library, which
# has no page here: linking it would need Python's inventory (intersphinx),
# downloaded at build time, which this build must not need.
nitpicky = True
_STDLIB = "|".join(
    re.escape(name)
    for name in (
        "_queue", "abc", "asyncio", "collections.abc", "concurrent.futures", "contextlib",
        "datetime", "decimal", "enum", "logging", "numbers", "queue", "random", "socket", "ssl",
        "threading", "types", "typing", "uuid",
    )
)  # fmt: skip
nitpick_ignore_regex = [(r"py:.*", rf"({_STDLIB})\..+")]


# -- references to re-exported names, and names the build cannot link ---------------


_MISSING = object()
#: Values that are equal by identity for unrelated reasons (small ints, None, "").
_ANONYMOUS = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset)
#: id(environment) -> (how many objects were documented, :func:`_documented` of them).
_DOCUMENTED: dict[int, tuple[int, dict[int, str]]] = {}


def _import_dotted(path: str) -> Any:
    """The object at ``path`` (``pkg.mod.Class.attr``), or :data:`_MISSING`."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        except Exception:  # importing a name the docs mention must not break the build
            return _MISSING
        for attr in parts[cut:]:
            # Static lookup on classes: a property is found as itself, not run.
            obj = (
                inspect.getattr_static(obj, attr, _MISSING)
                if inspect.isclass(obj)
                else getattr(obj, attr, _MISSING)
            )
            if obj is _MISSING:
                return _MISSING
        return obj
    return _MISSING


def _candidates(node: pending_xref) -> Iterator[str]:
    """Where a reference written inside a docstring may point, most specific first.

    Relative to the class and module the docstring is documented under, and
    to the module that class really lives in (a signature names what that
    module imports, not what ``broker`` re-exports).
    """
    target = node["reftarget"].lstrip(".~")
    module, cls = node.get("py:module"), node.get("py:class")
    if module and cls:
        yield f"{module}.{cls}.{target}"
        owner = _import_dotted(f"{module}.{cls}")
        home = getattr(owner, "__module__", None)
        if isinstance(home, str):
            yield f"{home}.{cls}.{target}"
            yield f"{home}.{target}"
    if module:
        yield f"{module}.{target}"
    yield target


def _documented(env: BuildEnvironment) -> dict[int, str]:
    """Every documented Python object, by identity, with the name it is documented under.

    Built once all pages are read (references are resolved after that), and
    cached on the environment until the set of documented objects changes.
    """
    domain: Any = env.get_domain("py")
    objects: dict[str, Any] = domain.objects
    cached = _DOCUMENTED.get(id(env))
    if cached is not None and cached[0] == len(objects):
        return cached[1]
    by_identity: dict[int, str] = {}
    # Names a class is documented under come before its canonical aliases.
    for name in sorted(objects, key=lambda name: objects[name].aliased):
        obj = _import_dotted(name)
        if obj is not _MISSING and not isinstance(obj, _ANONYMOUS):
            by_identity.setdefault(id(obj), name)
    _DOCUMENTED[id(env)] = (len(objects), by_identity)
    return by_identity


def _is_type_variable_or_alias(obj: Any) -> bool:
    return isinstance(obj, typing.TypeVar) or typing.get_origin(obj) is not None


def resolve_python_reference(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.Node | None:
    """Resolve a Python reference Sphinx could not, by what the name is.

    * A name re-exported by a package (``broker.ConfigurationError``,
      ``pools.ConnectionPool``) or written relative to the docstring it
      appears in (``force_close_all`` in a pool's docstring) links to the
      place the same object is documented.
    * A class named bare in a signature (``Channel``) links to the one
      documented class of that name.
    * A type variable (``T``) or a type alias of a signature has no page:
      it is shown as plain text.

    Anything else stays unresolved, so ``-n`` reports it.
    """
    if node.get("refdomain") != "py":
        return None
    domain: Any = env.get_domain("py")
    for path in _candidates(node):
        obj = _import_dotted(path)
        if obj is _MISSING:
            continue
        if _is_type_variable_or_alias(obj):
            return contnode
        name = _documented(env).get(id(obj))
        if name is None:
            continue
        return domain.resolve_xref(
            env, node["refdoc"], app.builder, node["reftype"], name, node, contnode
        )
    # A class named without its module in a signature whose import is for type
    # checking only (``Channel``, ``Connection``): the one documented class of
    # that name. Lower-case names (attributes, functions) are too ambiguous.
    target = node["reftarget"].lstrip(".~")
    if target[:1].isupper():
        found = [
            (name, entry)
            for name, entry in domain.find_obj(
                env, node.get("py:module"), node.get("py:class"), target, node["reftype"], 1
            )
            if not entry.aliased  # a class re-exported by a package is listed twice
        ]
        if len(found) == 1:
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], found[0][0], node, contnode
            )
    return None


def keep_summary_prose(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Put back the words napoleon took from a summary line as a type.

    napoleon reads ``Words: rest`` at the top of a property's or constant's
    docstring as ``type: description``. Here types come from annotations and
    such a line is prose (``Hashable key: equal for equal URLs ...``), so the
    words go back in front of the description instead of becoming a type.
    """
    if what not in ("attribute", "property", "data"):
        return
    for index, line in enumerate(lines):
        if line.startswith(":type: "):
            words = line.removeprefix(":type: ")
            del lines[index]
            if index and not lines[index - 1].strip():
                del lines[index - 1]
            first = next((i for i, text in enumerate(lines) if text.strip()), None)
            if first is None:
                lines.append(words)
            else:
                lines[first] = f"{words}: {lines[first]}"
            return


def _twin_names() -> frozenset[str]:
    """Class names both the synchronous API and its asyncio sibling export."""
    import broker
    import broker.aio
    import broker.aio.pools
    import pools

    return frozenset(broker.aio.__all__) & frozenset(broker.__all__) | frozenset(
        broker.aio.pools.__all__
    ) & frozenset(pools.__all__)


#: ``Connection``, ``Producer``, ``ConnectionPool``...: two documented classes each.
_TWINS = _twin_names()


def qualify_bare_class_names(app: Sphinx, doctree: nodes.document) -> None:
    """Point a bare twin class name in a signature at its own side's class.

    ``Connection`` names two classes (:class:`broker.Connection` and
    :class:`broker.aio.Connection`), and a signature whose import is for type
    checking only says just ``Connection``. Such a name means the class of the
    asyncio sibling inside ``broker.aio``, and the synchronous one elsewhere.
    """
    for node in doctree.findall(pending_xref):
        target = node.get("reftarget", "")
        module = node.get("py:module")
        if node.get("refdomain") != "py" or target not in _TWINS or not module:
            continue
        aio = module == "broker.aio" or module.startswith("broker.aio.")
        for home in ("broker.aio", "broker.aio.pools") if aio else ("broker", "pools"):
            if _import_dotted(f"{home}.{target}") is not _MISSING:
                node["reftarget"] = f"{home}.{target}"
                break


def setup(app: Sphinx) -> None:
    app.connect("doctree-read", qualify_bare_class_names)
    app.connect("missing-reference", resolve_python_reference)
    # After napoleon (priority 500), which produced the ``:type:`` line.
    app.connect("autodoc-process-docstring", keep_summary_prose, priority=600)
