"""Cross-validation wall time with and without the feature cache.

Runs k folds x E epochs of the real recipe on the synthetic IEMOCAP corpus
with frozen tiny HuggingFace encoders (HuBERT + DeBERTa-v2, random weights;
``--encoders base|large`` builds models of the published sizes with random
weights instead), once uncached (the encoders run on every batch of every
epoch) and once with ``feature_cache: True`` (fold 1 computes the features
of the whole corpus, every later fold and epoch reads them). Same seed and
data order in both: the test metrics must agree up to float16 noise, which
is printed as a check.

The runs go through the project's CV runner, ``mtmm cv``, one process per
fold as users run it (interpreter start-up, model loading, checkpoints,
validation, test and the final report included); ``--runner recipe`` runs
the recipe's ``train.py`` fold by fold instead (no report: what
benchmarks/gpu.sh uses, the GPU machine has no matplotlib). Also printed:
the bytes of one checkpoint of each mode beside those of the whole model
(what every checkpoint held before frozen encoders were left out).

    python benchmarks/cache_cv.py --quick          # 2 folds x 2 epochs
    python benchmarks/cache_cv.py                  # 10 folds x 10 epochs
    python benchmarks/cache_cv.py --quick --encoders base --threads 1

Prints the wall time of each mode (fold 1, which builds the cache, apart),
the time per fold and the ratios.
"""

import argparse
import contextlib
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import torch

from speechbrain_mtmm.data.corpora import CORPORA
from speechbrain_mtmm.data.iemocap import prepare_iemocap
from speechbrain_mtmm.data.synthetic import (
    generate_synthetic_iemocap,
)
from speechbrain_mtmm.run_folder import read_test_results, sweep_run_name
from speechbrain_mtmm.testing.recipes import recipe_command

METRICS = ("WA", "UA", "CCC_valence", "CCC_arousal")
# With paper-size encoders the model has the paper's width too (the recipe
# YAML's values, instead of those of tiny_overrides.yaml)
PAPER_WIDTH = {
    "d_model": 1024,
    "n_heads": 32,
    "refinement_ffn": 2048,
    "bridge_tokens": 30,
    "batch_size": 16,
    "lr": 0.00003,
    "max_audio_seconds": 20.0,
}


def run_cv(folds, out, base_command, threads):
    """Folds through ``mtmm cv`` (a process each)."""
    overrides = base_command[3:]
    command = [
        sys.executable,
        "-m",
        "speechbrain_mtmm",
        "cv",
        str(common.RECIPE / "hparams" / "iemocap.yaml"),
        "--protocol=speaker",
        "--seeds",
        "1",
        "--folds",
        *map(str, folds),
        "--jobs=1",
        f"--output={out}",
        *overrides,
    ]
    env = dict(os.environ, PYTHONPATH=str(common.REPO))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"the CV runner failed:\n{result.stderr[-4000:]}")


