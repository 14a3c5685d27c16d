"""The paper's ablation table, run as cross-validation sweeps.

Every row of the ablation table of Ispas et al. (ICMI 2023, see PAPER.md
section 1) is a preset of recipe overrides, shipped as package data in
``speechbrain_mtmm/presets/ablation/<row>.yaml``, and every task variant
(multi-task, classes only, dimensions only) one in ``.../ablation/tasks/
<task>.yaml``. A cell of the table (row x task) is one sweep
(:mod:`.sweep`) in ``<output>/<row>/<task>/``;
overrides given on the command line win over both presets (e.g. to shrink
the models). All runs of all cells share one pool of ``--jobs`` workers,
then ``<output>/table.md`` (and ``table.json``) puts the paper's numbers
beside ours::

    mtmm table recipes/IEMOCAP/multimodal_emotion/hparams/iemocap.yaml \\
        [--rows masking bridge_tokens ...] [--tasks multi classes dims] \\
        --seeds 1 2 3 [--protocol speaker] [--folds ...] [--jobs N] \\
        [--output results/cv/ablation] --data_folder=/data/IEMOCAP ...

With ``--test_transcripts=[gold,asr,none]`` among the overrides every run is
also tested on ASR transcripts, and the table gains an "ours, ASR" column
per metric and the word error rate.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import os
from importlib import resources
from pathlib import Path

import yaml

from speechbrain_mtmm.atomic import write_json, write_text
from speechbrain_mtmm.experiments.aggregate import STD_DEFINITION
from speechbrain_mtmm.experiments.options import DEFAULT_SEEDS, ROWS, TASKS
from speechbrain_mtmm.experiments.reports import (
    NOT_TRAINED,
    NOT_TRAINED_NOTE,
    PAPER_COLUMNS,
    format_mean_std,
    format_score,
    markdown_table,
)
from speechbrain_mtmm.experiments.sweep import (
    plan_runs,
    report_failures,
    run_sweep_or_print,
    slurm_resources,
    summarize_sweep,
    sweep_lock,
    write_plan,
)
from speechbrain_mtmm.plain_yaml import read_plain_yaml
from speechbrain_mtmm.run_folder import TABLE_JSON, TABLE_MD
from speechbrain_mtmm.training.hparams import format_override

#: The presets, package data (also inside a wheel or a zip)
ABLATION_DIR = resources.files("speechbrain_mtmm") / "presets" / "ablation"
#: Published figures that are not comparable cell by cell, with a footnote
PUBLISHED = {
    ("mmer", "classes", "WA"): (
        "81.7†",
        "† MMER's published 4-class accuracy (81.7, Papers with Code), "
        "obtained with the checkpoint chosen on the test session and TTS "
        "voices of the test speakers; whether it is WA or UA is "
        "unconfirmed (its code swaps the two names). Not comparable.",
    ),
}


# PAPER.md section 1, as printed there (mean of 3 seeds, 10-fold speaker-
# independent): multi-task UAR, WAR (%), CCC-V, CCC-A; categorical-only WAR
# (%); dimensional-only CCC-V, CCC-A. The single-task rows stop at bridge
# tokens (None: not reported).
_PAPER_NUMBERS = {
    "roberta_no_fusion": (68.30, 66.31, 0.638, 0.673, 65.0, 0.620, 0.674),
    "deberta_no_fusion": (69.43, 67.22, 0.637, 0.674, 65.5, 0.617, 0.675),
    "self_attention": (73.92, 73.01, 0.737, 0.676, 72.9, 0.711, 0.687),
    "cross_attention": (74.68, 74.69, 0.738, 0.685, 73.6, 0.718, 0.686),
    "bridge_tokens": (75.71, 74.60, 0.748, 0.677, 73.05, 0.714, 0.698),
    "masking": (75.79, 74.38, 0.744, 0.679, None, None, None),
    # not rows of the paper: see PUBLISHED
    "mmer": (None,) * 7,
    "bridge_tokens_mmer_losses": (None,) * 7,
}


def _paper_cells(ua, wa, v, a, wa_classes, v_dims, a_dims):
    """One row of the paper's table per task; UAR/WAR as fractions."""
    return {
        "multi": {
            "UA": ua and ua / 100,
            "WA": wa and wa / 100,
            "CCC_valence": v,
            "CCC_arousal": a,
        },
        "classes": {"WA": wa_classes and wa_classes / 100},
        "dims": {"CCC_valence": v_dims, "CCC_arousal": a_dims},
    }


PAPER = {row: _paper_cells(*n) for row, n in _PAPER_NUMBERS.items()}


def load_preset(path):
    """The overrides of a preset file (plain YAML, no tags).

    Arguments
    ---------
    path : pathlib.Path or importlib.resources.abc.Traversable
        The preset.

    Returns
    -------
    dict

    Example
    -------
    >>> load_preset(ABLATION_DIR / "self_attention.yaml")["fusion_type"]
    'pooled_mean'
    """
    with path.open(encoding="utf-8") as fin:
        preset = yaml.safe_load(fin) or {}
    if not isinstance(preset, dict):
        raise ValueError(f"{path}: a preset is a mapping of recipe overrides")
    return preset


