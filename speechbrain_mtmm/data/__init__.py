"""Data: audio loading, IEMOCAP and MSP-Podcast preparation,
speaker-independent folds, the synthetic corpora. The data code never
imports the model code (``speechbrain_mtmm.nnet``, ``encoders``,
``model``).

Its public names resolve on first use (:mod:`speechbrain_mtmm.lazy`), so
that :mod:`.catalog` is read without the preparations' imports."""

from speechbrain_mtmm.lazy import lazy_exports

_EXPORTS = {
    "AudioFileError": "speechbrain_mtmm.data.audio",
    "load_audio": "speechbrain_mtmm.data.audio",
    "FoldError": "speechbrain_mtmm.data.folds",
    "fold_paths": "speechbrain_mtmm.data.folds",
    "make_folds": "speechbrain_mtmm.data.folds",
    "read_folds": "speechbrain_mtmm.data.folds",
    "write_folds": "speechbrain_mtmm.data.folds",
    "LABEL_MAPS": "speechbrain_mtmm.data.catalog",
    "IEMOCAPError": "speechbrain_mtmm.data.iemocap",
    "IEMOCAPFormatError": "speechbrain_mtmm.data.iemocap",
    "IEMOCAPMissingFilesError": "speechbrain_mtmm.data.iemocap",
    "label_classes": "speechbrain_mtmm.data.iemocap",
    "prepare_iemocap": "speechbrain_mtmm.data.iemocap",
    "resolve_label_map": "speechbrain_mtmm.data.iemocap",
    "speaker_of": "speechbrain_mtmm.data.iemocap",
    "generate_synthetic_iemocap": "speechbrain_mtmm.data.synthetic",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
