"""MSP-Podcast data preparation of the multimodal emotion recipe.

``train.py`` prepares the release itself, once per ``prepare_folder``: the
manifest (audio, transcript, the challenge's 8 classes, arousal, valence
and dominance on 1-7, speaker) and the release's official split (Train,
Development, Test1, with Test2 and Test3 beside). The code is
speechbrain-mtmm's
(:func:`speechbrain_mtmm.data.msp_podcast.prepare_msp_podcast`, also
``mtmm prepare msp-podcast --data_folder <release> --save_folder <dir>``),
kept beside ``train.py`` under SpeechBrain's ``<dataset>_prepare.py`` name.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from speechbrain_mtmm.data.msp_podcast import prepare_msp_podcast

__all__ = ["prepare_msp_podcast"]
