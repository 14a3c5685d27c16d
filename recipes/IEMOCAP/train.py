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

import functools
import sys

import speechbrain as sb
import torch
from speechbrain.utils.distributed import (
    ddp_init_group,
    if_main_process,
    run_on_main,
)

from speechbrain_mtmm.data.folds import check_fold
from speechbrain_mtmm.data.iemocap import prepare_iemocap, prepared_manifest
from speechbrain_mtmm.run_folder import (
    DIMENSIONS,
    prediction_row,
    write_test_outputs,
)
from speechbrain_mtmm.training.auxiliary import (
    auxiliary_modules,
    check_auxiliary_options,
)
from speechbrain_mtmm.training.metrics import (
    CCCStats,
    EmotionClassificationStats,
    epoch_scores,
    selection_metrics,
    summarize_test,
)
from speechbrain_mtmm.training.optim import parameter_groups
from speechbrain_mtmm.training.recipe import (
    check_finite_loss,
    check_run_folder,
    evaluation_batches,
    fold_datasets,
    load_recipe_hparams,
    plan_training,
    prepare_asr_transcripts,
    prepare_feature_cache,
    run_recipe,
    train_loader_options,
)
from speechbrain_mtmm.training.speed import EpochSpeed
from speechbrain_mtmm.training.transcripts import (
    asr_word_error_rates,
    check_transcript_settings,
    with_conditions,
)


