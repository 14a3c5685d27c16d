"""Public names of a package resolved on first use (PEP 562), so that
importing the package, or ``speechbrain_mtmm.cli`` under it, loads no
torch: ``mtmm --help`` is instant.

A package writes its public names once, as imports under ``if
TYPE_CHECKING:`` in its ``__init__`` (what type checkers, editors and
the API reference read; nothing runs them), and gets its ``__getattr__``
and ``__dir__`` from :func:`lazy_exports`, which reads those imports, as
``lazy_loader.attach_stub`` reads a stub file. Our own, not SpeechBrain's
``lazy_export_all`` (importing SpeechBrain imports torch, which is what
this avoids) nor ``lazy_loader`` (not a dependency, for 50 lines).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import ast
import importlib
import importlib.util


def exports_of(source):
    """Public name -> its module, from the ``if TYPE_CHECKING:`` imports
    of a package's ``__init__.py``.

    Arguments
    ---------
    source : str
        The text of the package's ``__init__.py``.

    Returns
    -------
    dict

    Example
    -------
    >>> init = getfixture("tmp_path") / "__init__.py"
    >>> _ = init.write_text(
    ...     "from typing import TYPE_CHECKING\\n"
    ...     "if TYPE_CHECKING:\\n"
    ...     "    from json.decoder import JSONDecoder as Decoder\\n"
    ... )
    >>> exports_of(init.read_text())
    {'Decoder': ('json.decoder', 'JSONDecoder')}
    """
    tree = ast.parse(source)
    exports = {}
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    for alias in statement.names:
                        name = alias.asname or alias.name
                        exports[name] = (statement.module, alias.name)
    return exports


def lazy_exports(package):
    """The ``__getattr__`` and ``__dir__`` of a package whose public names
    (:func:`exports_of` its ``__init__``) are imported from their modules
    on first use.

    A name of no export that is a submodule of the package is imported
    as well, as an eager ``__init__`` that imported it would have made it
    an attribute.

    Arguments
    ---------
    package : str
        The package's ``__name__``.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)``, to assign in the package's
        ``__init__``.

    Example
    -------
    >>> import speechbrain_mtmm
    >>> get, names = lazy_exports("speechbrain_mtmm")
    >>> "ccc" in names()
    True
    >>> get("ccc").__module__
    'speechbrain_mtmm.training.losses'
    >>> get("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'speechbrain_mtmm' has no attribute 'nope'
    """
    module = importlib.import_module(package)
    # from the package's loader, not its file: an export's
    # custom_interface.py serves the package from embedded sources
    exports = exports_of(module.__spec__.loader.get_source(package))

    def __getattr__(name):
        """The export ``name`` (or submodule), imported now and kept."""
        if name in exports:
            where, original = exports[name]
            value = getattr(importlib.import_module(where), original)
        elif not name.startswith("__") and importlib.util.find_spec(
            f"{package}.{name}"
        ):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(
                f"module {package!r} has no attribute {name!r}"
            )
        setattr(module, name, value)
        return value

    def __dir__():
        """The module's names and its exports."""
        return sorted(set(vars(module)) | set(exports))

    return __getattr__, __dir__
