"""Utterances with a class but no rating, or ratings but no class
(MSP-Podcast's O and X, a CSV row left empty), any rating scale, and a
class-weighted cross-entropy: losses, metrics, pipelines and checks."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from speechbrain_mtmm import MultiTaskLoss, ccc
from speechbrain_mtmm.data.corpus import write_corpus_info
from speechbrain_mtmm.data.folds import FoldError
from speechbrain_mtmm.run_folder import prediction_row, to_rating, to_unit
from speechbrain_mtmm.system import PAPER_CONFIG, ModelConfigError, check_config
from speechbrain_mtmm.testing.recipes import load_recipe
from speechbrain_mtmm.training.hparams import corpus_overrides
from speechbrain_mtmm.training.losses import balanced_class_weights, masked_ccc
from speechbrain_mtmm.training.metrics import (
    CCCStats,
    EmotionClassificationStats,
)
from speechbrain_mtmm.training.splits import (
    NO_CLASS,
    DataError,
    check_ratings,
    check_split,
    prepare_corpus,
)

NAN = float("nan")


def test_cross_entropy_leaves_out_utterances_without_a_class():
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, NO_CLASS, 2, NO_CLASS, 1])
    dims = torch.rand(5, 2)
    parts = MultiTaskLoss(1.0, 0.0, 0.0)(logits, labels, dims, dims)
    kept = labels >= 0
    expected = F.cross_entropy(logits[kept], labels[kept])
    assert parts["ce"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_batch_without_any_class_gives_a_zero_cross_entropy_with_grad():
    logits = torch.randn(2, 3, requires_grad=True)
    labels = torch.full((2,), NO_CLASS)
    dims = torch.rand(2, 2)
    parts = MultiTaskLoss(0.5, 0.5, 0.0)(logits, labels, dims, dims)
    assert parts["ce"].item() == 0.0
    parts["loss"].backward()
    assert torch.isfinite(logits.grad).all()


def test_weighted_cross_entropy_is_the_weighted_mean_of_the_nll():
    torch.manual_seed(1)
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    loss = MultiTaskLoss(1.0, 0.0, 0.0)
    loss.class_weights = balanced_class_weights([3, 1, 2])
    parts = loss(logits, labels, torch.rand(6, 2), torch.rand(6, 2))
    # by hand: w_c = 6 / (3 n_c); sum_i w_yi nll_i / sum_i w_yi
    weight = {0: 6 / 9, 1: 6 / 3, 2: 6 / 6}
    nll = -torch.log_softmax(logits, -1)[range(6), labels]
    w = torch.tensor([weight[int(y)] for y in labels])
    expected = (w * nll).sum() / w.sum()
    assert parts["ce"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_balanced_weights_refuse_a_class_without_examples():
    with pytest.raises(ValueError, match="no example"):
        balanced_class_weights([3, 0])


def test_ccc_leaves_out_unrated_targets_per_dimension():
    torch.manual_seed(2)
    pred = torch.rand(8, 2)
    target = torch.rand(8, 2)
    target[[1, 4], 0] = NAN
    target[7, 1] = NAN
    values = masked_ccc(pred, target)
    rated0 = ~torch.isnan(target[:, 0])
    rated1 = ~torch.isnan(target[:, 1])
    assert values[0] == pytest.approx(
        ccc(pred[rated0, 0], target[rated0, 0]).item(), rel=1e-6
    )
    assert values[1] == pytest.approx(
        ccc(pred[rated1, 1], target[rated1, 1]).item(), rel=1e-6
    )


def test_the_ccc_loss_has_finite_gradients_with_unrated_targets():
    pred = torch.rand(4, 2, requires_grad=True)
    target = torch.tensor([[0.1, NAN], [0.5, 0.2], [NAN, 0.9], [0.7, 0.4]])
    parts = MultiTaskLoss(0.0, 0.5, 0.5)(
        torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), pred, target
    )
    parts["loss"].backward()
    assert torch.isfinite(pred.grad).all()
    assert torch.isfinite(parts["loss"])


def test_epoch_metrics_leave_out_what_an_utterance_lacks():
    classes = EmotionClassificationStats(["a", "b"])
    classes.append(["u1", "u2", "u3"], ["a", "b", "a"], ["a", None, "b"])
    assert classes.summarize()["n"] == 2
    assert classes.summarize()["WA"] == 0.5
    dims = CCCStats(["valence"])
    pred = torch.tensor([[0.1], [0.9], [0.5], [0.3]])
    dims.append(
        ["u1", "u2", "u3", "u4"],
        pred,
        torch.tensor([[0.1], [NAN], [0.5], [0.3]]),
    )
    assert dims.summarize()["CCC_valence"] == pytest.approx(1.0)


def test_ratings_map_to_0_1_and_back_on_any_scale():
    assert to_unit(4.0, (1, 7)) == 0.5
    assert to_rating(0.5, (1, 7)) == 4.0
    assert to_rating(to_unit(2.5, (0, 10)), (0, 10)) == pytest.approx(2.5)


def test_a_prediction_row_writes_an_unrated_dimension_as_none():
    row = prediction_row(
        "u", None, "a", {"a": 1.0}, [NAN, 0.5], [0.5, 0.5], scale=(1, 7)
    )
    assert row["valence"] is None
    assert row["pred_valence"] == 4.0
    assert row["arousal"] == 4.0
    assert row["emo"] is None


class TinySystem(SimpleNamespace):
    """What the recipe's data pipelines read of a model."""


