"""MMER (Ghosh et al., Interspeech 2023): its fusion block, its auxiliary
objectives and their rules for undefined cases, and its recipe preset."""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from speechbrain_mtmm.data.synthetic import generate_synthetic_iemocap
from speechbrain_mtmm.experiments.ablation import cell_overrides
from speechbrain_mtmm.nnet.auxiliary_heads import AuxiliaryHeads
from speechbrain_mtmm.nnet.mmer import MMERFusion
from speechbrain_mtmm.plain_yaml import read_plain_yaml
from speechbrain_mtmm.testing.recipes import recipe_command, run_recipe_command
from speechbrain_mtmm.training.auxiliary_losses import (
    AuxiliaryObjectives,
    AuxiliaryOptionsError,
    augmentation_contrastive_loss,
    character_encoder,
    character_targets,
    check_auxiliary_options,
    ctc_term,
    supervised_contrastive_loss,
)
from speechbrain_mtmm.training.hparams import format_override

LIGHT = ("fbank", "hashing")


def read_json(path):
    with open(path) as fin:
        return json.load(fin)


# --------------------------------------------------------------- the block


@pytest.fixture
def fusion():
    torch.manual_seed(0)
    return MMERFusion(d_model=4, nhead=2, d_ffn=8, dropout=0.0).eval()


def test_gate_and_pooling_equal_a_direct_computation(fusion):
    """``[max_t A ; W_m max_l [X_tt ; sigmoid(W_g [X_tt; X_ta] + b) X_ta]]``
    written out element by element, over the valid positions only."""
    audio, text = torch.randn(1, 5, 4), torch.randn(1, 3, 4)
    audio_lens, text_lens = torch.tensor([0.6]), torch.tensor([2 / 3])
    with torch.no_grad():
        out = fusion(audio, audio_lens, text, text_lens)
        # the attention layers, as the block chains them
        a_valid = torch.tensor([[True] * 3 + [False] * 2])
        t_valid = torch.tensor([[True, True, False]])
        t = fusion.text_self(text, text, text, t_valid)
        keys = fusion.audio_keys(audio)
        x_ta = fusion.text_to_audio(t, keys, keys, a_valid)
        x_at = fusion.audio_to_text(fusion.audio_queries(audio), t, t, t_valid)
        x_tt = fusion.text_to_fused(t, x_at, x_at, a_valid)
        w, b = fusion.gate.weight, fusion.gate.bias
        expected_m = torch.zeros(8)
        expected_m.fill_(-math.inf)
        for pos in range(2):  # valid tokens
            both = torch.cat([x_tt[0, pos], x_ta[0, pos]])
            gate = [
                1 / (1 + math.exp(-(float(w[k] @ both) + float(b[k]))))
                for k in range(4)
            ]
            row = torch.cat([x_tt[0, pos], torch.tensor(gate) * x_ta[0, pos]])
            expected_m = torch.maximum(expected_m, row)
        expected_a = audio[0, :3].max(dim=0).values
        expected = torch.cat([expected_a, fusion.fused_projection(expected_m)])
    torch.testing.assert_close(out[0], expected, atol=1e-5, rtol=1e-5)


def test_padding_never_changes_the_mmer_output(fusion):
    torch.manual_seed(1)
    audio, text = torch.randn(1, 7, 4), torch.randn(1, 3, 4)
    with torch.no_grad():
        alone = fusion(audio, torch.ones(1), text, torch.ones(1))
        padded_audio = torch.cat([audio, 9 * torch.randn(1, 5, 4)], dim=1)
        padded_text = torch.cat([text, 9 * torch.randn(1, 4, 4)], dim=1)
        padded = fusion(
            padded_audio,
            torch.tensor([7 / 12]),
            padded_text,
            torch.tensor([3 / 7]),
        )
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------- objectives


def test_supcon_equals_the_hand_formula_with_a_single_member_class():
    """Labels 0 0 1 1 2: the class-2 anchor has no positive and is left
    out; the others average -log p over their one positive."""
    z = torch.tensor(
        [[1.0, 0.2], [0.8, 0.5], [-0.3, 1.0], [0.1, 0.9], [-1.0, -0.4]]
    )
    labels = torch.tensor([0, 0, 1, 1, 2])
    tau = 0.5
    loss, skipped = supervised_contrastive_loss(z, labels, tau)
    unit = [row / math.hypot(*row.tolist()) for row in z]

    def sim(i, j):
        return float(unit[i] @ unit[j]) / tau

    terms = []
    for i in range(4):
        p = {0: 1, 1: 0, 2: 3, 3: 2}[i]
        denominator = sum(math.exp(sim(i, a)) for a in range(5) if a != i)
        terms.append(-math.log(math.exp(sim(i, p)) / denominator))
    assert skipped == 1
    assert loss.item() == pytest.approx(sum(terms) / 4, rel=1e-5)


def test_supcon_skips_a_batch_whose_labels_all_differ():
    loss, skipped = supervised_contrastive_loss(
        torch.randn(3, 4), torch.tensor([0, 1, 2])
    )
    assert loss is None and skipped == 3


def test_augcon_skips_a_batch_of_one():
    assert (
        augmentation_contrastive_loss(torch.randn(1, 4), torch.randn(1, 4))
        is None
    )


def test_ctc_targets_round_trip_through_the_character_encoder():
    encoder = character_encoder()
    ids = character_targets("Don't [LAUGHTER] stop, okay?", encoder)
    assert "".join(encoder.decode_ndim(ids.tolist())) == "DON'T|STOP|OKAY"
    assert encoder.get_blank_index() == 0 and 0 not in ids.tolist()