def run_recipe_folds(folds, out, base_command, threads):
    """Folds through the recipe's ``train.py`` (a process each)."""
    env = dict(os.environ, PYTHONPATH=str(common.REPO))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    for fold in folds:
        folder = out / sweep_run_name("speaker", fold, 1)
        command = [
            *base_command,
            f"--fold={fold}",
            f"--output_folder={folder}",
            "--noprogressbar",
        ]
        result = subprocess.run(
            command, cwd=common.RECIPE, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            sys.exit(f"fold {fold} failed:\n{result.stderr[-4000:]}")


def checkpoint_mb(out):
    """Size of the newest checkpoint's model file(s) of a mode, in MB."""
    saved = sorted(out.glob("speaker_fold1/seed1/save/CKPT+*/system.ckpt"))
    return saved[-1].stat().st_size / 2**20 if saved else float("nan")


STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - ")
# log messages that end a phase of a fold (first match), in order
MARKS = [
    ("run folder, env.log", "speechbrain.utils.superpowers"),
    ("corpus manifest", "IEMOCAP already prepared"),
    ("feature cache (fingerprints)", "Feature cache "),
    ("data + brain set-up (fold 1: + cache build)", "Going into epoch 1"),
]


def log_phases(folder):
    """Seconds per phase of one run, from the timestamps of its log.txt:
    start-up (the recipe's "Start-up" line), the set-up marks above, then
    per epoch training + validation, checkpoint saving, and the test."""
    lines = []
    for line in (folder / "log.txt").read_text().splitlines():
        match = STAMP.match(line)
        if match:
            when = datetime.datetime.strptime(
                match.group(1), "%Y-%m-%d %H:%M:%S,%f"
            ).timestamp()
            lines.append((when, line))
    phases = {}
    start = None
    for when, line in lines:
        found = re.search(
            r"Start-up: ([\d.]+) s interpreter and imports, ([\d.]+) s "
            r"hyperparameters and model; process age ([\d.]+) s",
            line,
        )
        if found:
            imports, built, age = map(float, found.groups())
            start = when - age
            phases["start-up: interpreter + imports"] = imports
            phases["start-up: YAML, model + encoders built"] = built
            phases["start-up: checks, run folder"] = age - imports - built
            last = when
    if start is None:  # an older recipe: from the runner's stamp (1 s)
        stamp = (folder / "stdout.log").read_text().split(": ", 1)[0][2:]
        start = datetime.datetime.fromisoformat(stamp).timestamp()
        last = lines[0][0]
        phases["start-up, all (not logged; +-1 s)"] = last - start
    for name, needle in MARKS:
        hits = [w for w, line in lines if needle in line and w >= last]
        if hits:
            # the cache logs a line per modality: the phase ends at the last
            hit = hits[-1 if needle == "Feature cache " else 0]
            phases[name] = hit - last
            last = hit
    saves = 0.0
    for _, line in lines:
        if "Saved an end-of-epoch checkpoint" in line:
            saves += float(re.search(r", ([\d.]+) s\)", line).group(1))
    test = [w for w, line in lines if "Loading a checkpoint" in line]
    test_start = test[0] if test else lines[-1][0]
    epochs = test_start - last - saves
    phases["epochs: training + validation"] = epochs
    phases["epochs: checkpoint saves"] = saves
    end = (folder / "test_results.json").stat().st_mtime
    phases["test (+ results written)"] = end - test_start
    phases["total (process start to results)"] = end - start
    return phases


def print_phases(out, folds, walls):
    """The phases of fold 1 and the mean of the later folds; what the
    runner adds (its start-up, the report) is the wall time of each call
    of ``mtmm cv`` less its folds'."""
    runs = [
        log_phases(out / sweep_run_name("speaker", k, 1))
        for k in range(1, folds + 1)
    ]
    total = "total (process start to results)"
    for run, wall in zip(
        [runs[:1], runs[1:]] if len(runs) > 1 else [runs], walls
    ):
        extra = (wall - sum(r[total] for r in run)) / len(run)
        for r in run:
            r["mtmm cv runner (start-up, report), per fold"] = extra
    names = list(runs[-1])
    later = runs[1:] or runs
    print(f"  {'phase':44s}{'fold 1':>9s}{'later (mean)':>14s}")
    for name in names:
        first = runs[0].get(name, float("nan"))
        mean = sum(r.get(name, float("nan")) for r in later) / len(later)
        print(f"  {name:44s}{first:8.2f}s{mean:13.2f}s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 x 2")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--size", default="tiny", help="synthetic corpus size (tiny|small)"
    )
    parser.add_argument(
        "--encoders",
        default="tiny",
        choices=["tiny", "base", "large"],
        help="tiny random models, or base/large-sized random models",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", default=None, help="work folder (kept)")
    parser.add_argument(
        "--runner",
        default="cv",
        choices=["cv", "recipe"],
        help="mtmm cv (default) or train.py per fold",
    )
    parser.add_argument(
        "--modes",
        default="uncached,cached",
        help="which sweeps to run (uncached,cached; cached alone: its "
        "fixed costs)",
    )
    parser.add_argument(
        "--keep-cache",
        action="store_true",
        help="keep the work folder's feature cache (fold 1 then reads it "
        "instead of building it)",
    )
    parser.add_argument(
        "--runs", default="runs", help="run folders' parent in --work"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda:0")
    parser.add_argument(
        "--precision", default="fp32", help="fp32, bf16 (recipe option)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.folds, args.epochs = 2, 2
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(args.work or tempfile.mkdtemp(prefix="cache_cv_"))
    corpus, prepared = work / "corpus", work / "prepared"
    if not (corpus / "IEMOCAP_full_release").exists():
        generate_synthetic_iemocap(
            corpus,
            seed=0,
            utterances_per_dialog=CORPORA["iemocap"].size(args.size),
        )
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        prepare_iemocap(corpus / "IEMOCAP_full_release", prepared)
    texts = common.texts_of(prepared)
    models = common.encoders(work / "models", texts, args.encoders)
    if not args.keep_cache:
        shutil.rmtree(prepared / "feature_cache", ignore_errors=True)
    n_utts = len(texts)

    print(
        f"cache_cv: {args.folds} folds x {args.epochs} epochs, synthetic "
        f"corpus ({n_utts} utterances), {args.encoders} HuBERT + DeBERTa "
        "(random weights, frozen), through "
        + ("train.py per fold" if args.runner == "recipe" else "mtmm cv")
    )
    print(f"machine: {common.machine()}")
    times, results = {}, {}
    modes = args.modes.split(",")
    for cache in (False, True):
        mode = "cached" if cache else "uncached"
        if mode not in modes:
            continue
        out = work / args.runs / mode
        shutil.rmtree(out, ignore_errors=True)
        base = recipe_command(
            common.RECIPE,
            corpus / "IEMOCAP_full_release",
            prepared,
            out,
            *models,
            {
                "number_of_epochs": args.epochs,
                "freeze_policy": "frozen",
                "feature_cache": cache,
                "device": args.device,
                **(PAPER_WIDTH if args.encoders == "large" else {}),
            },
        )
        # each fold gets its own output folder (set by the runner)
        base = [a for a in base if not a.startswith("--output_folder=")]
        base.append(f"--precision={args.precision}")
        times[mode] = []
        # fold 1 alone (it builds the cache in cached mode), then the rest
        for folds in ([1], list(range(2, args.folds + 1))):
            if not folds:
                continue
            start = time.perf_counter()
            runner = run_recipe_folds if args.runner == "recipe" else run_cv
            runner(folds, out, base, args.threads)
            times[mode].append(time.perf_counter() - start)
            print(
                f"  {mode:8s} folds {folds[0]}-{folds[-1]}: "
                f"{times[mode][-1]:7.1f} s",
                flush=True,
            )
        results[mode] = [
            read_test_results(out / sweep_run_name("speaker", k, 1))
            for k in range(1, args.folds + 1)
        ]

    for mode in times:
        print(f"\n{mode}: where a fold's time goes (from its log.txt)")
        print_phases(work / args.runs / mode, args.folds, times[mode])
    print(f"\n{'mode':10s}{'total':>10s}{'fold 1':>10s}{'later folds':>13s}")
    for mode, values in times.items():
        later = values[1] / (args.folds - 1) if len(values) > 1 else 0.0
        print(
            f"{mode:10s}{sum(values):9.1f}s{values[0]:9.1f}s{later:10.1f}s/fold"
        )
    if args.folds < 10 and args.folds > 1:
        print(
            "projected to 10 folds (fold 1 + 9 x the mean later fold; "
            "PROJECTED, not measured):"
        )
        for mode, values in times.items():
            later = values[1] / (args.folds - 1)
            print(f"  {mode:10s}{values[0] + 9 * later:9.1f}s")
        if len(times) == 2:
            projected = {
                mode: values[0] + 9 * values[1] / (args.folds - 1)
                for mode, values in times.items()
            }
            print(
                "  projected speed-up, 10 folds: "
                f"{projected['uncached'] / projected['cached']:.1f}x"
            )
    if len(times) < 2:
        print(f"work folder: {work}")
        return
    ratio = sum(times["uncached"]) / sum(times["cached"])
    line = f"speed-up, total wall time: {ratio:.1f}x"
    if args.folds > 1:
        line += (
            f"; per fold once the cache exists: "
            f"{times['uncached'][1] / times['cached'][1]:.1f}x"
        )
    print(line)
    diff = max(
        abs(u[m] - c[m])
        for u, c in zip(results["uncached"], results["cached"])
        for m in METRICS
    )
    print(f"max |test metric difference| cached vs uncached: {diff:.4f}")
    whole = (
        sum(
            v.numel() * v.element_size()
            for v in common.load_hparams(
                {
                    "data_folder": str(corpus),
                    "audio_source": models[0],
                    "text_source": models[1],
                    **(
                        common.tiny_overrides()
                        if args.encoders == "tiny"
                        else {}
                    ),
                }
            )["system"]
            .state_dict()
            .values()
        )
        / 2**20
    )
    print(
        "checkpoint system.ckpt: uncached "
        f"{checkpoint_mb(work / args.runs / 'uncached'):.1f} MB, cached "
        f"{checkpoint_mb(work / args.runs / 'cached'):.1f} MB; the whole model "
        f"(every checkpoint before frozen encoders were left out): "
        f"{whole:.1f} MB"
    )
    print(f"work folder: {work}")


if __name__ == "__main__":
    sys.exit(main())
