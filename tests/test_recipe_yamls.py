"""The recipe YAMLs differ from the paper's only where their systems do.

SpeechBrain's recipes keep each hparams file whole (its consistency checks
read every file as written, and HyperPyYAML has no top-level merge), so
``mmer.yaml`` and ``msp_podcast.yaml`` repeat what they share with
``iemocap.yaml``. That shared part is kept identical here: every top-level
entry (its value and everything below it, comments aside) is the same in
all three, except the entries each file's system chooses, listed below.
A default changed in one file, or a key added to one, fails until the
others follow or it is listed as that system's choice.
"""

import re
from pathlib import Path

import pytest

HPARAMS = Path(__file__).resolve().parents[1] / "recipes"
PAPER = HPARAMS / "IEMOCAP" / "multimodal_emotion" / "hparams" / "iemocap.yaml"
#: Each recipe YAML's own choices beside the paper's
OWN_CHOICES = {
    "IEMOCAP/multimodal_emotion/hparams/mmer.yaml": {
        # MMER's encoders, architecture and objectives
        "audio_source",
        "text_source",
        "text_freeze",
        "d_model",
        "n_heads",
        "refinement",
        "fusion_type",
        "fusion_ffn",
        "modality_masking",
        "max_audio_seconds",
        "w_ce",
        "w_valence",
        "w_arousal",
        "w_ctc",
        "w_supcon",
        "w_aug",
        # its training schedule and optimizer (AdamW)
        "number_of_epochs",
        "batch_size",
        "lr",
        "opt_class",
        "experiment",
    },
    "MSP-Podcast/multimodal_emotion/hparams/msp_podcast.yaml": {
        # the corpus: classes, ratings, split, transcripts, crop
        "prepare_folder",
        "label_map",
        "labels",
        "protocol",
        "missing_transcripts",
        "max_audio_seconds",
        "n_dims",
        "rating_scale",
        # the challenge's objectives and selection
        "w_ce",
        "w_valence",
        "w_arousal",
        "w_dominance",
        "class_weights",
        "selection_metrics",
        "experiment",
    },
}


def entries(path):
    """Top-level key -> its lines (comments and blank lines left out)."""
    found, key = {}, None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        code = re.sub(r"\s+#.*$", "", line)
        if not line[0].isspace():
            key = code.split(":")[0]
            found[key] = []
        found[key].append(code)
    return found


@pytest.mark.parametrize("name", sorted(OWN_CHOICES))
def test_a_recipe_yaml_differs_from_the_papers_only_in_its_choices(name):
    paper, other = entries(PAPER), entries(HPARAMS / name)
    differ = {
        key
        for key in set(paper) | set(other)
        if paper.get(key) != other.get(key)
    }
    assert differ == OWN_CHOICES[name]


def test_a_changed_shared_default_is_found(tmp_path):
    changed = tmp_path / "x.yaml"
    changed.write_text(
        PAPER.read_text().replace("dropout: 0.1\n", "dropout: 0.2\n", 1)
    )
    paper, other = entries(PAPER), entries(changed)
    assert [k for k in paper if paper[k] != other.get(k)] == ["dropout"]
