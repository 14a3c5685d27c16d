#!/usr/bin/env python3
"""Recipe: multi-task, multi-modal speech emotion recognition on IEMOCAP.

Ispas et al. (ICMI 2023): the audio (HuBERT-large) and the gold transcript
(DeBERTaV3-large) of an utterance are encoded, each sequence is refined by
its own self-attention module, learnable bridge tokens gather both
modalities by cross-attention, and the pooled vector feeds a classifier
(4 emotion classes) and a regressor (valence, arousal in [0, 1]). The loss
is ``w_ce*CE + w_v*(1-CCC_v) + w_a*(1-CCC_a)``; Random Modality Masking
hides one modality for some epochs and freezes its encoder meanwhile.

hparams/mmer.yaml is MMER (Ghosh et al., Interspeech 2023) with the same
script: its gated fusion (fusion_type: mmer) and its auxiliary objectives,
w_ctc * CTC (characters from the audio frames) + w_supcon * supervised
contrastive + w_aug * contrastive between an utterance and an augmented
copy of its audio, which any fusion can use.

One fold of a speaker-independent protocol is trained and tested per run:
the checkpoint kept for testing is chosen on the validation speaker only.
The Brain (forward pass, objectives, Random Modality Masking, stage ends)
is speechbrain_mtmm.training.brain, shared with the MSP-Podcast recipe.

Any corpus prepared by `mtmm prepare csv` trains with this recipe too:
    python train.py hparams/iemocap.yaml --data_folder=<prepared folder>
(labels, rating scale and protocol are the corpus' own; see README.md).

To run:
    python train.py hparams/iemocap.yaml \
        --data_folder=/data/IEMOCAP_full_release

Useful overrides (see README.md): --protocol=session --fold=3 --seed=2,
--audio_source=microsoft/wavlm-large --text_source=roberta-large,
--fusion_type=cross_attention --refinement=False --modality_masking=False,
--w_valence=0 --w_arousal=0 (classes only).

Outputs in <output_folder> (speechbrain_mtmm.run_folder): train_log.txt,
save/ (checkpoints), test_results.json and test_predictions.jsonl.

Speed (see benchmarks/README.md): --feature_cache=True with
--freeze_policy=frozen computes the encoder features once into
<prepare_folder>/feature_cache and trains from them (all folds and seeds
share it); --dynamic_batching=True batches by duration; --precision=bf16
(or fp16 on GPU) trains with mixed precision; several GPUs with
    torchrun --nproc_per_node=4 train.py hparams/iemocap.yaml ...
(each process trains on its share of the training set; validation and test
run in full on every process, so their metrics are the same everywhere, and
only the main process writes logs, checkpoints and results). Fine-tuning HF
speech encoders this way needs --find_unused_parameters: HuBERT's
masked_spec_embed is a trainable parameter used only by SpecAugment.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import sys

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process

from speechbrain_mtmm.data.iemocap import prepare_iemocap
from speechbrain_mtmm.run_folder import write_test_outputs
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


def main(argv):
    """Prepares the data, trains one fold, tests the selected checkpoint."""
    # settings checked (a rerun resumes); the tested checkpoint will be the
    # best on the validation speaker's selection_metrics
    hparams_file, run_opts, overrides, hparams = start_run(argv)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    # Manifest and speaker-independent folds, shared by all runs (a folder
    # prepared by `mtmm prepare csv` is used as it is)
    corpus = prepare_corpus(
        hparams,
        prepare_iemocap,
        label_map=hparams["label_map"],
        skip_missing=hparams["skip_missing"],
    )
    # Frozen encoders' features computed once; gold or ASR transcripts
    # (tested with each of test_transcripts, the first the headline)
    cached, conditions, asr = prepare_inputs(hparams, run_opts, corpus)
    heard = asr if hparams["transcripts"] == "asr" else None
    # with CTC, the transcripts' characters are targets too
    datasets = fold_datasets(
        hparams,
        cached,
        characters=hparams["w_ctc"] > 0,
        transcripts={"train": heard, "valid": heard},
    )
    tests = [
        (
            "test",
            condition,
            datasets["test"]
            if condition != "asr"
            else fold_datasets(hparams, cached, transcripts={"test": asr})[
                "test"
            ],
        )
        for condition in conditions
    ]
    # cross-entropy weighted by the training counts (class_weights)
    set_class_weights(hparams, datasets["train"])

    # Train, keep the best checkpoint on the validation speaker, test it:
    # the test speaker is seen here for the first time
    brain = build_brain(hparams, run_opts, cached)
    tested = fit_and_test(
        brain, hparams, datasets["train"], datasets["valid"], tests
    )
    if if_main_process():
        wer = asr_word_error_rates(datasets["test"].data, asr) if asr else None
        results = with_conditions(
            {c: r for (_, c), (r, _) in tested.items()}, wer
        )
        # what the model card says of the data depends on the corpus
        results["corpus"] = "iemocap" if corpus is None else corpus["corpus"]
        rows = tested["test", conditions[0]][1]
        write_test_outputs(hparams["output_folder"], results, rows)
    end_run()


if __name__ == "__main__":
    run_recipe(main, sys.argv[1:])