def cell_overrides(row, task, overrides=None, hparams_file=None):
    """The recipe overrides of one cell: row preset, task preset, then the
    command line's (the later win).

    A row preset may take some settings from another YAML of the recipe
    (``recipe_keys_from: mmer.yaml`` and the ``recipe_keys`` to take), so
    that a system with a recipe YAML of its own is described once.

    Arguments
    ---------
    row : str
        A preset name of :data:`ROWS`.
    task : str
        A key of :data:`TASKS`.
    overrides : dict, optional
        Command-line overrides (strings).
    hparams_file : str or path-like, optional
        The table's recipe YAML (its folder holds ``recipe_keys_from``).

    Returns
    -------
    dict
        Key -> override text.

    Example
    -------
    >>> cell = cell_overrides("roberta_no_fusion", "classes",
    ...                       {"text_source": "hashing"})
    >>> cell["text_source"], cell["refinement"], cell["selection_metrics"]
    ('hashing', 'False', '[UA]')
    """
    merged = load_preset(ABLATION_DIR / f"{row}.yaml")
    source = merged.pop("recipe_keys_from", None)
    keys = merged.pop("recipe_keys", [])
    if source is not None:
        path = Path(hparams_file or ".").parent / source
        if not path.is_file():
            raise ValueError(
                f"row {row} takes its settings from {path}, which is "
                "missing: give a recipe YAML whose folder holds it"
            )
        recipe = read_plain_yaml(path, resolve=False)
        merged = {**{key: recipe[key] for key in keys}, **merged}
    merged.update(load_preset(ABLATION_DIR / "tasks" / f"{task}.yaml"))
    merged = {key: format_override(value) for key, value in merged.items()}
    merged.update(overrides or {})
    return merged


def _ours(results, metric):
    if results is None or results["summary"]["all"] is None:
        return "–"
    if metric not in results["summary"]["all"]:
        return NOT_TRAINED
    return format_mean_std(metric, results["summary"]["all"][metric])


def task_table(task, rows, cells):
    """One task's table: paper and ours side by side per metric.

    Arguments
    ---------
    task : str
        A key of :data:`TASKS`.
    rows : sequence of str
        Row presets, in order.
    cells : dict
        ``(row, task)`` -> aggregated results (or None).

    Returns
    -------
    str
    """
    titles = dict(PAPER_COLUMNS)
    metrics = TASKS[task][1]
    # runs also tested on ASR transcripts (--test_transcripts=[gold,asr])
    asr = any(
        (cells[row, task] or {}).get("transcripts", {}).get("asr")
        for row in rows
    )
    header = ["configuration"]
    for metric in metrics:
        header += [f"{titles[metric]} paper", f"{titles[metric]} ours"]
        if asr:
            header.append(f"{titles[metric]} ours, ASR")
    if asr:
        header.append("WER %")
    lines = []
    for row in rows:
        label = dict(ROWS)[row]
        results = cells[row, task]
        cell = [f"[{label}]({row}/{task}/report.md)"]
        for metric in metrics:
            paper = format_score(metric, PAPER[row][task].get(metric))
            published = PUBLISHED.get((row, task, metric))
            cell += [
                published[0] if published else paper,
                _ours(results, metric),
            ]
            if asr:
                cell.append(_ours_asr(results, metric))
        if asr:
            wer = (results or {}).get("WER", {}).get("all")
            cell.append("–" if not wer else f"{wer['mean']:.1f}")
        lines.append(cell)
    table = markdown_table(header, lines)
    if any(NOT_TRAINED in line[1:] for line in lines):
        table += f"\n\n{NOT_TRAINED_NOTE}"
    return table


def _ours_asr(results, metric):
    summary = (results or {}).get("transcripts", {}).get("asr")
    if not summary:
        return "–"
    if metric not in summary:
        return NOT_TRAINED
    return format_mean_std(metric, summary[metric])


def table_json(cells):
    """Paper and ours per cell and metric (the content of table.json).

    Arguments
    ---------
    cells : dict
        ``(row, task)`` -> aggregated results (or None).

    Returns
    -------
    dict
        ``{row: {task: {metric: {"paper", "mean", "std_seeds",
        "std_folds"}}}}``; a metric of an untrained head has
        ``"trained": false`` and no values.
    """
    table = {}
    for (row, task), results in cells.items():
        entry = {}
        for metric in TASKS[task][1]:
            summary = results and results["summary"]["all"]
            entry[metric] = {"paper": PAPER[row][task].get(metric)}
            if summary and metric not in summary:
                entry[metric]["trained"] = False
                continue
            summary = summary and summary[metric]
            for key in ("mean", "std_seeds", "std_folds"):
                entry[metric][key] = summary[key] if summary else None
        table.setdefault(row, {})[task] = entry
    return table


