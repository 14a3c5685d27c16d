"""Data: IEMOCAP preparation, speaker-independent folds, synthetic corpus.

The names below are loaded on first use, so that
``python -m speechbrain_mtmm.data.<module>`` runs its module only once. The
data code never imports the model code (``speechbrain_mtmm.nnet``).
"""

import importlib

_EXPORTS = {
    "audio": ("AudioFileError", "load_audio"),
    "folds": (
        "FoldError",
        "fold_paths",
        "make_folds",
        "read_folds",
        "write_folds",
    ),
    "iemocap": (
        "LABEL_MAPS",
        "IEMOCAPError",
        "IEMOCAPFormatError",
        "IEMOCAPMissingFilesError",
        "label_classes",
        "prepare_iemocap",
        "resolve_label_map",
        "speaker_of",
    ),
    "synthetic": ("generate_synthetic_iemocap",),
}
_MODULE_OF = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    """Imports ``name`` from its submodule on first access (PEP 562)."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_MODULE_OF[name]}")
    return getattr(module, name)


def __dir__():
    return sorted(set(globals()) | set(__all__))
