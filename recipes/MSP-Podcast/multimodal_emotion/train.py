#!/usr/bin/env python3
"""Recipe: multi-task, multi-modal speech emotion recognition on MSP-Podcast.

The model of Ispas et al. (ICMI 2023), as in the IEMOCAP recipe (the Brain
is speechbrain_mtmm.training.brain, shared by both), trained for the two
tasks of the MSP-Podcast challenges at once: the 8 emotion classes (A S H U
F D C N) and arousal, valence and dominance on the release's 1-7 scale.

* Data: the release's official split (`mtmm prepare msp-podcast`): Train,
  Development, Test1 and Test2. Utterances labelled O (other) or X (no
  agreement) have no class and train and test the dimensions only.
  Utterances without a transcript read an empty text.
* Objectives: class-weighted cross-entropy (weights N / (8 n_c) from the
  Train counts, as the challenge baseline) and 1 - CCC for each dimension.
* Selection: the checkpoint with the best mean of macro-F1 and mean CCC on
  Development.
* Test: Test1 (the headline, also audio-only: Test3 has no transcripts)
  and Test2, each with macro-F1, micro-F1, UA and CCC for arousal, valence
  and dominance.

To run:
    python train.py hparams/msp_podcast.yaml --data_folder=/data/MSP-PODCAST

Outputs in <output_folder> (speechbrain_mtmm.run_folder): train_log.txt,
save/, test_results.json (Test1, and every test set under "test_sets"),
test_predictions.jsonl (Test1) and test2_predictions.jsonl. Submission
files for Test3: export the run (`mtmm export`), then
    mtmm predict --model <export> <release>/Audios/*test3* \
        --format msp-podcast --output submission/

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import sys

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process

from speechbrain_mtmm.data.msp_podcast import PROTOCOL, prepare_msp_podcast
from speechbrain_mtmm.run_folder import write_test_outputs, write_test_set
from speechbrain_mtmm.training.brain import build_brain, fit_and_test
from speechbrain_mtmm.training.recipe import (
    end_run,
    fold_datasets,
    prepare_corpus,
    prepare_inputs,
    run_recipe,
    set_class_weights,
    start_run,
)
from speechbrain_mtmm.training.transcripts import (
    asr_word_error_rates,
    with_conditions,
)

# our name of each test set -> the release's
TEST_SETS = {"test": "Test1", "test2": "Test2"}


def main(argv):
    """Prepares the release, trains on Train, selects on Development, tests
    on Test1 and Test2."""
    # the challenge's primary metrics on Development select the checkpoint
    hparams_file, run_opts, overrides, hparams = start_run(argv, {PROTOCOL: 1})
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    # Manifest and the official split (header-only durations), shared
    corpus = prepare_corpus(
        hparams,
        prepare_msp_podcast,
        protocols={PROTOCOL: 1},
        skip_missing=hparams["skip_missing"],
    )
    cached, conditions, asr = prepare_inputs(hparams, run_opts, corpus)
    heard = asr if hparams["transcripts"] == "asr" else None
    datasets = fold_datasets(
        hparams,
        cached,
        characters=hparams["w_ctc"] > 0,
        transcripts={"train": heard, "valid": heard},
        extra_tests=("test2",),
    )
    if "asr" in conditions:
        read_asr = fold_datasets(
            hparams,
            cached,
            transcripts={"test": asr, "test2": asr},
            extra_tests=("test2",),
        )
    # Test1 in every condition (the first is the headline: Test3 has no
    # transcripts, so "none" tells what to expect there), Test2 in the first
    tests = [
        (
            TEST_SETS[name],
            condition,
            (read_asr if condition == "asr" else datasets)[name],
        )
        for name in TEST_SETS
        for condition in (conditions if name == "test" else conditions[:1])
    ]
    # cross-entropy weighted by the Train counts (class_weights: balanced)
    set_class_weights(hparams, datasets["train"])

    brain = build_brain(hparams, run_opts, cached)
    tested = fit_and_test(
        brain, hparams, datasets["train"], datasets["valid"], tests
    )
    if if_main_process():
        wer = asr_word_error_rates(datasets["test"].data, asr) if asr else None
        test1 = with_conditions(
            {c: r for (s, c), (r, _) in tested.items() if s == "Test1"}, wer
        )
        test1["corpus"] = corpus["corpus"]
        test1["test_sets"] = {
            s: r for (s, c), (r, _) in tested.items() if c == conditions[0]
        }
        write_test_set(
            hparams["output_folder"], "test2", tested["Test2", conditions[0]][1]
        )
        write_test_outputs(
            hparams["output_folder"], test1, tested["Test1", conditions[0]][1]
        )
    end_run()


if __name__ == "__main__":
    run_recipe(main, sys.argv[1:])
