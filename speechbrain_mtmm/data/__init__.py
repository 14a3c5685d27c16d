"""Data: audio loading, IEMOCAP and MSP-Podcast preparation,
speaker-independent folds, the synthetic corpora. The data code never
imports the model code (``speechbrain_mtmm.nnet``, ``encoders``,
``model``).

Its public names resolve on first use (:mod:`speechbrain_mtmm.lazy`), so
that :mod:`.catalog` is read without the preparations' imports."""

from typing import TYPE_CHECKING

from speechbrain_mtmm.lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (PEP 562)
    from speechbrain_mtmm.data.audio import AudioFileError, load_audio
    from speechbrain_mtmm.data.catalog import LABEL_MAPS
    from speechbrain_mtmm.data.folds import (
        FoldError,
        fold_paths,
        make_folds,
        read_folds,
        write_folds,
    )
    from speechbrain_mtmm.data.iemocap import (
        IEMOCAPError,
        IEMOCAPFormatError,
        IEMOCAPMissingFilesError,
        label_classes,
        prepare_iemocap,
        resolve_label_map,
        speaker_of,
    )
    from speechbrain_mtmm.data.synthetic import generate_synthetic_iemocap

__getattr__, __dir__ = lazy_exports(__name__)

__all__ = [
    "LABEL_MAPS",
    "AudioFileError",
    "FoldError",
    "IEMOCAPError",
    "IEMOCAPFormatError",
    "IEMOCAPMissingFilesError",
    "fold_paths",
    "generate_synthetic_iemocap",
    "label_classes",
    "load_audio",
    "make_folds",
    "prepare_iemocap",
    "read_folds",
    "resolve_label_map",
    "speaker_of",
    "write_folds",
]
