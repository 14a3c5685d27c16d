"""Epoch-level metric trackers in SpeechBrain's ``MetricStats`` style.

``CCCStats`` is our own (SpeechBrain has no CCC tracker): it keeps every
prediction of the epoch and computes CCC once over all of them, never as an
average of per-batch values. ``EmotionClassificationStats`` extends
SpeechBrain's ``ClassificationStats`` with the numbers emotion papers report:
WA (accuracy), UA (mean per-class recall) and macro-F1 over a fixed label
order.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch
from speechbrain.utils.logger import get_logger
from speechbrain.utils.metric_stats import ClassificationStats, MetricStats

from speechbrain_mtmm.run_folder import (
    DIMENSIONS,
    classes_trained,
    trained_dimensions,
)
from speechbrain_mtmm.training.losses import masked_ccc

logger = get_logger(__name__)

CLASS_METRICS = ("WA", "UA", "macro_F1")


#: Every test metric, named once: key (in results files) -> ``(column,
#: title, hub type, hub arguments)``: the short column of report tables,
#: the title of model cards, and the metric of a hub ``model-index``
TEST_METRICS = {
    "WA": ("WAR", "WA (accuracy)", "accuracy", None),
    "UA": (
        "UAR",
        "UA (unweighted mean recall)",
        "recall",
        {"average": "macro"},
    ),
    "macro_F1": ("macro-F1", "macro-F1", "f1", {"average": "macro"}),
    **{
        f"CCC_{d}": (f"CCC-{d[0].upper()}", f"CCC {d}", "ccc", None)
        for d in DIMENSIONS
    },
}


def metric_columns(keys):
    """``(key, column)`` of some test metrics, for a report table.

    Arguments
    ---------
    keys : sequence of str
        Keys of :data:`TEST_METRICS`.

    Returns
    -------
    tuple of tuple

    Example
    -------
    >>> metric_columns(["UA", "CCC_valence"])
    (('UA', 'UAR'), ('CCC_valence', 'CCC-V'))
    """
    return tuple((key, TEST_METRICS[key][0]) for key in keys)


class CCCStats(MetricStats):
    """Tracks valence/arousal(/dominance) predictions and computes CCC.

    CCC uses population moments (1/N) over the whole epoch; see
    :func:`speechbrain_mtmm.training.losses.ccc`. Constant predictions or
    a single item give 0, never NaN.

    Arguments
    ---------
    dim_names : sequence of str
        Names of the predicted dimensions, in column order.

    Example
    -------
    >>> stats = CCCStats()
    >>> stats.append(["a", "b"], torch.tensor([[0.1, 0.9], [0.5, 0.5]]),
    ...              torch.tensor([[0.1, 0.9], [0.5, 0.5]]))
    >>> stats.append(["c"], torch.tensor([[0.9, 0.1]]),
    ...              torch.tensor([[0.9, 0.1]]))
    >>> {k: round(v, 3) for k, v in stats.summarize().items()}
    {'CCC_valence': 1.0, 'CCC_arousal': 1.0, 'CCC_mean': 1.0}
    """

    def __init__(self, dim_names=DIMENSIONS[:2]):
        self.dim_names = list(dim_names)
        self.clear()

    def clear(self):
        """Forgets everything appended so far."""
        self.ids = []
        self.predictions = []
        self.targets = []
        self.summary = {}

    def append(self, ids, predictions, targets):
        """Stores a batch of predictions.

        Arguments
        ---------
        ids : list of str
            Utterance ids of the batch.
        predictions : torch.Tensor
            Predicted values ``(batch, n_dims)``.
        targets : torch.Tensor
            True values ``(batch, n_dims)``.
        """
        predictions = predictions.detach().float().cpu()
        targets = targets.detach().float().cpu()
        expected = (len(ids), len(self.dim_names))
        for name, value in (("predictions", predictions), ("targets", targets)):
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"CCCStats.append: {name} has shape {tuple(value.shape)}, "
                    f"expected {expected} (ids x {self.dim_names})"
                )
        self.ids.extend(ids)
        self.predictions.append(predictions)
        self.targets.append(targets)

    def summarize(self, field=None):
        """Computes CCC per dimension over everything appended, and the mean.

        Arguments
        ---------
        field : str, optional
            One key of the summary (e.g. ``"CCC_valence"``).

        Returns
        -------
        dict or float
            ``{"CCC_<dim>": value, ..., "CCC_mean": value}`` or one value;
            ``{}`` without dimensions (none trained: nothing to report).
        """
        if not self.dim_names:
            self.summary = {}
            return self.summary if field is None else self.summary[field]
        if not self.ids:
            raise ValueError("CCCStats.summarize: nothing was appended")
        predictions = torch.cat(self.predictions).double()
        targets = torch.cat(self.targets).double()
        values = masked_ccc(predictions, targets)
        self.summary = {
            f"CCC_{name}": float(values[i])
            for i, name in enumerate(self.dim_names)
        }
        self.summary["CCC_mean"] = float(values.mean())
        return self.summary if field is None else self.summary[field]

    def write_stats(self, filestream):
        """Writes the summary, one line per dimension.

        Arguments
        ---------
        filestream : file-like
            Where to write.
        """
        if not self.summary:
            self.summarize()
        for key, value in self.summary.items():
            filestream.write(f"{key}: {value:.4f}\n")


class EmotionClassificationStats(ClassificationStats):
    """WA, UA, macro-F1, per-class recall and confusion over fixed labels.

    WA is accuracy; UA is the mean of per-class recalls over the classes that
    occur in the targets; macro-F1 averages per-class F1 over the same
    classes (a class never predicted has precision 0). The confusion matrix
    has rows = true label and columns = predicted label, both in ``labels``
    order.

    Arguments
    ---------
    labels : sequence of str
        The label set, in the order used for the confusion matrix.

    Example
    -------
    >>> stats = EmotionClassificationStats(["neu", "hap"])
    >>> stats.append(["u1", "u2", "u3", "u4"],
    ...              predictions=["neu", "neu", "neu", "hap"],
    ...              targets=["neu", "neu", "hap", "hap"])
    >>> summary = stats.summarize()
    >>> summary["WA"], summary["UA"], summary["confusion"]
    (0.75, 0.75, [[2, 0], [1, 1]])
    """

    def __init__(self, labels):
        super().__init__()
        self.labels = list(labels)

    def append(self, ids, predictions, targets, categories=None):
        """Stores a batch of predicted and true labels (strings).

        Arguments
        ---------
        ids : list of str
            Utterance ids.
        predictions : list of str
            Predicted labels.
        targets : list of str
            True labels; None for an utterance without a class (rated for
            the dimensions only), which is left out.
        categories : list of str, optional
            Kept for compatibility with ``ClassificationStats``.
        """
        kept = [i for i, target in enumerate(targets) if target is not None]
        if len(kept) < len(targets):
            ids = [ids[i] for i in kept]
            predictions = [predictions[i] for i in kept]
            targets = [targets[i] for i in kept]
            if categories is not None:
                categories = [categories[i] for i in kept]
        unknown = (set(predictions) | set(targets)) - set(self.labels)
        if unknown:
            raise ValueError(
                f"EmotionClassificationStats: labels {sorted(unknown)} are "
                f"not in the label set {self.labels}"
            )
        super().append(ids, predictions, targets, categories)

    def summarize(self, field=None):
        """Computes WA, UA, macro-F1, per-class recall and the confusion.

        Arguments
        ---------
        field : str, optional
            One key of the summary (e.g. ``"UA"``).

        Returns
        -------
        dict or value
            Keys ``WA, UA, macro_F1, recall, confusion, labels, n``.
        """
        if not self.ids:
            raise ValueError("EmotionClassificationStats: nothing appended")
        index = {label: i for i, label in enumerate(self.labels)}
        confusion = torch.zeros(len(self.labels), len(self.labels))
        for target, prediction in zip(self.targets, self.predictions):
            confusion[index[target], index[prediction]] += 1
        true_total = confusion.sum(dim=1)
        pred_total = confusion.sum(dim=0)
        correct = confusion.diag()
        present = true_total > 0
        recall = correct / true_total.clamp(min=1)
        precision = correct / pred_total.clamp(min=1)
        f1 = torch.where(
            recall + precision > 0,
            2 * recall * precision / (recall + precision).clamp(min=1e-12),
            torch.zeros_like(recall),
        )
        self.summary = {
            "WA": float(correct.sum() / confusion.sum()),
            "UA": float(recall[present].mean()),
            "macro_F1": float(f1[present].mean()),
            "recall": {
                label: float(recall[i])
                for i, label in enumerate(self.labels)
                if present[i]
            },
            "confusion": confusion.long().tolist(),
            "labels": list(self.labels),
            "n": len(self.ids),
        }
        return self.summary if field is None else self.summary[field]

    def write_stats(self, filestream):
        """Writes WA, UA, macro-F1, recalls and the confusion matrix.

        Arguments
        ---------
        filestream : file-like
            Where to write.
        """
        summary = self.summarize()
        for key in ("WA", "UA", "macro_F1"):
            filestream.write(f"{key}: {summary[key]:.4f}\n")
        for label, value in summary["recall"].items():
            filestream.write(f"recall {label}: {value:.4f}\n")
        filestream.write("confusion (rows true, columns predicted):\n")
        filestream.write("      " + " ".join(f"{x:>5}" for x in self.labels))
        filestream.write("\n")
        for label, row in zip(self.labels, summary["confusion"]):
            cells = " ".join(f"{x:>5}" for x in row)
            filestream.write(f"{label:>5} {cells}\n")


def epoch_scores(class_stats, ccc_stats, selection_metrics):
    """An evaluation stage's scores and the checkpoint-selection score.

    Arguments
    ---------
    class_stats : EmotionClassificationStats or None
        The stage's classes (None: classes not trained, none reported).
    ccc_stats : CCCStats
        The stage's dimensions (those trained).
    selection_metrics : sequence of str
        Scores whose mean is ``score`` (the checkpoint kept for testing
        is the best on the validation speaker).

    Returns
    -------
    dict
        ``WA``, ``UA``, ``macro_F1``, ``micro_F1`` (equal to WA for one
        label per utterance; the MSP-Podcast challenge reports it under
        this name), ``CCC_<dimension>``, ``CCC_mean`` and ``score``.

    Example
    -------
    >>> classes = EmotionClassificationStats(["a", "b"])
    >>> classes.append(["u1", "u2"], ["a", "a"], ["a", "b"])
    >>> dims = CCCStats(["valence"])
    >>> dims.append(["u1", "u2"], torch.tensor([[0.0], [1.0]]),
    ...             torch.tensor([[0.0], [1.0]]))
    >>> scores = epoch_scores(classes, dims, ["UA", "CCC_valence"])
    >>> scores["UA"], round(scores["CCC_valence"], 4), round(scores["score"], 4)
    (0.5, 1.0, 0.75)
    """
    scores = {}
    if class_stats is not None:
        summary = class_stats.summarize()
        scores = {key: summary[key] for key in ("WA", "UA", "macro_F1")}
        scores["micro_F1"] = summary["WA"]
    scores.update(ccc_stats.summarize())
    scores["score"] = sum(scores[name] for name in selection_metrics) / len(
        selection_metrics
    )
    return scores


def summarize_test(class_stats, scores):
    """The content of ``test_results.json``.

    Arguments
    ---------
    class_stats : EmotionClassificationStats or None
        The test stage's classes (None: classes not trained).
    scores : dict
        The test loss and :func:`epoch_scores` (``score`` is left out: it
        is a selection criterion, not a test result).

    Returns
    -------
    dict
        The scores, and with classes ``confusion``, ``labels``,
        ``recall`` and ``n``.
    """
    results = {k: v for k, v in scores.items() if k != "score"}
    if class_stats is not None:
        summary = class_stats.summarize()
        for key in ("confusion", "labels", "recall", "n"):
            results[key] = summary[key]
    return results


class MetricChoiceError(ValueError):
    """``selection_metrics`` naming a score that is not computed."""


def selection_metrics(chosen, config):
    """The validation scores whose mean selects the tested checkpoint.

    ``"auto"`` uses the heads that are trained: UA when the classes are
    (``w_ce > 0``), the CCC of every dimension with a positive weight. A
    score of a head that is not trained (loss weight 0) is not computed,
    so choosing it is refused.

    Arguments
    ---------
    chosen : str or list of str
        ``"auto"`` or metric names (``UA``, ``CCC_valence``, ...).
    config : dict
        The model configuration (``n_dims``, ``loss_weights``).

    Returns
    -------
    list of str

    Raises
    ------
    MetricChoiceError
        Naming the untrained scores chosen.

    Example
    -------
    >>> weights = {"classes": 0.33, "valence": 0.33, "arousal": 0.33}
    >>> selection_metrics("auto", {"n_dims": 2, "loss_weights": weights})
    ['UA', 'CCC_valence', 'CCC_arousal']
    >>> weights = {"classes": 1.0, "valence": 0.0, "arousal": 0.0}
    >>> selection_metrics("auto", {"n_dims": 2, "loss_weights": weights})
    ['UA']
    """
    dimensions = trained_dimensions(config)
    computed = [*CLASS_METRICS, "micro_F1"] if classes_trained(config) else []
    computed += [f"CCC_{d}" for d in dimensions]
    computed += ["CCC_mean"] if dimensions else []
    trained = ["UA"] if classes_trained(config) else []
    trained += [f"CCC_{d}" for d in dimensions]
    if chosen == "auto":
        if not trained:
            raise MetricChoiceError(
                "every loss weight is 0: nothing is trained"
            )
        return trained
    chosen = list(chosen)
    untrained = [name for name in chosen if name not in computed]
    if untrained:
        raise MetricChoiceError(
            f"selection_metrics {chosen} include {untrained}, which are not "
            f"computed (their heads are not trained: loss weight 0, or not "
            f"a test metric); selection_metrics: auto uses {trained}"
        )
    return chosen