def test_ctc_skips_transcripts_without_characters_and_too_long_targets():
    encoder = character_encoder()
    targets = [
        character_targets("[LAUGHTER]", encoder),  # nothing left
        character_targets("ABCDEFGH", encoder),  # 8 characters, 5 frames
        character_targets("HI", encoder),  # fits
    ]
    log_probs = torch.randn(3, 5, 29).log_softmax(-1)
    loss, skipped = ctc_term(log_probs, torch.tensor([5, 5, 4]), targets)
    assert skipped == {"no_characters": 1, "too_short": 1}
    assert torch.isfinite(loss)
    alone, _ = ctc_term(log_probs[2:], torch.tensor([4]), targets[2:])
    assert loss.item() == pytest.approx(alone.item())


def test_masked_audio_leaves_no_head_parameter_unused():
    """An epoch whose audio is masked has no frames and no augmented copy:
    the CTC and AugCon heads still get a (zero) gradient."""
    heads = AuxiliaryHeads(8, 6, ctc=True, supcon=True, augcon=True)
    objectives = AuxiliaryObjectives(0.1, 0.1, 0.1)
    out = objectives(heads(torch.randn(4, 6)), torch.tensor([0, 0, 1, 1]))
    out["loss"].backward()
    assert all(p.grad is not None for p in heads.parameters())
    assert objectives.epoch_summary()["ctc_skipped"] == 4


def test_a_batch_where_no_term_is_defined_gives_zero_not_nan():
    heads = AuxiliaryHeads(8, 6, ctc=True, supcon=True, augcon=True)
    objectives = AuxiliaryObjectives(0.1, 0.1, 0.1)
    encoder = character_encoder()
    chars = character_targets("[NOISE]", encoder)[None]
    padded = (chars, torch.tensor([1.0]))
    projections = heads(
        torch.randn(1, 6), torch.randn(1, 4, 8), torch.randn(1, 6)
    )
    out = objectives(projections, torch.tensor([0]), torch.ones(1), padded)
    assert out["loss"].item() == 0.0 and set(out) == {"loss"}
    # every head still takes part (DDP refuses unused parameters)
    out["loss"].backward()
    assert all(p.grad is not None for p in heads.parameters())
    assert objectives.epoch_summary() == {
        "ctc_skipped": 1,
        "supcon_skipped": 1,
        "augcon_skipped": 1,
    }


def test_zero_auxiliary_weights_add_exactly_nothing():
    heads = AuxiliaryHeads(8, 6)
    objectives = AuxiliaryObjectives(0.0, 0.0, 0.0)
    out = objectives(heads(torch.randn(4, 6)), torch.tensor([0, 0, 1, 1]))
    assert not objectives.active() and out["loss"].item() == 0.0
    assert list(heads.parameters()) == []  # nothing trained, nothing saved


def test_augcon_with_the_feature_cache_is_refused_in_one_line():
    with pytest.raises(AuxiliaryOptionsError, match="feature_cache: False"):
        check_auxiliary_options(0.0, 0.1, True, ["audio", "text"])


# ----------------------------------------------------------------- recipe


@pytest.fixture(scope="module")
def session_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mmer_corpus")
    generate_synthetic_iemocap(folder, seed=3)
    return folder


def train_mmer(recipe, corpus, prepared, output, extra):
    command = recipe_command(
        recipe,
        corpus / "IEMOCAP_full_release",
        prepared,
        output,
        *LIGHT,
        {
            "number_of_epochs": 10,
            "protocol": "session",
            "d_model": 64,
            "n_heads": 4,
            "fusion_ffn": 128,
            "lr": 0.001,
            "text_freeze": "paper",
            **extra,
        },
    )
    command[2] = "hparams/mmer.yaml"
    return run_recipe_command(recipe, command)


@pytest.mark.slow
def test_mmer_multimodal_beats_each_single_modality(
    tmp_path, session_corpus, recipe
):
    """The preset (MMER's fusion, CTC + SupCon + AugCon, classes only) on
    a session fold of the synthetic corpus, whose classes need both
    modalities; its log has the auxiliary terms of every epoch."""
    wa = {}
    for name, modalities in (
        ("both", ["audio", "text"]),
        ("audio", ["audio"]),
        ("text", ["text"]),
    ):
        extra = {"modalities": modalities}
        if name == "text":  # CTC and AugCon need audio
            extra.update(w_ctc=0.0, w_aug=0.0)
        train_mmer(
            recipe,
            session_corpus,
            tmp_path / "prepared",
            tmp_path / name,
            extra,
        )
        wa[name] = read_json(tmp_path / name / "test_results.json")["WA"]
    log = (tmp_path / "both" / "train_log.txt").read_text()
    for term in ("ctc", "supcon", "augcon"):
        assert len(re.findall(rf"train {term}: [-\d.e+]+", log)) == 10, term
    assert wa["both"] >= 0.85, wa
    assert wa["both"] >= wa["audio"] + 0.1, wa
    assert wa["both"] >= wa["text"] + 0.1, wa


def test_the_ablation_row_takes_mmer_from_its_recipe_yaml(tmp_path):
    """MMER is described once: the table's row reads hparams/mmer.yaml."""
    hparams = (
        Path(__file__).resolve().parents[1]
        / "recipes/IEMOCAP/multimodal_emotion/hparams"
    )
    mmer = read_plain_yaml(hparams / "mmer.yaml", resolve=False)
    cell = cell_overrides("mmer", "classes", None, hparams / "iemocap.yaml")
    for key in ("audio_source", "text_source", "fusion_type", "d_model"):
        assert cell[key] == format_override(mmer[key])
    assert cell["w_ctc"] == "0.033"  # the table's weight, not the recipe's
    with pytest.raises(ValueError, match="mmer.yaml, which is missing"):
        cell_overrides("mmer", "classes", None, tmp_path / "iemocap.yaml")
