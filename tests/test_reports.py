"""Aggregation of cross-validation runs and the report, on fabricated runs.

No training: the run folders are written by hand, so every expected number
below is a hand calculation.
"""

import csv
import json
import math

import pytest

from speechbrain_mtmm.experiments.aggregate import aggregate
from speechbrain_mtmm.experiments.reports import PLOTS, write_report
from speechbrain_mtmm.run_folder import read_train_log as parse_train_log
from speechbrain_mtmm.run_folder import write_run_config

LABELS = ["neu", "hap", "sad", "ang"]
# (fold, seed) -> (true, predicted) pairs of the improvised and the scripted
# utterances of that run's test speaker
PAIRS = {
    (1, 1): (
        [("neu", "neu"), ("hap", "neu")],
        [("sad", "sad"), ("ang", "ang")],
    ),
    (2, 1): (
        [("neu", "neu"), ("hap", "hap"), ("sad", "sad")],
        [("ang", "neu")],
    ),
    (1, 2): (
        [("neu", "hap"), ("hap", "neu")],
        [("sad", "sad"), ("ang", "sad")],
    ),
    (2, 2): (
        [("neu", "neu"), ("hap", "hap"), ("sad", "neu")],
        [("ang", "ang")],
    ),
}
# the whole-test-set scores the recipe wrote (test_results.json)
WA = {(1, 1): 0.5, (2, 1): 0.7, (1, 2): 0.6, (2, 2): 0.8}
SPEAKERS = {1: "Ses01F", 2: "Ses01M"}
TRAIN_LOG = (
    "epoch: 1, masked: none - train loss: 1.20 - valid loss: 1.10, "
    "valid WA: 3.00e-01, valid UA: 2.50e-01, valid macro_F1: 1.00e-01, "
    "valid CCC_valence: 1.00e-01, valid CCC_arousal: 2.00e-01, "
    "valid CCC_mean: 1.50e-01, valid score: 1.80e-01\n"
    "epoch: 2, masked: text - train loss: 1.00 - valid loss: 9.00e-01, "
    "valid WA: 4.00e-01, valid UA: 3.50e-01, valid macro_F1: 2.00e-01, "
    "valid CCC_valence: 2.00e-01, valid CCC_arousal: 3.00e-01, "
    "valid CCC_mean: 2.50e-01, valid score: 2.80e-01\n"
    "Epoch loaded: 2 - test loss: 9.50e-01, test WA: 5.00e-01\n"
)


def prediction_rows(fold, seed):
    improvised, scripted = PAIRS[fold, seed]
    rows = []
    for index, (emo, pred) in enumerate(improvised + scripted):
        valence = 1.0 + index
        rows.append(
            {
                "id": f"{SPEAKERS[fold]}_{index:03d}",
                "emo": emo,
                "pred_emo": pred,
                "probs": {label: 0.25 for label in LABELS},
                "valence": valence,
                "pred_valence": valence + 0.1 * seed,
                "arousal": 5.0 - index,
                "pred_arousal": 4.8 - index,
                "speaker": SPEAKERS[fold],
                "improvised": index < len(improvised),
            }
        )
    return rows


def write_run(folder, fold, seed, corpus=None, parts=True, dominance=None):
    """One run folder; ``corpus`` as the recipes write it, ``parts=False``
    for a corpus without improvised/scripted parts, ``dominance`` a CCC."""
    rows = prediction_rows(fold, seed)
    if not parts:
        rows = [{k: v for k, v in r.items() if k != "improvised"} for r in rows]
    confusion = [[0] * len(LABELS) for _ in LABELS]
    for row in rows:
        confusion[LABELS.index(row["emo"])][LABELS.index(row["pred_emo"])] += 1
    results = {
        "loss": 1.0,
        "WA": WA[fold, seed],
        "UA": WA[fold, seed] - 0.1,
        "macro_F1": 0.3,
        "CCC_valence": 0.1 * fold + 0.01 * seed,
        "CCC_arousal": 0.5,
        "CCC_mean": 0.4,
        "confusion": confusion,
        "labels": LABELS,
        "recall": {},
        "n": len(rows),
    }
    if corpus is not None:
        results["corpus"] = corpus
    if dominance is not None:
        results["CCC_dominance"] = dominance
    run = folder / f"speaker_fold{fold}" / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "test_results.json").write_text(json.dumps(results))
    with open(run / "test_predictions.jsonl", "w") as fout:
        for row in rows:
            fout.write(json.dumps(row) + "\n")
    (run / "train_log.txt").write_text(TRAIN_LOG)


