"""Data: audio loading, IEMOCAP and MSP-Podcast preparation,
speaker-independent folds, the synthetic corpora. The data code never
imports the model code (``speechbrain_mtmm.nnet``, ``encoders``,
``model``)."""

from speechbrain_mtmm.data.audio import AudioFileError, load_audio
from speechbrain_mtmm.data.folds import (
    FoldError,
    fold_paths,
    make_folds,
    read_folds,
    write_folds,
)
from speechbrain_mtmm.data.iemocap import (
    LABEL_MAPS,
    IEMOCAPError,
    IEMOCAPFormatError,
    IEMOCAPMissingFilesError,
    label_classes,
    prepare_iemocap,
    resolve_label_map,
    speaker_of,
)
from speechbrain_mtmm.data.synthetic import generate_synthetic_iemocap

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
