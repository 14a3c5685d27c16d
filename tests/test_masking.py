"""Random Modality Masking: schedule values, seeding, what masking does."""

import math

import pytest
import torch

from speechbrain_mtmm import (
    BridgeTokenFusion,
    RandomModalityMasking,
    masked_modality_features,
)


def test_probability_starts_at_p_start_and_follows_a_cosine():
    rmm = RandomModalityMasking(n_epochs=20)
    assert rmm.probability(1) == pytest.approx(0.8)
    expected = 0.8 * 0.5 * (1 + math.cos(math.pi * 9 / 19))
    assert rmm.probability(10) == pytest.approx(expected)
    values = [rmm.probability(e) for e in range(1, 21)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_probability_is_zero_once_below_the_floor():
    rmm = RandomModalityMasking(n_epochs=20)
    # 0.4 * (1 + cos(pi * 14 / 19)) = 0.129 stays; epoch 16 would be 0.084
    assert rmm.probability(15) == pytest.approx(0.129, abs=1e-3)
    assert [rmm.probability(e) for e in range(16, 21)] == [0.0] * 5
    assert rmm.probability(21) == 0.0 and rmm.probability(0) == 0.0


def test_decisions_are_reproducible_for_a_seed_and_independent_of_order():
    a = RandomModalityMasking(20, seed=7)
    b = RandomModalityMasking(20, seed=7)
    forward = [a.masked_modality(e) for e in range(1, 21)]
    backward = [b.masked_modality(e) for e in range(20, 0, -1)][::-1]
    assert forward == backward
    other = RandomModalityMasking(20, seed=8)
    seeds_differ = [
        [
            RandomModalityMasking(20, seed=s).masked_modality(e)
            for e in range(1, 9)
        ]
        for s in range(5)
    ]
    assert len({tuple(x) for x in seeds_differ}) > 1
    assert other.masked_modality(20) is None  # p = 0 at the last epoch


def test_masking_rates_match_the_paper_over_many_seeds():
    draws = [
        RandomModalityMasking(20, seed=s).masked_modality(1)
        for s in range(4000)
    ]
    fired = [d for d in draws if d is not None]
    assert len(fired) / len(draws) == pytest.approx(0.8, abs=0.03)
    assert fired.count("text") / len(fired) == pytest.approx(0.6, abs=0.03)
    assert set(fired) == {"text", "audio"}


def test_mask_replaces_a_modality_by_one_zero_frame():
    feats, lens = RandomModalityMasking(10).mask(torch.randn(3, 17, 8))
    assert feats.shape == (3, 1, 8) and feats.abs().sum() == 0
    assert lens.tolist() == [1.0, 1.0, 1.0]


def test_fusion_runs_on_a_masked_modality_without_nan():
    fusion = BridgeTokenFusion(8, num_tokens=3, nhead=2)
    text, text_lens = masked_modality_features(2, 8)
    out = fusion(
        torch.randn(2, 9, 8), torch.tensor([1.0, 0.4]), text, text_lens
    )
    assert torch.isfinite(out).all()


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError):
        RandomModalityMasking(0)
    with pytest.raises(ValueError):
        RandomModalityMasking(10, p_start=1.5)