RECIPE = load_recipe(
    Path(__file__).resolve().parents[1]
    / "recipes"
    / "IEMOCAP"
    / "multimodal_emotion"
)


def pipeline_hparams(tmp_path, test_entries, **extra):
    """A one-fold prepared folder (two classes, 1-7 ratings) and what the
    recipe's ``dataio_prepare`` reads of the hyperparameters."""
    rated = {"valence": 4.0, "arousal": 4.0, "dominance": 4.0}
    train = {
        f"t{i}": {
            "emo": emo,
            "text": "Hi.",
            "duration": 1.0,
            "wav": "x.wav",
            **rated,
        }
        for i, emo in enumerate(["ang", "sad"])
    }
    fold = tmp_path / "folds" / "speaker" / "fold_1"
    fold.mkdir(parents=True)
    for split, entries in (
        ("train", train),
        ("valid", train),
        ("test", test_entries),
    ):
        (fold / f"{split}.json").write_text(json.dumps(entries))
    tokenizer = SimpleNamespace(tokenize=lambda text: torch.tensor([len(text)]))
    return {
        "system": TinySystem(text_encoder=tokenizer),
        "labels": ["ang", "sad"],
        "n_dims": 3,
        "rating_scale": [1.0, 7.0],
        "sample_rate": 16000,
        "max_audio_seconds": 10.0,
        "w_ce": 1.0,
        "w_ctc": 0.0,
        "missing_transcripts": "error",
        "prepare_folder": str(tmp_path),
        "protocol": "speaker",
        "fold": 1,
        **extra,
    }


def test_pipelines_give_no_class_and_nan_for_what_is_missing(tmp_path):
    entry = {
        "wav": "x.wav",
        "emo": None,
        "text": "Oh.",
        "duration": 1.0,
        "valence": 4.0,
        "arousal": None,
        "dominance": 7.0,
    }
    classed = {**entry, "emo": "ang", "arousal": 4.0}
    hparams = pipeline_hparams(tmp_path, {"u1": entry, "u2": classed})
    test = RECIPE.dataio_prepare(hparams)["test"]
    test.set_output_keys(["label", "dims"])
    assert test[0]["label"].tolist() == [NO_CLASS]
    dims = test[0]["dims"].tolist()
    assert dims[0] == 0.5 and math.isnan(dims[1]) and dims[2] == 1.0


def test_a_missing_transcript_reads_as_empty_when_asked_to(tmp_path):
    entry = {
        "wav": "x.wav",
        "emo": "ang",
        "text": None,
        "duration": 1.0,
        "valence": 4.0,
        "arousal": 4.0,
        "dominance": 4.0,
    }
    strict = pipeline_hparams(tmp_path / "a", {"u1": entry})
    with pytest.raises(DataError, match="u1 has no transcript"):
        RECIPE.dataio_prepare(strict)
    lenient = pipeline_hparams(
        tmp_path / "b", {"u1": entry}, missing_transcripts="empty"
    )
    test = RECIPE.dataio_prepare(lenient)["test"]
    test.set_output_keys(["tokens"])
    assert test[0]["tokens"].tolist() == [0]


def prepared_folder(tmp_path, dimensions=("valence", "arousal")):
    write_corpus_info(
        tmp_path,
        corpus="csv",
        manifest="manifest.json",
        labels=["a", "b"],
        dimensions=list(dimensions),
        rating_scale=[1.0, 5.0],
        protocols={"speaker": 3},
        source="c.csv",
    )
    return {
        "data_folder": str(tmp_path),
        "prepare_folder": str(tmp_path),
        "protocol": "speaker",
        "fold": 1,
        "rating_scale": [1.0, 5.0],
        "n_dims": 3,
        "w_valence": 0.3,
        "w_arousal": 0.3,
        "w_dominance": 0.3,
    }