@pytest.fixture
def sweep(tmp_path):
    for fold, seed in PAIRS:
        write_run(tmp_path, fold, seed)
    return tmp_path


def test_mean_and_stds_match_a_hand_calculation(sweep):
    wa = aggregate(sweep, "speaker")["summary"]["all"]["WA"]
    # per seed, mean over folds: seed 1 (0.5 + 0.7) / 2, seed 2 (0.6 + 0.8) / 2
    assert wa["per_seed"] == pytest.approx({"1": 0.6, "2": 0.7})
    assert wa["mean"] == pytest.approx(0.65)
    # sample std (n - 1) of the two seed means
    assert wa["std_seeds"] == pytest.approx(math.sqrt(2 * 0.05**2 / 1))
    # fold means over seeds: 0.55 and 0.75
    assert wa["per_fold"] == pytest.approx({"1": 0.55, "2": 0.75})
    assert wa["std_folds"] == pytest.approx(math.sqrt(2 * 0.1**2 / 1))


def test_single_seed_has_an_undefined_seed_std(tmp_path):
    write_run(tmp_path, 1, 1)
    write_run(tmp_path, 2, 1)
    wa = aggregate(tmp_path, "speaker")["summary"]["all"]["WA"]
    assert wa["mean"] == pytest.approx(0.6)
    assert wa["std_seeds"] is None
    assert wa["std_folds"] == pytest.approx(math.sqrt(2 * 0.1**2))


def test_improvised_and_scripted_utterances_are_counted_apart(sweep):
    results = aggregate(sweep, "speaker")
    counts = {
        (run["fold"], run["seed"]): (
            run["improvised"]["n"],
            run["scripted"]["n"],
            run["all"]["n"],
        )
        for run in results["runs"]
    }
    assert counts == {
        (1, 1): (2, 2, 4),
        (2, 1): (3, 1, 4),
        (1, 2): (2, 2, 4),
        (2, 2): (3, 1, 4),
    }
    assert results["summary"]["improvised"]["n"] == 10
    assert results["summary"]["scripted"]["n"] == 6


def test_improvised_and_scripted_scores_are_recomputed_from_predictions(
    sweep,
):
    summary = aggregate(sweep, "speaker")["summary"]
    # improvised accuracy per run: 1/2, 3/3 (seed 1); 0/2, 2/3 (seed 2)
    improvised = summary["improvised"]["WA"]
    seed_means = [(1 / 2 + 1) / 2, (0 + 2 / 3) / 2]
    assert improvised["mean"] == pytest.approx(sum(seed_means) / 2)
    assert improvised["std_seeds"] == pytest.approx(
        abs(seed_means[0] - seed_means[1]) / math.sqrt(2)
    )
    # scripted accuracy per run: 2/2, 0/1 (seed 1); 1/2, 1/1 (seed 2)
    assert summary["scripted"]["WA"]["mean"] == pytest.approx((0.5 + 0.75) / 2)
    # scripted UA of fold 1 seed 2: sad 1/1, ang 0/1 over present classes
    run = aggregate(sweep, "speaker")["runs"][1]
    assert (run["fold"], run["seed"]) == (1, 2)
    assert run["scripted"]["UA"] == pytest.approx(0.5)


def test_pooled_confusion_sums_every_run(sweep):
    results = aggregate(sweep, "speaker")
    pooled = results["confusion"]
    hap, neu, sad = (LABELS.index(x) for x in ("hap", "neu", "sad"))
    assert sum(map(sum, pooled)) == 16
    assert pooled[hap][neu] == 2  # fold 1, both seeds
    assert pooled[neu][neu] == 3  # all runs but fold 1 seed 2
    assert pooled[sad][sad] == 3  # all runs but fold 2 seed 2


def test_results_files_hold_runs_means_and_stds(sweep):
    aggregate(sweep, "speaker")
    saved = json.loads((sweep / "cv_results.json").read_text())
    assert saved["folds"] == [1, 2] and saved["seeds"] == [1, 2]
    assert "sample std" in saved["std"]
    with open(sweep / "cv_results.csv") as fin:
        rows = list(csv.DictReader(fin))
    kinds = [(r["kind"], r["subset"]) for r in rows]
    assert kinds.count(("run", "all")) == 4
    assert kinds.count(("seed_mean", "all")) == 2
    mean = rows[kinds.index(("mean", "all"))]
    assert float(mean["WA"]) == pytest.approx(0.65)
    assert float(rows[kinds.index(("std_seeds", "all"))]["WA"]) > 0