class MultimodalEmotionBrain(sb.Brain):
    """Encoders -> refinement -> bridge-token fusion -> classes + V/A."""

    # tested without transcripts (test condition "none"): the text is
    # masked as Random Modality Masking masks it
    text_masked = False

    def on_stage_start(self, stage, epoch=None):
        """Random Modality Masking: one decision per training epoch; the
        masked modality's encoder is frozen for that epoch."""
        self.masked_modality = None
        if stage == sb.Stage.TRAIN:
            if self.hparams.modality_masking:
                self.masked_modality = self.hparams.masking.masked_modality(
                    epoch
                )
            for modality in ("audio", "text"):
                self.hparams.system.encoder(modality).set_trainable(
                    modality != self.masked_modality
                )
            self.epoch_masking = self.masked_modality or "none"
            # after a mid-epoch resume, self.step batches are done
            self.speed = EpochSpeed(self.hparams.feature_cache, self.step)
            self.hparams.auxiliary_objectives.start_epoch()
        else:
            self.class_stats = EmotionClassificationStats(self.hparams.labels)
            self.ccc_stats = CCCStats(DIMENSIONS[: self.hparams.n_dims])
            self.test_rows = []

    def compute_forward(self, batch, stage):
        """Encode audio and text (or read their cached features), refine,
        fuse, classify and regress."""
        batch = batch.to(self.device)
        if stage == sb.Stage.TRAIN:
            self.speed.count(batch)
        audio = self.features("audio", batch)
        text = self.features("text", batch)
        predictions = self.modules.model(*audio, *text)
        auxiliary = self.hparams.auxiliary_objectives
        if stage == sb.Stage.TRAIN and auxiliary.active():
            # MMER's objectives: CTC reads the audio frames, AugCon the
            # utterance vector of an augmented copy of the audio
            predictions["audio"] = audio if self.audio_seen() else None
            if auxiliary.active("augcon") and self.audio_seen():
                augmented = self.features("audio", batch, augment=True)
                predictions["embedding_aug"] = self.modules.model(
                    *augmented, *text
                )["embedding"]
        return predictions

    def audio_seen(self):
        """Whether the model reads the audio in this epoch."""
        return (
            self.masked_modality != "audio"
            and "audio" in self.hparams.modalities
        )

    def features(self, modality, batch, augment=False):
        """One modality's features and their relative lengths.

        A masked modality (or one left out of ``modalities``) is one zero
        frame and its encoder is not run. With ``feature_cache`` the
        frozen encoder's hidden states are read from the cache; otherwise
        the encoder runs. The chosen layers are summed with learned
        weights.
        """
        system = self.hparams.system
        if (
            modality == self.masked_modality
            or modality not in self.hparams.modalities
            or (modality == "text" and self.text_masked)
        ):
            return system.masked(modality, len(batch.id), self.device)
        if self.hparams.feature_cache:
            stacked, lens = getattr(batch, f"{modality}_feats")
            # float16 on disk; the model's dtype here (autocast does the rest)
            dtype = next(self.modules.model.parameters()).dtype
            feats = system.combine_layers(
                modality, stacked.to(dtype), self.modules
            )
            return feats, lens
        inputs, lens = batch.sig if modality == "audio" else batch.tokens
        if augment:
            inputs, lens = self.hparams.augmentation(inputs, lens)
        return system.encode(modality, inputs, lens, self.modules)

    def init_optimizers(self):
        """One optimizer, two parameter groups: the encoders at
        ``lr_encoders``, the rest at ``lr``; the schedule drives both."""
        self.optimizer = self.opt_class(
            parameter_groups(
                self.modules, self.hparams.lr, self.hparams.lr_encoders
            )
        )
        self.optimizers_dict = {"opt_class": self.optimizer}
        self.checkpointer.add_recoverable("optimizer", self.optimizer)
        self.hparams.lr_schedule.attach(self.optimizer, self.total_steps)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Step-wise schedules move the rates after each optimizer step."""
        if should_step:
            self.hparams.lr_schedule.step_end(self.optimizer)

    def compute_objectives(self, predictions, batch, stage):
        """Multi-task loss: CE on classes, 1 - CCC on valence and arousal;
        in training, plus MMER's weighted auxiliary terms (if any)."""
        audio = predictions.pop("audio", None)
        embedding_aug = predictions.pop("embedding_aug", None)
        # losses and metrics in float32, also under mixed precision
        predictions = {k: v.float() for k, v in predictions.items()}
        labels = batch.label.data.squeeze(-1)
        parts = self.hparams.compute_loss(
            predictions["logits"],
            labels,
            predictions["dims"],
            batch.dims.data,
        )
        auxiliary = self.hparams.auxiliary_objectives
        if stage == sb.Stage.TRAIN and auxiliary.active():
            frames, frame_lens = audio if audio is not None else (None, None)
            projections = self.modules.auxiliary(
                predictions["embedding"], frames, embedding_aug
            )
            terms = auxiliary(
                projections,
                labels,
                frame_lens,
                characters=getattr(batch, "chars", None),
            )
            parts["loss"] = parts["loss"] + terms.pop("loss")
            parts.update(terms)
        check_finite_loss(parts, batch.id)
        if stage != sb.Stage.TRAIN:
            self.track(batch, predictions, stage)
        return parts["loss"]

    def track(self, batch, predictions, stage):
        """Adds a batch to the stage's metrics (and test predictions)."""
        labels = self.hparams.labels
        probs = torch.softmax(predictions["logits"], dim=-1)
        predicted = [labels[i] for i in probs.argmax(-1)]
        self.class_stats.append(batch.id, predicted, batch.emo)
        self.ccc_stats.append(batch.id, predictions["dims"], batch.dims.data)
        if stage == sb.Stage.TEST:
            for i, utt_id in enumerate(batch.id):
                self.test_rows.append(
                    prediction_row(
                        utt_id,
                        batch.emo[i],
                        predicted[i],
                        dict(zip(labels, probs[i].tolist())),
                        batch.dims.data[i].tolist(),
                        predictions["dims"][i].tolist(),
                        speaker=batch.speaker[i],
                        improvised=bool(batch.improvised[i]),
                    )
                )

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the epoch; keeps the best validation checkpoint; writes the
        test results."""
        if stage == sb.Stage.TRAIN:
            self.train_stats = {
                **self.speed.summary(stage_loss, self.device),
                **self.hparams.auxiliary_objectives.epoch_summary(),
            }
            return
        stats = {
            "loss": stage_loss,
            **epoch_scores(
                self.class_stats,
                self.ccc_stats,
                self.hparams.selection_metrics,
            ),
        }
        if stage == sb.Stage.VALID:
            schedule = self.hparams.lr_schedule
            rates = schedule.rates(self.optimizer)  # the epoch's rates
            schedule.validation_end(self.optimizer, stats["score"])
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": epoch,
                    "masked": self.epoch_masking,
                    **rates,
                },
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(meta=stats, max_keys=["score"])
        else:
            self.hparams.train_logger.log_stats(
                {
                    "Epoch loaded": self.hparams.epoch_counter.current,
                    "transcripts": self.test_condition,
                },
                test_stats=stats,
            )
            self.tested = (
                summarize_test(self.class_stats, stats),
                self.test_rows,
            )


def main(argv):
    """Prepares the data, trains one fold, tests the selected checkpoint."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    # torchrun: one process per device, joined in one process group
    ddp_init_group(run_opts)
    hparams = load_recipe_hparams(hparams_file, overrides)
    check_fold(hparams["protocol"], hparams["fold"])
    # one run folder, one set of settings: a rerun resumes, other settings
    # are refused (or, with --start_over=True, replace the old run)
    check_run_folder(
        hparams_file, overrides, hparams["output_folder"], hparams["start_over"]
    )
    # the tested checkpoint is the best on these validation scores
    hparams["selection_metrics"] = selection_metrics(
        hparams["selection_metrics"],
        hparams["w_ce"],
        hparams["w_valence"],
        hparams["w_arousal"],
        hparams["w_dominance"],
    )
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    # Manifest and speaker-independent folds, shared by all runs
    run_on_main(
        prepare_iemocap,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["prepare_folder"],
            "label_map": hparams["label_map"],
            "skip_missing": hparams["skip_missing"],
        },
    )
    check_auxiliary_options(
        hparams["w_ctc"],
        hparams["w_aug"],
        hparams["feature_cache"],
        hparams["modalities"],
    )
    # Frozen encoders: their features are computed once and read back
    cached = prepare_feature_cache(
        hparams,
        run_opts,
        hparams["feature_cache_folder"],
        hparams["feature_cache_batch_size"],
    )
    # Gold or ASR transcripts (ASR: one cached pass of asr_source over the
    # corpus); tested with each of test_transcripts, the first the headline
    conditions = check_transcript_settings(
        hparams["transcripts"],
        hparams["test_transcripts"],
        hparams["modalities"],
        hparams["feature_cache"],
    )
    asr = None
    if "asr" in (hparams["transcripts"], *conditions):
        asr = prepare_asr_transcripts(
            prepared_manifest(hparams["prepare_folder"]),
            run_opts,
            hparams["asr_source"],
            hparams["asr_cache_folder"],
            hparams["asr_language"],
            hparams["asr_batch_size"],
        )
    heard = asr if hparams["transcripts"] == "asr" else None
    # with CTC, the transcripts' characters are targets too
    datasets = fold_datasets(
        hparams,
        cached,
        characters=hparams["w_ctc"] > 0,
        transcripts={"train": heard, "valid": heard},
    )
    test_sets = {
        condition: datasets["test"]
        if condition != "asr"
        else fold_datasets(hparams, cached, transcripts={"test": asr})["test"]
        for condition in conditions
    }

    brain = MultimodalEmotionBrain(
        # with the cache the encoders are not run (and stay on the CPU)
        modules={
            **hparams["system"].parts(encoders=cached is None),
            **auxiliary_modules(hparams["auxiliary_heads"]),
        },
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    # fixed batches, or batches of similar durations (dynamic_batching)
    train_opts, sampler = train_loader_options(
        datasets["train"],
        hparams["train_dataloader_opts"],
        hparams["dynamic_batch_sampler"]
        if hparams["dynamic_batching"]
        else None,
        seed=hparams["seed"],
        max_audio_seconds=hparams["max_audio_seconds"],
    )
    # SpeechBrain calls set_epoch (a new shuffle per epoch) only on this
    brain.train_sampler = sampler
    brain.total_steps = plan_training(hparams, datasets["train"], sampler)
    eval_batches = functools.partial(
        evaluation_batches,
        mode=hparams["eval_batching"],
        loader_options=hparams["valid_dataloader_opts"],
        max_batch_length=hparams["max_batch_length"],
        num_buckets=hparams["num_buckets"],
        max_audio_seconds=hparams["max_audio_seconds"],
    )
    valid_set, valid_opts = eval_batches(datasets["valid"])
    brain.fit(
        epoch_counter=hparams["epoch_counter"],
        train_set=datasets["train"],
        valid_set=valid_set,
        train_loader_kwargs=train_opts,
        valid_loader_kwargs=valid_opts,
    )
    # The checkpoint with the best validation score; the test speaker is
    # seen here for the first time, in each test condition
    tested = {}
    for condition, dataset in test_sets.items():
        brain.test_condition = condition
        brain.text_masked = condition == "none"
        test_set, test_opts = eval_batches(dataset)
        brain.evaluate(test_set, max_key="score", test_loader_kwargs=test_opts)
        tested[condition] = brain.tested
    if if_main_process():
        wer = asr_word_error_rates(datasets["test"].data, asr) if asr else None
        results = with_conditions({c: r for c, (r, _) in tested.items()}, wer)
        rows = tested[conditions[0]][1]
        write_test_outputs(hparams["output_folder"], results, rows)
    # torchrun: leave the process group cleanly, together (a gloo group
    # still alive at interpreter exit aborts the process after the results
    # are written)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    run_recipe(main, sys.argv[1:])
