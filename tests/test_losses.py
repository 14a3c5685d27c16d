"""CCC and the multi-task loss against independent references."""

import numpy as np
import pytest
import torch

from speechbrain_mtmm import MultiTaskLoss, ccc


def ccc_via_pearson(x, y):
    """Lin's CCC written from Pearson's r and population moments (numpy)."""
    r = np.corrcoef(x, y)[0, 1]
    sx, sy = np.std(x), np.std(y)
    return 2 * r * sx * sy / (sx**2 + sy**2 + (x.mean() - y.mean()) ** 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ccc_matches_pearson_formula_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y = rng.uniform(0, 1, 50)
    x = 0.6 * y + rng.normal(0.1, 0.2, 50)
    got = ccc(torch.tensor(x), torch.tensor(y)).item()
    assert got == pytest.approx(ccc_via_pearson(x, y), abs=1e-6)


def test_ccc_uses_population_moments_not_sample_moments():
    x = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    y = torch.tensor([2.0, 2.0, 3.0], dtype=torch.float64)
    cov = ((x - x.mean()) * (y - y.mean())).sum()
    population = (
        2
        * cov
        / 3
        / (
            x.var(unbiased=False)
            + y.var(unbiased=False)
            + (x.mean() - y.mean()) ** 2
        )
    )
    sample = 2 * cov / 2 / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    assert ccc(x, y).item() == pytest.approx(population.item(), abs=1e-6)
    assert ccc(x, y).item() != pytest.approx(sample.item(), abs=1e-3)


def test_ccc_per_column_for_2d_input():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(size=(40, 2)), rng.uniform(size=(40, 2))
    got = ccc(torch.tensor(x), torch.tensor(y))
    expected = [ccc_via_pearson(x[:, i], y[:, i]) for i in range(2)]
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "x, y",
    [
        ([0.5, 0.5, 0.5], [0.1, 0.5, 0.9]),  # constant predictions
        ([0.3], [0.7]),  # a single item
        ([0.4, 0.4], [0.4, 0.4]),  # both constant and equal
    ],
)
def test_ccc_is_defined_on_degenerate_input(x, y):
    value = ccc(torch.tensor(x), torch.tensor(y))
    assert torch.isfinite(value)
    assert value.item() == 0.0


def test_ccc_gradient_is_finite_and_increases_agreement():
    target = torch.tensor([0.1, 0.4, 0.8, 0.9])
    pred = torch.tensor([0.5, 0.5, 0.5, 0.6], requires_grad=True)
    (1 - ccc(pred, target)).backward()
    assert torch.isfinite(pred.grad).all()
    stepped = pred.detach() - 0.5 * pred.grad
    assert ccc(stepped, target) > ccc(pred.detach(), target)


def test_ccc_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        ccc(torch.zeros(3), torch.zeros(4))


def test_multitask_loss_is_the_weighted_sum_of_its_parts():
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 4), torch.randint(0, 4, (8,))
    pred, target = torch.rand(8, 2), torch.rand(8, 2)
    out = MultiTaskLoss(0.5, 0.3, 0.2)(logits, labels, pred, target)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    expected = (
        0.5 * ce
        + 0.3 * (1 - ccc(pred[:, 0], target[:, 0]))
        + 0.2 * (1 - ccc(pred[:, 1], target[:, 1]))
    )
    assert out["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert out["ce"].item() == pytest.approx(ce.item(), abs=1e-6)


def test_zero_weight_gives_single_task_loss():
    torch.manual_seed(1)
    logits, labels = torch.randn(8, 4), torch.randint(0, 4, (8,))
    pred, target = torch.rand(8, 2), torch.rand(8, 2)
    classes_only = MultiTaskLoss(1.0, 0.0, 0.0)(logits, labels, pred, target)
    ce = torch.nn.functional.cross_entropy(logits, labels)
    assert classes_only["loss"].item() == pytest.approx(ce.item(), abs=1e-6)
    dims_only = MultiTaskLoss(0.0, 1.0, 1.0)(logits, labels, pred, target)
    assert dims_only["loss"].item() == pytest.approx(
        (2 - ccc(pred, target).sum()).item(), abs=1e-6
    )


def test_dominance_weight_needs_a_third_output():
    loss = MultiTaskLoss(0.33, 0.33, 0.33, w_dominance=0.1)
    with pytest.raises(ValueError, match="3 regression outputs"):
        loss(
            torch.randn(4, 4),
            torch.zeros(4).long(),
            torch.rand(4, 2),
            torch.rand(4, 2),
        )
    out = loss(
        torch.randn(4, 4),
        torch.zeros(4).long(),
        torch.rand(4, 3),
        torch.rand(4, 3),
    )
    assert "ccc_dominance" in out


def test_all_zero_weights_are_rejected():
    with pytest.raises(ValueError):
        MultiTaskLoss(0, 0, 0)
