"""Markdown report and plots of a cross-validation sweep.

:func:`write_report` turns ``cv_results.json`` (see
:mod:`.aggregate`) and the runs' own files into
``report.md`` with four PNG plots (matplotlib, Agg canvas, no display
needed):

* ``confusion.png``: pooled confusion matrix, normalised per true class;
* ``dimensions.png``: predicted vs true valence and arousal, every test
  prediction of every run;
* ``folds.png``: per-fold scores (mean over seeds, bars = std over seeds);
* ``curves.png``: training curves parsed from the runs' ``train_log.txt``.

The results table has the format of the paper's ablation table
(UAR / WAR / CCC-V / CCC-A; WAR = WA, UAR = UA).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import math
import statistics
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from speechbrain_mtmm.atomic import write_text
from speechbrain_mtmm.data.corpora import CORPORA, IEMOCAP
from speechbrain_mtmm.experiments.aggregate import SUBSETS
from speechbrain_mtmm.run_folder import (
    CV_RESULTS_JSON,
    DIMENSIONS,
    REPORT,
    TRAIN_LOG,
    read_json,
    read_predictions,
    read_train_log,
)
from speechbrain_mtmm.training.metrics import metric_columns

PAPER_COLUMNS = metric_columns(("UA", "WA", "CCC_valence", "CCC_arousal"))
DETAIL_COLUMNS = metric_columns(
    ("UA", "WA", "macro_F1", "CCC_valence", "CCC_arousal")
)


def headline_columns(results):
    """The columns of a sweep's headline table: its corpus' own metrics
    (:attr:`~speechbrain_mtmm.data.corpora.CorpusRecord.headline`;
    IEMOCAP's, the paper's, for results that name no corpus), then
    CCC-dominance where it was computed and the corpus' headline lacks it.

    Arguments
    ---------
    results : dict
        Content of ``cv_results.json``.

    Returns
    -------
    tuple of tuple
        ``(key, column)`` pairs.

    Example
    -------
    >>> [c for _, c in headline_columns({"corpus": "msp-podcast"})]
    ['macro-F1', 'CCC-A', 'CCC-V', 'CCC-D']
    >>> [c for _, c in headline_columns({"metrics": ["CCC_dominance"]})]
    ['UAR', 'WAR', 'CCC-V', 'CCC-A', 'CCC-D']
    """
    keys = list(CORPORA.get(results.get("corpus"), IEMOCAP).headline)
    if "CCC_dominance" in results.get("metrics", ()):
        keys += [] if "CCC_dominance" in keys else ["CCC_dominance"]
    return metric_columns(keys)


def detail_columns(results):
    """The columns of a sweep's detail tables (per fold, per part, per
    transcript condition): those of :data:`DETAIL_COLUMNS`, then
    CCC-dominance where it was computed, for every corpus.

    Arguments
    ---------
    results : dict
        Content of ``cv_results.json``.

    Returns
    -------
    tuple of tuple
        ``(key, column)`` pairs.

    Example
    -------
    >>> [c for _, c in detail_columns({"metrics": ["CCC_dominance"]})]
    ['UAR', 'WAR', 'macro-F1', 'CCC-V', 'CCC-A', 'CCC-D']
    """
    if "CCC_dominance" in results.get("metrics", ()):
        return DETAIL_COLUMNS + metric_columns(["CCC_dominance"])
    return DETAIL_COLUMNS


#: The cell of a metric that was not computed (its head was not trained)
NOT_TRAINED = "-"
NOT_TRAINED_NOTE = f"{NOT_TRAINED}: not trained (loss weight 0), not computed"
PLOTS = {
    "confusion": "confusion.png",
    "dimensions": "dimensions.png",
    "folds": "folds.png",
    "curves": "curves.png",
}
STD_TEXT = (
    "UAR = UA (mean per-class recall), WAR = WA (accuracy), in %. "
    "mean ± std: per seed, the mean over folds; shown is the mean of these "
    "per-seed means ± their sample standard deviation (n - 1) over seeds "
    "(the paper's mean ± std over seeds). std over folds: the sample "
    "standard deviation over folds of the per-fold mean over seeds."
)


def format_score(metric, value):
    """A score as the paper prints it: percent for classes, ``.744`` CCC.

    Arguments
    ---------
    metric : str
        Metric name (``WA``, ``UA``, ``macro_F1`` or ``CCC_*``).
    value : float or None
        The value (0-1).

    Returns
    -------
    str
        ``"–"`` for None.

    Example
    -------
    >>> format_score("UA", 0.75791), format_score("CCC_valence", 0.7441)
    ('75.79', '.744')
    >>> format_score("CCC_arousal", -0.05), format_score("WA", None)
    ('-.050', '–')
    """
    if value is None:
        return "–"
    if metric.startswith("CCC"):
        return f"{value:.3f}".replace("0.", ".", 1)
    return f"{100 * value:.2f}"


def format_mean_std(metric, summary, std="std_seeds"):
    """``mean ± std`` of a metric summary (``± n/a`` when undefined).

    Arguments
    ---------
    metric : str
        Metric name.
    summary : dict
        ``{"mean", "std_seeds", "std_folds", ...}`` of the metric.
    std : str
        Which std to show.

    Returns
    -------
    str

    Example
    -------
    >>> format_mean_std("WA", {"mean": 0.7438, "std_seeds": 0.0052})
    '74.38 ± 0.52'
    >>> format_mean_std("CCC_valence", {"mean": 0.7, "std_seeds": None})
    '.700 ± n/a'
    """
    spread = summary[std]
    text = "n/a" if spread is None else format_score(metric, spread)
    return f"{format_score(metric, summary['mean'])} ± {text}"


def markdown_table(header, rows):
    """A GitHub-flavoured markdown table.

    Arguments
    ---------
    header : sequence of str
        Column titles.
    rows : sequence of sequence
        Cells (converted with ``str``).

    Returns
    -------
    str

    Example
    -------
    >>> print(markdown_table(["a", "b"], [[1, 2]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _new_figure(ncols, nrows=1, width=4.5, height=3.6):
    figure = Figure(figsize=(width * ncols, height * nrows), layout="tight")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(nrows, ncols, squeeze=False).ravel()


def plot_confusion(confusion, labels, path):
    """Pooled confusion matrix, each row normalised to 1 (recall).

    Arguments
    ---------
    confusion : list of list of int
        Counts, rows true and columns predicted.
    labels : sequence of str
        Class names.
    path : str or os.PathLike
        The PNG to write.
    """
    figure, (axis,) = _new_figure(1, width=5, height=4.4)
    rows = [[n / max(1, sum(row)) for n in row] for row in confusion]
    image = axis.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            color = "white" if rows[i][j] > 0.5 else "black"
            text = f"{rows[i][j]:.2f}\n({count})"
            axis.text(j, i, text, ha="center", va="center", color=color)
    axis.set_xticks(range(len(labels)), labels)
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("confusion (row-normalised, pooled)")
    figure.colorbar(image, ax=axis)
    figure.savefig(path, dpi=100)


def plot_dimensions(rows, path):
    """Predicted vs true ratings per dimension, one dot each, on the
    corpus' scale (the integers around the ratings: 1-5 for IEMOCAP, 1-7
    for MSP-Podcast); unrated utterances are left out.

    Arguments
    ---------
    rows : list of dict
        Prediction rows of every run.
    path : str or os.PathLike
        The PNG to write.
    """
    dims = [name for name in DIMENSIONS if f"pred_{name}" in rows[0]]
    figure, axes = _new_figure(len(dims), width=4, height=4)
    for axis, name in zip(axes, dims):
        rated = [r for r in rows if r.get(name) is not None]
        true = [r[name] for r in rated]
        pred = [r[f"pred_{name}"] for r in rated]
        low = math.floor(min(true + pred, default=1))
        high = math.ceil(max(true + pred, default=5))
        axis.scatter(true, pred, s=6, alpha=0.4)
        axis.plot([low, high], [low, high], color="grey", linewidth=1)
        axis.set_xlim(low - 0.2, high + 0.2)
        axis.set_ylim(low - 0.2, high + 0.2)
        axis.set_aspect("equal")
        axis.set_xlabel(f"true {name}")
        axis.set_ylabel(f"predicted {name}")
        axis.set_title(f"{name} ({len(rated)} predictions)")
    figure.savefig(path, dpi=100)


def plot_folds(results, path):
    """Per-fold UAR/WAR and CCC: mean over seeds, bars = std over seeds.

    Arguments
    ---------
    results : dict
        Content of ``cv_results.json``.
    path : str or os.PathLike
        The PNG to write.
    """
    folds = results["folds"]
    figure, axes = _new_figure(2)
    panels = (
        (axes[0], PAPER_COLUMNS[:2], 100),
        (axes[1], PAPER_COLUMNS[2:], 1),
    )
    for axis, columns, scale in panels:
        for metric, title in columns:
            if metric not in results["metrics"]:
                continue  # not trained
            values = [
                [
                    scale * r["all"][metric]
                    for r in results["runs"]
                    if r["fold"] == f
                ]
                for f in folds
            ]
            means = [statistics.fmean(v) for v in values]
            stds = [statistics.stdev(v) if len(v) > 1 else 0 for v in values]
            axis.errorbar(
                folds, means, yerr=stds, marker="o", capsize=3, label=title
            )
        axis.set_xticks(folds)
        axis.set_xlabel(f"{results['protocol']} fold")
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
        else:
            axis.text(0.5, 0.5, "not trained", ha="center", va="center")
    axes[0].set_ylabel("%")
    axes[1].set_ylabel("CCC")
    axes[0].set_title("per-fold classification")
    axes[1].set_title("per-fold valence / arousal")
    figure.savefig(path, dpi=100)


def plot_curves(logs, path):
    """Training curves: losses, validation UA and CCC per epoch, per run.

    Arguments
    ---------
    logs : dict
        Run name -> ``run_folder.read_train_log``.
    path : str or os.PathLike
        The PNG to write.
    """
    panels = (
        ("loss (solid: train, dashed: valid)", ("train_loss", "valid_loss")),
        ("valid UA", ("valid_UA",)),
        ("valid CCC valence", ("valid_CCC_valence",)),
        ("valid CCC arousal", ("valid_CCC_arousal",)),
    )
    figure, axes = _new_figure(2, 2)
    for axis, (title, keys) in zip(axes, panels):
        # one colour per run in every panel
        for index, (name, epochs) in enumerate(logs.items()):
            for key, style in zip(keys, ("-", "--")):
                points = [(e["epoch"], e[key]) for e in epochs if key in e]
                if not points:
                    continue
                axis.plot(
                    *zip(*points),
                    style,
                    color=f"C{index % 10}",
                    marker=".",
                    linewidth=1,
                    label=name if key == keys[0] else None,
                )
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if 0 < len(logs) <= 10:
        axes[1].legend(fontsize="x-small")
    figure.savefig(path, dpi=100)


def results_table(name, results):
    """The headline table of a sweep, in its corpus' metrics
    (:func:`headline_columns`: IEMOCAP's paper format UAR / WAR / CCC-V /
    CCC-A, MSP-Podcast's macro-F1 / CCC-A / CCC-V / CCC-D).

    Arguments
    ---------
    name : str
        The configuration's name (first column).
    results : dict
        Content of ``cv_results.json``.

    Returns
    -------
    str
    """
    summary = results["summary"]["all"]
    columns = headline_columns(results)
    rows = [
        [f"{name} (mean ± std over seeds)"]
        + [_mean_std(m, summary) for m, _ in columns],
        ["std over folds"]
        + [
            format_score(m, summary[m]["std_folds"])
            if m in summary
            else NOT_TRAINED
            for m, _ in columns
        ],
    ]
    table = markdown_table(["configuration", *(t for _, t in columns)], rows)
    return _noted(table, columns, summary)


def _mean_std(metric, summary):
    """A metric's mean ± std cell, or :data:`NOT_TRAINED` when it was not
    computed."""
    if metric not in summary:
        return NOT_TRAINED
    return format_mean_std(metric, summary[metric])


def _noted(table, columns, summary):
    """The table, with :data:`NOT_TRAINED_NOTE` below it when one of its
    columns was not computed."""
    if all(metric in summary for metric, _ in columns):
        return table
    return f"{table}\n\n{NOT_TRAINED_NOTE}"


def fold_table(results):
    """Per-fold scores (mean over seeds) with the test speakers.

    Arguments
    ---------
    results : dict
        Content of ``cv_results.json``.

    Returns
    -------
    str
    """
    summary = results["summary"]["all"]
    columns = detail_columns(results)
    rows = []
    for fold in results["folds"]:
        runs = [r for r in results["runs"] if r["fold"] == fold]
        speakers = sorted({s for r in runs for s in r["test_speakers"]})
        rows.append(
            [fold, " ".join(speakers) or "-", runs[0]["all"]["n"], len(runs)]
            + [
                format_score(m, summary[m]["per_fold"][str(fold)])
                if m in summary
                else NOT_TRAINED
                for m, _ in columns
            ]
        )
    header = ["fold", "test speakers", "n", "seeds"]
    table = markdown_table(header + [t for _, t in columns], rows)
    return _noted(table, columns, summary)


def subset_table(results):
    """Whole test sets vs their improvised and scripted parts.

    Arguments
    ---------
    results : dict
        Content of ``cv_results.json``.

    Returns
    -------
    str
    """
    columns = detail_columns(results)
    rows = []
    for subset in SUBSETS:
        summary = results["summary"][subset]
        if summary is None:
            rows.append([subset, 0] + ["–"] * len(columns))
            continue
        rows.append(
            [subset, summary["n"]] + [_mean_std(m, summary) for m, _ in columns]
        )
    header = ["part", "utterances (x seeds)"]
    table = markdown_table(header + [t for _, t in columns], rows)
    return _noted(table, columns, results["summary"]["all"])


#: How the report names the test conditions
CONDITION_NAMES = {
    "gold": "gold transcripts",
    "asr": "ASR transcripts",
    "none": "audio only (text masked)",
}


def transcripts_table(results):
    """One model tested with gold, ASR and no transcripts, side by side,
    with the ASR transcripts' word error rate.

    Arguments
    ---------
    results : dict
        Content of ``cv_results.json``.

    Returns
    -------
    str or None
        None when the runs were tested in one condition only.

    Example
    -------
    >>> m = {"mean": 0.5, "std_seeds": None}
    >>> res = {"transcripts": {c: {k: m for k, _ in DETAIL_COLUMNS}
    ...                        | {"n": 7} for c in ("gold", "none")},
    ...        "WER": {}}
    >>> print(transcripts_table(res).splitlines()[2])
    | gold transcripts | 7 | 50.00 ± n/a | 50.00 ± n/a | 50.00 ± n/a | \
.500 ± n/a | .500 ± n/a | – |
    """
    conditions = results.get("transcripts") or {}
    if len(conditions) < 2:
        return None
    columns = detail_columns(results)
    wer = results.get("WER", {}).get("all")
    rows = []
    for condition, summary in conditions.items():
        if summary is None:
            continue
        wer_cell = "–"
        if condition == "asr" and wer is not None:
            wer_cell = f"{wer['mean']:.1f}" + (
                "" if wer["std_seeds"] is None else f" ± {wer['std_seeds']:.1f}"
            )
        rows.append(
            [CONDITION_NAMES.get(condition, condition), summary["n"]]
            + [_mean_std(m, summary) for m, _ in columns]
            + [wer_cell]
        )
    header = ["tested with", "utterances (x seeds)"]
    header += [t for _, t in columns] + ["WER %"]
    first = next(s for s in conditions.values() if s is not None)
    return _noted(markdown_table(header, rows), columns, first)


def write_plots(folder, results):
    """Writes the four PNGs of :data:`PLOTS` into the sweep folder.

    Arguments
    ---------
    folder : pathlib.Path
        The sweep folder.
    results : dict
        Content of ``cv_results.json``.
    """
    if results["confusion"] is not None:  # None: classes not trained
        plot_confusion(
            results["confusion"],
            results["labels"],
            folder / PLOTS["confusion"],
        )
    predictions = []
    logs = {}
    for run in results["runs"]:
        predictions += read_predictions(folder / run["path"])
        if (folder / run["path"] / TRAIN_LOG).is_file():
            logs[run["path"]] = read_train_log(folder / run["path"])
    if any(m.startswith("CCC_") for m in results["metrics"]):
        plot_dimensions(predictions, folder / PLOTS["dimensions"])
    plot_folds(results, folder / PLOTS["folds"])
    plot_curves(logs, folder / PLOTS["curves"])


def write_report(folder, results=None, name=None):
    """Writes ``report.md`` and its plots into a sweep folder.

    Arguments
    ---------
    folder : str or os.PathLike
        The sweep folder (holding ``cv_results.json``).
    results : dict, optional
        Its content, if already loaded.
    name : str, optional
        The configuration's name (default: the folder's name).

    Returns
    -------
    pathlib.Path
        The report.
    """
    folder = Path(folder)
    if results is None:
        results = read_json(folder / CV_RESULTS_JSON)
    name = name or folder.name
    write_plots(folder, results)
    seeds = " ".join(map(str, results["seeds"]))
    folds = " ".join(map(str, results["folds"]))
    lines = [
        f"# Cross-validation: {name}",
        "",
        f"Protocol `{results['protocol']}`, folds {folds}, seeds {seeds}: "
        f"{len(results['runs'])} complete runs.",
    ]
    if results["incomplete"]:
        lines.append(
            "Incomplete runs (not counted): " + ", ".join(results["incomplete"])
        )
    not_run = [
        name
        for name in results.get("missing", [])
        if name not in results["incomplete"]
    ]
    if not_run:
        lines.append(
            f"**The fold x seed grid is incomplete**: {len(not_run)} planned "
            "run(s) have no results and are not counted: " + ", ".join(not_run)
        )
    lines += [
        "",
        "## Results",
        "",
        results_table(name, results),
        "",
        STD_TEXT,
    ]
    if len(results["seeds"]) == 1:
        lines.append("A single seed was run: the seed std is undefined (n/a).")
    table = transcripts_table(results)
    if table is not None:
        lines += [
            "",
            "## Gold vs ASR vs no transcripts (mean ± std over seeds)",
            "",
            "The same models, tested with each; the word error rate of the "
            "ASR transcripts against the gold ones is on normalised words "
            "(lower case, bracketed annotations removed, only letters, "
            "digits and apostrophes).",
            "",
            table,
        ]
    lines += [
        "",
        "## Per fold (mean over seeds)",
        "",
        fold_table(results),
        "",
    ]
    # IEMOCAP's improvised and scripted parts (other corpora have none)
    if any(results["summary"][part] for part in SUBSETS[1:]):
        lines += [
            "## Improvised vs scripted (mean ± std over seeds)",
            "",
            subset_table(results),
            "",
        ]
    lines += [
        "## Plots",
        "",
        *(
            f"![{title}]({PLOTS[plot]})"
            for plot, title in (
                ("confusion", "confusion matrix"),
                ("dimensions", "valence and arousal"),
                ("folds", "per-fold scores"),
                ("curves", "training curves"),
            )
            if (folder / PLOTS[plot]).is_file()
        ),
        "",
    ]
    report = folder / REPORT
    write_text(report, "\n".join(lines))
    return report
