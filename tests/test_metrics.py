"""Epoch-level metric trackers against hand calculations."""

import io

import numpy as np
import pytest
import torch

from speechbrain_mtmm import CCCStats, EmotionClassificationStats, ccc
from speechbrain_mtmm.training.metrics import epoch_scores, summarize_test

LABELS = ["neu", "hap", "sad", "ang"]


def test_emotion_stats_match_a_hand_computed_confusion_matrix():
    targets = ["neu"] * 4 + ["hap"] * 3 + ["sad"] * 2 + ["ang"] * 1
    preds = (
        ["neu", "neu", "neu", "hap"]
        + ["hap", "hap", "ang"]
        + ["sad", "neu"]
        + ["ang"]
    )
    stats = EmotionClassificationStats(LABELS)
    stats.append([f"u{i}" for i in range(10)], preds, targets)
    s = stats.summarize()
    assert s["confusion"] == [
        [3, 1, 0, 0],
        [0, 2, 0, 1],
        [1, 0, 1, 0],
        [0, 0, 0, 1],
    ]
    assert s["WA"] == pytest.approx(7 / 10)
    recalls = [3 / 4, 2 / 3, 1 / 2, 1 / 1]
    assert s["UA"] == pytest.approx(np.mean(recalls))
    assert s["recall"] == pytest.approx(dict(zip(LABELS, recalls)))
    precisions = [3 / 4, 2 / 3, 1 / 1, 1 / 2]
    f1 = [2 * p * r / (p + r) for p, r in zip(precisions, recalls)]
    assert s["macro_F1"] == pytest.approx(np.mean(f1))
    assert s["n"] == 10 and s["labels"] == LABELS


def test_ua_differs_from_wa_on_imbalanced_classes():
    stats = EmotionClassificationStats(["neu", "hap"])
    stats.append(list("abcde"), ["neu"] * 5, ["neu"] * 4 + ["hap"])
    assert stats.summarize("WA") == pytest.approx(0.8)
    assert stats.summarize("UA") == pytest.approx(0.5)
    assert stats.summarize("macro_F1") == pytest.approx((8 / 9 + 0) / 2)


def test_classes_absent_from_targets_do_not_count_in_ua():
    stats = EmotionClassificationStats(LABELS)
    stats.append(["a", "b"], ["neu", "sad"], ["neu", "neu"])
    assert stats.summarize("UA") == pytest.approx(0.5)
    assert set(stats.summarize("recall")) == {"neu"}


def test_unknown_label_is_rejected():
    stats = EmotionClassificationStats(LABELS)
    with pytest.raises(ValueError, match="fru"):
        stats.append(["a"], ["fru"], ["neu"])


def test_emotion_stats_write_a_readable_table():
    stats = EmotionClassificationStats(["neu", "hap"])
    stats.append(["a", "b"], ["neu", "hap"], ["neu", "neu"])
    out = io.StringIO()
    stats.write_stats(out)
    assert "WA: 0.5000" in out.getvalue()
    assert "confusion" in out.getvalue()


def test_ccc_stats_are_computed_over_the_epoch_not_averaged_per_batch():
    rng = np.random.default_rng(0)
    target = rng.uniform(size=(12, 2))
    pred = target + rng.normal(0, 0.2, size=(12, 2))
    pred[:6] += 0.3  # a per-batch offset that per-batch CCC partly ignores
    stats = CCCStats()
    per_batch = []
    for start in (0, 6):
        p = torch.tensor(pred[start : start + 6])
        t = torch.tensor(target[start : start + 6])
        stats.append([str(i) for i in range(start, start + 6)], p, t)
        per_batch.append(ccc(p, t))
    summary = stats.summarize()
    whole = ccc(torch.tensor(pred), torch.tensor(target))
    assert summary["CCC_valence"] == pytest.approx(whole[0].item(), abs=1e-6)
    assert summary["CCC_arousal"] == pytest.approx(whole[1].item(), abs=1e-6)
    assert summary["CCC_mean"] == pytest.approx(whole.mean().item(), abs=1e-6)
    batch_mean = torch.stack(per_batch).mean(0)
    assert abs(batch_mean[0].item() - summary["CCC_valence"]) > 1e-3


def test_ccc_stats_single_item_gives_a_number():
    stats = CCCStats()
    stats.append(["a"], torch.tensor([[0.5, 0.5]]), torch.tensor([[0.2, 0.9]]))
    assert stats.summarize("CCC_mean") == 0.0


def test_ccc_stats_with_dominance_and_shape_check():
    stats = CCCStats(["valence", "arousal", "dominance"])
    with pytest.raises(ValueError, match="expected"):
        stats.append(["a"], torch.zeros(1, 2), torch.zeros(1, 2))
    stats.append(["a", "b"], torch.rand(2, 3), torch.rand(2, 3))
    assert "CCC_dominance" in stats.summarize()
    out = io.StringIO()
    stats.write_stats(out)
    assert out.getvalue().count("\n") == 4


def test_ccc_stats_without_trained_dimensions_report_nothing():
    stats = CCCStats([])
    assert stats.summarize() == {}


def test_epoch_scores_without_trained_classes_have_only_ccc():
    dims = CCCStats(["arousal"])
    dims.append(
        ["u1", "u2"], torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [1.0]])
    )
    scores = epoch_scores(None, dims, ["CCC_arousal"])
    assert sorted(scores) == ["CCC_arousal", "CCC_mean", "score"]
    assert summarize_test(None, scores) == {
        "CCC_arousal": pytest.approx(1.0),
        "CCC_mean": pytest.approx(1.0),
    }
