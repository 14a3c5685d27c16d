"""IEMOCAP data preparation of the multimodal emotion recipe.

``train.py`` prepares the data itself, once per ``prepare_folder``: the
manifest (audio, transcript, class, valence/arousal/dominance, speaker,
session) and the speaker-independent folds of both protocols (10 speaker
folds, 5 session folds). The code is speechbrain-mtmm's
(:func:`speechbrain_mtmm.data.iemocap.prepare_iemocap`, also
``mtmm prepare --data_folder <IEMOCAP_full_release> --save_folder <dir>``),
kept beside ``train.py`` under SpeechBrain's ``<dataset>_prepare.py`` name.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from speechbrain_mtmm.data.iemocap import prepare_iemocap

__all__ = ["prepare_iemocap"]