def write_table(output, rows, tasks, cells, protocol, folds, seeds, overrides):
    """Writes ``table.md`` and ``table.json`` into the output folder.

    Arguments
    ---------
    output : pathlib.Path
        The table's folder.
    rows, tasks : sequence of str
        What was run.
    cells : dict
        ``(row, task)`` -> aggregated results (or None).
    protocol : str
        The protocol.
    folds : sequence of int or None
        The folds (None: all).
    seeds : sequence of int
        The seeds.
    overrides : dict
        Command-line overrides.

    Returns
    -------
    pathlib.Path
        ``table.md``.
    """
    folds = " ".join(map(str, folds)) if folds else "all"
    given = " ".join(f"--{k}={v}" for k, v in overrides.items()) or "none"
    lines = [
        "# Ablation table: the paper beside ours",
        "",
        "Paper: Ispas et al. (ICMI 2023), mean of 3 seeds, 10-fold "
        "speaker-independent, HuBERT-large + DeBERTaV3-large, 20 epochs; "
        "UAR/WAR in %. The single-task rows of the paper stop at bridge "
        "tokens (– : not reported). The MMER rows are not in the paper: "
        "MMER (Ghosh et al., Interspeech 2023) on this protocol, and the "
        "full system with MMER's auxiliary losses.",
        "",
        f"Ours: protocol `{protocol}`, folds {folds}, seeds "
        f"{' '.join(map(str, seeds))}; mean ± std over seeds "
        f"({STD_DEFINITION}). Command-line overrides on top of the presets: "
        f"`{given}`.",
    ]
    partial = [
        f"{row}/{task} ({len(results['missing'])} missing)"
        for (row, task), results in cells.items()
        if results is not None and results.get("missing")
    ]
    if partial:
        lines += [
            "",
            "**Incomplete cells** (their means leave out the missing runs; "
            "see each cell's report.md): " + ", ".join(partial),
        ]
    for task in tasks:
        lines += ["", f"## {TASKS[task][0]}", "", task_table(task, rows, cells)]
    notes = [
        note
        for (row, task, _), (_, note) in PUBLISHED.items()
        if row in rows and task in tasks
    ]
    if notes:
        lines += ["", *notes]
    path = output / TABLE_MD
    write_text(path, "\n".join(lines) + "\n")
    write_json(output / TABLE_JSON, table_json(cells))
    return path


def run_table(
    hparams_file,
    rows=None,
    tasks=("multi",),
    protocol="speaker",
    seeds=DEFAULT_SEEDS,
    folds=None,
    jobs=1,
    output=None,
    overrides=None,
    print_commands=False,
    launcher="local",
    slurm=None,
):
    """Runs the cells of the ablation table; writes ``table.md``.

    Arguments
    ---------
    hparams_file : str or os.PathLike
        The recipe YAML.
    rows : sequence of str, optional
        Row presets (default: all six, in the paper's order).
    tasks : sequence of str
        Keys of :data:`TASKS`.
    protocol : str
        ``"speaker"`` or ``"session"``.
    seeds : sequence of int
        Seeds per fold.
    folds : sequence of int, optional
        Folds (default: all).
    jobs : int
        Runs at a time (one pool for all cells).
    output : str or os.PathLike, optional
        The table folder (default ``results/cv/ablation``).
    overrides : dict, optional
        Overrides on top of the presets.
    print_commands : bool
        Print the commands of the incomplete runs and run nothing.
    launcher : str
        ``"local"`` or ``"slurm"`` (:func:`.sweep.run_cv`).
    slurm : dict, optional
        The SLURM options (:func:`.sweep.run_cv`).

    Returns
    -------
    int
        0 when every run is complete (or only printing), 1 otherwise.
    """
    names = [name for name, _ in ROWS]
    rows = [name for name in names if rows is None or name in rows]
    overrides = overrides or {}
    output = Path(output or os.path.join("results", "cv", "ablation"))
    output = output.resolve()
    cluster = slurm_resources(launcher, slurm)
    sweeps = {
        (row, task): plan_runs(
            hparams_file,
            protocol,
            folds,
            seeds,
            output / row / task,
            cell_overrides(row, task, overrides, hparams_file),
        )
        for row in rows
        for task in tasks
    }
    runs = [run for sweep in sweeps.values() for run in sweep]
    with sweep_lock(output, print_commands):
        failed = run_sweep_or_print(runs, jobs, print_commands, cluster, output)
        if failed is None:
            return 0
        for (row, task), sweep in sweeps.items():
            write_plan(output / row / task, sweep)
        cells = {
            (row, task): summarize_sweep(
                output / row / task, protocol, f"{row} ({task})"
            )
            for row, task in sweeps
        }
        table = write_table(
            output, rows, tasks, cells, protocol, folds, seeds, overrides
        )
    print(f"table: {table}")
    return report_failures(failed)
