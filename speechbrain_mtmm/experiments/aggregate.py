"""Cross-validation results: per fold and seed, mean and std, subsets.

Reads the complete runs of a sweep folder (``<protocol>_fold<k>/seed<s>/``
holding ``test_results.json`` and ``test_predictions.jsonl``, as written by
a recipe: see :mod:`speechbrain_mtmm.run_folder`) and writes
``cv_results.json`` and ``cv_results.csv`` next to them.

How mean and std are computed (``STD_DEFINITION``, also written into the
JSON and the report):

* per seed, the mean over folds of a metric (each fold's test score counts
  once, as in the paper);
* ``mean``: the mean of those per-seed means;
* ``std_seeds``: the *sample* standard deviation (n - 1) of the per-seed
  means, i.e. the paper's "mean +- std over 3 seeds"; undefined (``None``)
  with a single seed;
* ``std_folds``: the sample standard deviation over folds of the per-fold
  mean over seeds (speaker-to-speaker spread); ``None`` with one fold.

The improvised and scripted parts are recomputed from
``test_predictions.jsonl`` with ``EmotionClassificationStats`` and
``CCCStats`` (CCC on the 1-5 scale of that file equals CCC on the 0-1 scale
the model predicts: CCC is unchanged when the same affine map is applied to
predictions and targets). The whole-test-set numbers are the recipe's own
``test_results.json``. The pooled confusion matrix sums every run's matrix,
so each test utterance counts once per seed.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import csv
import statistics
from pathlib import Path

import torch

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.run_folder import (
    CV_RESULTS_CSV,
    CV_RESULTS_JSON,
    DIMENSIONS,
    SWEEP_PLAN,
    find_sweep_runs,
    read_json,
    read_predictions,
    read_run_config,
    read_test_results,
    settings_differences,
    sweep_run_name,
)
from speechbrain_mtmm.training.metrics import (
    CCCStats,
    EmotionClassificationStats,
)

# what legitimately differs between the runs of one sweep
PER_RUN_SETTINGS = ("fold", "seed")

METRICS = ("WA", "UA", "macro_F1", "CCC_valence", "CCC_arousal")
SUBSETS = ("all", "improvised", "scripted")
STD_DEFINITION = (
    "mean = mean over seeds of the per-seed mean over folds; "
    "std_seeds = sample std (n-1) of the per-seed means (the paper's "
    "mean +- std over seeds; undefined with one seed); "
    "std_folds = sample std (n-1) over folds of the per-fold mean over "
    "seeds (undefined with one fold)"
)


def prediction_metrics(rows, labels):
    """WA, UA, macro-F1 and CCC per dimension of some prediction rows.

    Arguments
    ---------
    rows : list of dict
        Rows of ``test_predictions.jsonl``.
    labels : sequence of str
        The label set.

    Returns
    -------
    dict or None
        The metrics and ``n`` (None for no rows).

    Example
    -------
    >>> rows = [
    ...     {"id": "a", "emo": "neu", "pred_emo": "neu", "valence": 1.0,
    ...      "pred_valence": 1.0, "arousal": 2.0, "pred_arousal": 2.0},
    ...     {"id": "b", "emo": "hap", "pred_emo": "neu", "valence": 5.0,
    ...      "pred_valence": 5.0, "arousal": 4.0, "pred_arousal": 4.0},
    ... ]
    >>> metrics = prediction_metrics(rows, ["neu", "hap"])
    >>> metrics["WA"], metrics["UA"], metrics["n"]
    (0.5, 0.5, 2)
    >>> round(metrics["CCC_valence"], 6), round(metrics["CCC_arousal"], 6)
    (1.0, 1.0)
    """
    if not rows:
        return None
    ids = [row["id"] for row in rows]
    metrics = {}
    if "pred_emo" in rows[0]:  # the classes were trained
        classes = EmotionClassificationStats(labels)
        classes.append(
            ids,
            [row["pred_emo"] for row in rows],
            [row["emo"] for row in rows],
        )
        summary = classes.summarize()
        metrics = {key: summary[key] for key in ("WA", "UA", "macro_F1")}
    dims = [name for name in DIMENSIONS if f"pred_{name}" in rows[0]]
    ccc = CCCStats(dims)
    ccc.append(
        ids,
        torch.tensor([[row[f"pred_{d}"] for d in dims] for row in rows]),
        torch.tensor([[row[d] for d in dims] for row in rows]),
    )
    metrics.update(ccc.summarize())
    metrics["n"] = len(rows)
    return metrics


def run_metrics(run, metrics):
    """One run's scores: whole test set, improvised and scripted parts.

    Arguments
    ---------
    run : dict
        ``{"fold", "seed", "path"}`` from ``find_sweep_runs``.
    metrics : sequence of str
        The metric names to keep.

    Returns
    -------
    dict
        ``fold, seed, path, test_speakers, confusion, labels`` and one dict
        of metrics (plus ``n``) per subset (None for an empty subset).
    """
    path = Path(run["path"])
    results = read_test_results(path)
    rows = read_predictions(path)
    labels = results.get("labels")  # none: the classes were not trained
    entry = {
        "fold": run["fold"],
        "seed": run["seed"],
        "path": f"{path.parent.name}/{path.name}",
        # a corpus without speakers (utterance folds) names none
        "test_speakers": sorted({row.get("speaker") for row in rows} - {None}),
        "labels": labels,
        "confusion": results.get("confusion"),
        "all": {key: results[key] for key in metrics}
        | {"n": results.get("n", len(rows))},
    }
    # IEMOCAP's improvised and scripted parts (other corpora have none)
    has_parts = all("improvised" in row for row in rows)
    for subset, improvised in (("improvised", True), ("scripted", False)):
        part = [
            row
            for row in rows
            if has_parts and bool(row["improvised"]) == improvised
        ]
        scores = prediction_metrics(part, labels)
        if scores is not None:
            scores = {key: scores[key] for key in (*metrics, "n")}
        entry[subset] = scores
    # the test conditions (gold, asr, none) and the ASR word error rate
    entry["conditions"] = {
        condition: {key: scores[key] for key in metrics}
        | {"n": scores.get("n", len(rows))}
        for condition, scores in results.get("conditions", {}).items()
    }
    entry["WER"] = {
        subset: wer["WER"] for subset, wer in results.get("WER", {}).items()
    }
    return entry


def summarize_conditions(runs, metrics):
    """Mean/std per test condition, and of the ASR word error rate.

    Arguments
    ---------
    runs : list of dict
        Entries from :func:`run_metrics`.
    metrics : sequence of str
        Metric names.

    Returns
    -------
    conditions : dict
        Condition -> ``{metric: summary, "n", "runs"}``, in the runs'
        order (gold, asr, none as they were tested).
    wer : dict
        Subset (all, improvised, scripted) -> summary of the WER (%).
    """
    names = list(dict.fromkeys(c for run in runs for c in run["conditions"]))
    conditions = {}
    for name in names:
        present = [{**run, name: run["conditions"].get(name)} for run in runs]
        conditions[name] = summarize_subset(present, name, metrics)
    wer = {}
    for subset in SUBSETS:
        values = {
            (run["fold"], run["seed"]): run["WER"][subset]
            for run in runs
            if subset in run["WER"]
        }
        if values:
            wer[subset] = summarize_metric(values)
    return conditions, wer


def _sample_std(values):
    values = list(values)
    return statistics.stdev(values) if len(values) > 1 else None


def summarize_metric(values):
    """Mean and std of one metric over folds and seeds (see the module doc).

    Arguments
    ---------
    values : dict
        ``{(fold, seed): value}``.

    Returns
    -------
    dict
        ``mean, std_seeds, std_folds, per_seed, per_fold`` (the last two
        keyed by the fold or seed number as a string).

    Example
    -------
    >>> s = summarize_metric({(1, 1): 0.5, (2, 1): 0.7,
    ...                       (1, 2): 0.6, (2, 2): 0.8})
    >>> round(s["mean"], 4), round(s["std_seeds"], 4), round(s["std_folds"], 4)
    (0.65, 0.0707, 0.1414)
    >>> summarize_metric({(1, 1): 0.5, (2, 1): 0.7})["std_seeds"] is None
    True
    """
    seeds = sorted({seed for _, seed in values})
    folds = sorted({fold for fold, _ in values})
    per_seed = {
        str(s): statistics.fmean(v for (_, k), v in values.items() if k == s)
        for s in seeds
    }
    per_fold = {
        str(f): statistics.fmean(v for (k, _), v in values.items() if k == f)
        for f in folds
    }
    return {
        "mean": statistics.fmean(per_seed.values()),
        "std_seeds": _sample_std(per_seed.values()),
        "std_folds": _sample_std(per_fold.values()),
        "per_seed": per_seed,
        "per_fold": per_fold,
    }


def summarize_subset(runs, subset, metrics):
    """Mean/std of every metric over the runs that have this subset.

    Arguments
    ---------
    runs : list of dict
        Entries from :func:`run_metrics`.
    subset : str
        ``"all"``, ``"improvised"`` or ``"scripted"``.
    metrics : sequence of str
        Metric names.

    Returns
    -------
    dict or None
        ``{metric: summary, "n": utterances over runs, "runs": count}``.
    """
    present = [run for run in runs if run[subset] is not None]
    if not present:
        return None
    summary = {
        metric: summarize_metric(
            {(run["fold"], run["seed"]): run[subset][metric] for run in present}
        )
        for metric in metrics
    }
    summary["n"] = sum(run[subset]["n"] for run in present)
    summary["runs"] = len(present)
    return summary


def pooled_confusion(runs):
    """Sum of the runs' confusion matrices (rows true, columns predicted).

    Arguments
    ---------
    runs : list of dict
        Entries with a ``confusion`` matrix.

    Returns
    -------
    list of list of int

    Example
    -------
    >>> pooled_confusion([{"confusion": [[1, 0], [2, 3]]},
    ...                   {"confusion": [[0, 1], [1, 1]]}])
    [[1, 1], [3, 4]]
    """
    if any(run["confusion"] is None for run in runs):
        return None  # the classes were not trained
    total = torch.tensor([run["confusion"] for run in runs]).sum(dim=0)
    return total.tolist()


def aggregate(folder, protocol):
    """Aggregates a sweep folder; writes cv_results.json and .csv.

    Arguments
    ---------
    folder : str or os.PathLike
        The sweep folder.
    protocol : str
        The protocol whose runs are aggregated.

    Returns
    -------
    dict or None
        The content of ``cv_results.json`` (None if no run is complete).
    """
    folder = Path(folder)
    complete, incomplete = find_sweep_runs(folder, protocol)
    if not complete:
        return None
    check_one_configuration(complete)
    done = {sweep_run_name(protocol, r["fold"], r["seed"]) for r in complete}
    planned = []
    if (folder / SWEEP_PLAN).is_file():
        planned = read_json(folder / SWEEP_PLAN)["runs"]
    missing = [name for name in planned if name not in done]
    # the metrics of the heads that were trained (the others are not
    # computed: the tables show them as not trained)
    first = read_test_results(complete[0]["path"])
    metrics = [m for m in (*METRICS, "CCC_dominance") if m in first]
    runs = [run_metrics(run, metrics) for run in complete]
    conditions, wer = summarize_conditions(runs, metrics)
    labels = runs[0]["labels"]
    if any(run["labels"] != labels for run in runs):
        raise ValueError(f"{folder}: the runs do not share one label set")
    results = {
        # the corpus names its report's headline metrics (experiments.reports)
        "corpus": first.get("corpus"),
        "protocol": protocol,
        "folds": sorted({run["fold"] for run in runs}),
        "seeds": sorted({run["seed"] for run in runs}),
        "metrics": metrics,
        "labels": labels,
        "std": STD_DEFINITION,
        "summary": {s: summarize_subset(runs, s, metrics) for s in SUBSETS},
        "transcripts": conditions,
        "WER": wer,
        "confusion": pooled_confusion(runs),
        "incomplete": incomplete,
        "missing": missing,
        "runs": runs,
    }
    write_json(folder / CV_RESULTS_JSON, results)
    write_csv(results, folder / CV_RESULTS_CSV)
    return results


def check_one_configuration(runs):
    """Refuses to aggregate runs trained with different settings (beyond
    their fold and seed); runs without recorded settings are not checked.

    Arguments
    ---------
    runs : list of dict
        ``{"fold", "seed", "path"}`` of complete runs.

    Raises
    ------
    ValueError
        Naming two runs and how they differ.
    """
    reference = None
    for run in runs:
        settings = read_run_config(run["path"])
        if settings is None:
            continue
        for key in PER_RUN_SETTINGS:
            settings.pop(key, None)
        if reference is None:
            reference = (run["path"], settings)
            continue
        differences = settings_differences(reference[1], settings)
        if differences:
            raise ValueError(
                f"{run['path']} and {reference[0]} were trained with "
                f"different settings ({'; '.join(differences[:6])}): one "
                "sweep folder must hold one configuration"
            )


def csv_rows(results):
    """The rows of cv_results.csv: runs, fold and seed means, mean, stds.

    Arguments
    ---------
    results : dict
        Output of :func:`aggregate`.

    Returns
    -------
    list of dict
        Keys ``kind, subset, fold, seed, n`` and the metrics; ``kind`` is
        ``run``, ``fold_mean`` (over seeds), ``seed_mean`` (over folds),
        ``mean``, ``std_seeds`` or ``std_folds``.
    """
    rows = []
    metrics = results["metrics"]
    for run in results["runs"]:
        for subset in SUBSETS:
            if run[subset] is not None:
                rows.append(
                    {"kind": "run", "subset": subset, "fold": run["fold"]}
                    | {"seed": run["seed"]}
                    | run[subset]
                )
    for subset in SUBSETS:
        summary = results["summary"][subset]
        if summary is None:
            continue
        for kind, key in (("fold_mean", "fold"), ("seed_mean", "seed")):
            for value in summary[metrics[0]][f"per_{key}"]:
                row = {"kind": kind, "subset": subset, key: value}
                for m in metrics:
                    row[m] = summary[m][f"per_{key}"][value]
                rows.append(row)
        for kind in ("mean", "std_seeds", "std_folds"):
            row = {"kind": kind, "subset": subset}
            row.update({m: summary[m][kind] for m in metrics})
            if kind == "mean":
                row["n"] = summary["n"]
            rows.append(row)
    return rows


def write_csv(results, path):
    """Writes :func:`csv_rows` (empty cells for undefined values).

    Arguments
    ---------
    results : dict
        Output of :func:`aggregate`.
    path : str or os.PathLike
        The CSV file.
    """
    fields = ["kind", "subset", "fold", "seed", "n", *results["metrics"]]
    with open(path, "w", encoding="utf-8", newline="") as fout:
        writer = csv.DictWriter(fout, fieldnames=fields, restval="")
        writer.writeheader()
        for row in csv_rows(results):
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
