"""Public names of a package resolved on first use (PEP 562), so that
importing the package, or ``speechbrain_mtmm.cli`` under it, loads no
torch: ``mtmm --help`` is instant.

Our own, not SpeechBrain's ``lazy_export_all``: importing SpeechBrain
imports torch, which is what this avoids.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import importlib
import importlib.util


def lazy_exports(package, exports):
    """The ``__getattr__`` and ``__dir__`` of a package whose public names
    are imported from their modules on first use.

    A name of no export that is a submodule of the package is imported
    as well, as an eager ``__init__`` that imported it would have made it
    an attribute.

    Arguments
    ---------
    package : str
        The package's ``__name__``.
    exports : dict
        Public name -> the module that defines it.

    Returns
    -------
    tuple
        ``(__getattr__, __dir__)``, to assign in the package's
        ``__init__``.

    Example
    -------
    >>> get, names = lazy_exports("json", {"loads_": "json.decoder"})
    >>> "loads_" in names()
    True
    >>> get("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'json' has no attribute 'nope'
    """
    module = importlib.import_module(package)

    def __getattr__(name):
        """The export ``name`` (or submodule), imported now and kept."""
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
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