def test_incomplete_runs_are_listed_not_counted(sweep):
    (sweep / "speaker_fold3" / "seed1").mkdir(parents=True)
    results = aggregate(sweep, "speaker")
    assert results["incomplete"] == ["speaker_fold3/seed1"]
    assert results["folds"] == [1, 2]


def test_report_and_plots_are_written(sweep):
    report = write_report(sweep, aggregate(sweep, "speaker"), "toy")
    text = report.read_text()
    assert "| configuration | UAR | WAR | CCC-V | CCC-A |" in text
    # WA 65.00 +- 7.07 (percent), per-fold table names the test speakers
    assert "65.00 ± 7.07" in text
    assert "| 2 | Ses01M | 4 | 2 |" in text
    assert "| improvised | 10 |" in text and "| scripted | 6 |" in text
    for png in PLOTS.values():
        assert f"]({png})" in text
        assert (sweep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_says_when_a_single_seed_has_no_std(tmp_path):
    write_run(tmp_path, 1, 1)
    text = write_report(tmp_path, aggregate(tmp_path, "speaker")).read_text()
    assert "± n/a" in text and "single seed" in text


def test_training_curves_keep_the_last_line_of_a_resumed_epoch(tmp_path):
    log = tmp_path / "train_log.txt"
    resumed = TRAIN_LOG.replace("train loss: 1.00", "train loss: 0.80")
    log.write_text(TRAIN_LOG.split("Epoch loaded")[0] + resumed)
    epochs = parse_train_log(log)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[1]["train_loss"] == 0.8
    assert epochs[1]["valid_CCC_arousal"] == 0.3


def test_runs_trained_with_different_settings_are_not_aggregated(tmp_path):
    for fold, seed in WA:
        write_run(tmp_path, fold, seed)
        write_run_config(
            tmp_path / f"speaker_fold{fold}" / f"seed{seed}",
            {"fold": fold, "seed": seed, "lr": 0.1 if fold == 1 else 0.2},
        )
    with pytest.raises(ValueError, match=r"lr: 0.1 -> 0.2"):
        aggregate(tmp_path, "speaker")


def test_planned_runs_without_results_are_named_in_the_report(tmp_path):
    for fold, seed in [(1, 1), (2, 1), (1, 2)]:
        write_run(tmp_path, fold, seed)
    planned = [f"speaker_fold{f}/seed{s}" for f in (1, 2) for s in (1, 2)]
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": planned}))
    results = aggregate(tmp_path, "speaker")
    assert results["missing"] == ["speaker_fold2/seed2"]
    report = write_report(tmp_path, results).read_text()
    assert "grid is incomplete**: 1 planned run(s)" in report
    assert "speaker_fold2/seed2" in report


def test_msp_podcast_report_leads_with_macro_f1_and_all_three_cccs(tmp_path):
    for fold, seed in WA:
        write_run(tmp_path, fold, seed, "msp-podcast", False, 0.25)
    text = write_report(tmp_path, aggregate(tmp_path, "speaker")).read_text()
    headline = text.split("## Results")[1].split("\n\n")[1]
    assert headline.splitlines()[0] == (
        "| configuration | macro-F1 | CCC-A | CCC-V | CCC-D |"
    )
    # macro-F1 .3 in every run (in %), CCC-D .25 in every run
    assert "| 30.00 ± 0.00 | .500 ± .000 |" in headline
    assert "| .250 ± .000 |" in headline


def test_a_corpus_without_improvised_or_scripted_parts_has_no_such_table(
    tmp_path,
):
    for fold, seed in WA:
        write_run(tmp_path, fold, seed, "csv", parts=False)
    text = write_report(tmp_path, aggregate(tmp_path, "speaker")).read_text()
    assert "| configuration | UAR | WAR | macro-F1 | CCC-V | CCC-A |" in text
    assert "Improvised vs scripted" not in text


def test_iemocap_report_keeps_the_paper_headline_and_its_parts(sweep):
    for fold, seed in WA:  # the recipe names its corpus
        path = sweep / f"speaker_fold{fold}" / f"seed{seed}"
        results = json.loads((path / "test_results.json").read_text())
        results["corpus"] = "iemocap"
        (path / "test_results.json").write_text(json.dumps(results))
    text = write_report(sweep, aggregate(sweep, "speaker")).read_text()
    assert "| configuration | UAR | WAR | CCC-V | CCC-A |" in text
    assert "## Improvised vs scripted" in text