def prepare(hparams):
    """The recipe's preparation call on a prepared folder (nothing to
    prepare)."""
    return prepare_corpus(
        None,
        hparams["data_folder"],
        hparams["prepare_folder"],
        hparams["protocol"],
        hparams["fold"],
    )


def ratings_checked(hparams):
    """The recipe's check that the corpus rates what the model learns."""
    weights = {d: hparams[f"w_{d}"] for d in ("valence", "arousal")}
    weights["dominance"] = hparams["w_dominance"]
    info = prepare(hparams)
    check_ratings(
        info,
        hparams["prepare_folder"],
        hparams["rating_scale"],
        weights,
        hparams["n_dims"],
    )
    return info


def test_a_trained_dimension_the_corpus_never_rates_is_refused(tmp_path):
    hparams = prepared_folder(tmp_path)
    with pytest.raises(DataError, match="no utterance is rated for dominance"):
        ratings_checked(hparams)
    hparams["w_dominance"] = 0.0
    assert ratings_checked(hparams)["corpus"] == "csv"


def test_a_rating_scale_other_than_the_corpus_one_is_refused(tmp_path):
    hparams = {**prepared_folder(tmp_path), "w_dominance": 0.0}
    hparams["rating_scale"] = [1.0, 7.0]
    with pytest.raises(DataError, match="rated on 1-5"):
        ratings_checked(hparams)


def test_a_fold_the_prepared_corpus_lacks_is_refused(tmp_path):
    hparams = {**prepared_folder(tmp_path), "fold": 4}
    with pytest.raises(FoldError, match="speaker protocol has folds 1-3"):
        prepare(hparams)


def test_overrides_given_on_the_command_line_win_over_the_corpus(tmp_path):
    prepared_folder(tmp_path)
    yaml = tmp_path / "r.yaml"
    yaml.write_text(
        "data_folder: !PLACEHOLDER\nlabels: [x]\nprotocol: speaker\n"
        "prepare_folder: p\nrating_scale: [1, 5]\n"
    )
    given = f"data_folder: {tmp_path}\nlabels: [b, a]\n"
    out = corpus_overrides(yaml, given)
    assert "labels: [b, a]" in out
    assert '"a", "b"' not in out
    assert f'prepare_folder: "{tmp_path}"' in out


def test_an_explicit_prepare_folder_beside_a_prepared_corpus_is_refused(
    tmp_path,
):
    hparams = {**prepared_folder(tmp_path), "w_dominance": 0.0}
    hparams["prepare_folder"] = str(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="leave prepare_folder out"):
        prepare(hparams)


def split_of(entries):
    """Entries as :func:`split_entries` gives them (gold transcripts)."""
    for entry in entries.values():
        entry.setdefault("duration", 1.0)
        entry["gold_text"] = entry["text"]
        entry["text_source"] = "gold"
    return entries


def test_a_test_split_without_any_class_is_refused_when_classes_train():
    data = split_of({"u1": {"emo": None, "text": "Hi."}})
    with pytest.raises(DataError, match="t.json: no utterance has a class"):
        check_split(data, "test", "t.json", ["a"], classes_trained=True)
    check_split(data, "test", "t.json", ["a"], classes_trained=False)


def test_a_missing_transcript_is_named_before_training_starts():
    data = split_of({"u1": {"emo": "a", "text": None}})
    with pytest.raises(DataError, match="t.json: u1 has no transcript"):
        check_split(data, "test", "t.json", ["a"])
    check_split(data, "test", "t.json", ["a"], missing_transcripts="empty")


@pytest.mark.parametrize("scale", [[5, 1], [1], "1-5", [1, 1]])
def test_a_rating_scale_that_is_not_low_high_is_refused(scale):
    with pytest.raises(ModelConfigError, match="rating_scale must be"):
        check_config({**PAPER_CONFIG, "rating_scale": scale})


def test_a_prediction_row_holds_only_what_the_model_was_trained_for():
    row = prediction_row(
        "u1", "ang", None, {}, [0.5], [0.25], names=["arousal"]
    )
    assert row == {
        "id": "u1",
        "emo": "ang",
        "arousal": 3.0,
        "pred_arousal": 2.0,
    }
