#!/usr/bin/env python3
"""Recipe: multi-task, multi-modal speech emotion recognition on IEMOCAP.

Ispas et al. (ICMI 2023): the audio (HuBERT-large) and the gold transcript
(DeBERTaV3-large) of an utterance are encoded, each sequence is refined by
its own self-attention module, learnable bridge tokens gather both
modalities by cross-attention, and the pooled vector feeds a classifier
(4 emotion classes) and a regressor (valence, arousal in [0, 1]). The loss
is ``w_ce*CE + w_valence*(1-CCC_v) + w_arousal*(1-CCC_a)``; Random Modality
Masking hides one modality for some epochs and freezes its encoder
meanwhile.

hparams/mmer.yaml is MMER (Ghosh et al., Interspeech 2023) with the same
script: its gated fusion (fusion_type: mmer) and its auxiliary objectives,
w_ctc * CTC (characters from the audio frames) + w_supcon * supervised
contrastive + w_aug * contrastive between an utterance and an augmented
copy of its audio, which any fusion can use.

One fold of a speaker-independent protocol is trained and tested per run:
the checkpoint kept for testing is chosen on the validation speaker only.
Any corpus prepared by `mtmm prepare csv` trains with this recipe too
(labels, rating scale and protocol are the corpus' own; see README.md).

To run:
    python train.py hparams/iemocap.yaml \
        --data_folder=/data/IEMOCAP_full_release

Useful overrides (see README.md): --protocol=session --fold=3 --seed=2,
--audio_source=microsoft/wavlm-large --text_source=roberta-large,
--fusion_type=cross_attention --refinement=False --modality_masking=False,
--w_valence=0 --w_arousal=0 (classes only). Several GPUs:
    torchrun --nproc_per_node=4 train.py hparams/iemocap.yaml ...

Outputs in <output_folder>: train_log.txt, save/ (checkpoints),
test_results.json and test_predictions.jsonl.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import math
import sys
import time

import torch
from iemocap_prepare import prepare_iemocap
from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.data.corpora import IEMOCAP
from speechbrain_mtmm.data.corpus import corpus_manifest
from speechbrain_mtmm.data.folds import fold_paths
from speechbrain_mtmm.run_folder import (
    DIMENSIONS,
    prediction_row,
    to_unit,
    write_test_outputs,
)
from speechbrain_mtmm.system import trained_outputs
from speechbrain_mtmm.training.auxiliary_losses import (
    auxiliary_modules,
    character_encoder,
    character_targets,
    check_auxiliary_options,
)
from speechbrain_mtmm.training.batches import (
    evaluation_batches,
    plan_training,
    train_loader_options,
)
from speechbrain_mtmm.training.cache import feature_pipeline
from speechbrain_mtmm.training.checkpoints import save_epoch_checkpoint
from speechbrain_mtmm.training.hparams import (
    check_checkpoint_interval,
    corpus_overrides,
    load_recipe_hparams,
    run_option_overrides,
)
from speechbrain_mtmm.training.inputs import (
    prepare_asr_transcripts,
    prepare_feature_cache,
)
from speechbrain_mtmm.training.losses import check_finite_loss
from speechbrain_mtmm.training.metrics import (
    CCCStats,
    EmotionClassificationStats,
    epoch_scores,
    selection_metrics,
    summarize_test,
)
from speechbrain_mtmm.training.optim import parameter_groups
from speechbrain_mtmm.training.run import (
    check_run_folder,
    choose_ddp_backend,
    end_run,
    run_main,
)
from speechbrain_mtmm.training.speed import (
    EpochSpeed,
    log_start_up,
    process_age,
)
from speechbrain_mtmm.training.splits import (
    NO_CLASS,
    check_protocol,
    check_ratings,
    check_split,
    class_weights,
    prepare_corpus,
    split_entries,
)
from speechbrain_mtmm.training.transcripts import (
    asr_word_error_rates,
    check_transcript_settings,
    with_conditions,
)

import speechbrain as sb
from speechbrain.utils.distributed import ddp_init_group, if_main_process
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

#: The protocols IEMOCAP's preparation writes, and their folds
PROTOCOLS = IEMOCAP.protocols


class EmotionBrain(sb.Brain):
    """Encoders -> refinement -> bridge-token fusion -> classes + V/A."""

    # tested without transcripts (test condition "none"): the text is
    # masked as Random Modality Masking masks it
    text_masked = False
    test_condition = "gold"

    def on_stage_start(self, stage, epoch=None):
        """Random Modality Masking: one decision per training epoch; the
        masked modality's encoder is frozen for that epoch. Evaluation
        stages start their class and CCC trackers."""
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
            # padding and throughput of the epoch (after a mid-epoch
            # resume, self.step batches are already done)
            self.speed = EpochSpeed(self.hparams.feature_cache, self.step)
            self.hparams.auxiliary_objectives.start_epoch()
        else:
            # only what was trained is scored (a loss weight of 0: not)
            system = self.hparams.system
            self.class_stats = (
                EmotionClassificationStats(self.hparams.labels)
                if system.classes_trained
                else None
            )
            self.ccc_stats = CCCStats(system.dimensions)
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
            audio_seen = self.audio_seen()
            predictions["audio"] = audio if audio_seen else None
            if auxiliary.active("augcon") and audio_seen:
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
        frozen encoder's hidden states are read from the batch; otherwise
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

    def compute_objectives(self, predictions, batch, stage):
        """Multi-task loss: CE on the classes, 1 - CCC on each dimension;
        in training, plus MMER's weighted auxiliary terms (if any)."""
        audio = predictions.pop("audio", None)
        embedding_aug = predictions.pop("embedding_aug", None)
        # losses and metrics in float32, also under mixed precision
        predictions = {k: v.float() for k, v in predictions.items()}
        labels = batch.label.data.squeeze(-1)
        parts = self.hparams.compute_loss(
            predictions["logits"], labels, predictions["dims"], batch.dims.data
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
        """Adds a batch to the stage's metrics (and the test predictions)."""
        labels = self.hparams.labels
        predictions = trained_outputs(predictions, self.hparams.model_config)
        probs = predicted = None
        if self.class_stats is not None:
            probs = torch.softmax(predictions["logits"], dim=-1)
            predicted = [labels[i] for i in probs.argmax(-1)]
            self.class_stats.append(batch.id, predicted, batch.emo)
        dimensions = self.hparams.system.dimensions
        columns = [DIMENSIONS.index(name) for name in dimensions]
        true_dims = batch.dims.data[:, columns]
        pred_dims = predictions.get("dims", true_dims[:, :0])
        self.ccc_stats.append(batch.id, pred_dims, true_dims)
        if stage != sb.Stage.TEST:
            return
        for i, utt_id in enumerate(batch.id):
            self.test_rows.append(
                prediction_row(
                    utt_id,
                    batch.emo[i],
                    predicted[i] if predicted else None,
                    dict(zip(labels, probs[i].tolist())) if predicted else {},
                    true_dims[i].tolist(),
                    pred_dims[i].tolist(),
                    scale=self.hparams.rating_scale,
                    names=dimensions,
                    **passed_fields(batch, i),
                )
            )

    def init_optimizers(self):
        """One optimizer, one named parameter group per encoder (at
        ``lr_audio_encoder`` and ``lr_text_encoder``, by default
        ``lr_encoders``, by default ``lr``; none for a frozen encoder) and
        one for the rest (at ``lr``); the schedule drives them all."""
        self.optimizer = self.opt_class(
            parameter_groups(
                self.modules,
                self.hparams.lr,
                lr_encoders=self.hparams.lr_encoders,
                lr_audio_encoder=self.hparams.lr_audio_encoder,
                lr_text_encoder=self.hparams.lr_text_encoder,
            )
        )
        self.optimizers_dict = {"opt_class": self.optimizer}
        self.checkpointer.add_recoverable("optimizer", self.optimizer)
        self.hparams.lr_schedule.attach(self.optimizer, self.total_steps)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Step-wise schedules move the rates after each optimizer step."""
        if should_step:
            self.hparams.lr_schedule.step_end(self.optimizer)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the epoch; keeps the best validation checkpoint (the mean
        of ``selection_metrics``); keeps the test results."""
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
            # the best epoch for the test; others as resuming needs
            save_epoch_checkpoint(
                self.checkpointer,
                stats,
                epoch,
                self.hparams.epoch_checkpoints,
                self.hparams.ckpt_interval_minutes,
            )
        else:
            self.hparams.train_logger.log_stats(
                {
                    "Epoch loaded": self.hparams.epoch_counter.current,
                    "transcripts": self.test_condition,
                },
                test_stats=stats,
            )
            self.tested = summarize_test(self.class_stats, stats)


def passed_fields(batch, i):
    """The speaker of utterance ``i`` of a batch and whether it is
    improvised (IEMOCAP), where the corpus has them."""
    fields = {}
    if hasattr(batch, "speaker"):
        fields["speaker"] = batch.speaker[i]
    if hasattr(batch, "improvised"):
        fields["improvised"] = bool(batch.improvised[i])
    return fields


def dataio_prepare(hparams, cached=None, heard=None):
    """The fold's datasets and their data pipelines.

    Arguments
    ---------
    hparams : dict
        The recipe's hyperparameters.
    cached : dict, optional
        Modality -> {utterance id: cached feature file}: the frozen
        encoders' features replace the audio and the tokens.
    heard : dict, optional
        Split -> {utterance id: ASR transcript}: these splits read what
        the ASR model heard (the gold transcript stays ``gold_text``).

    Returns
    -------
    dict
        ``train``, ``valid``, ``test`` -> ``DynamicItemDataset`` of ``id``,
        the inputs (``sig`` and ``tokens``, or ``<modality>_feats``),
        ``label``, ``dims``, ``emo``, ``speaker`` and ``improvised``
        (``chars`` too with CTC).
    """
    system = hparams["system"]
    labels = hparams["labels"]
    max_seconds = hparams["max_audio_seconds"]

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        """The waveform at the model's rate, cropped to max_audio_seconds."""
        return load_audio(wav, hparams["sample_rate"], max_seconds)

    @sb.utils.data_pipeline.takes("text")
    @sb.utils.data_pipeline.provides("tokens")
    def text_pipeline(text):
        """The text encoder's tokens (an ASR model may hear no words, and
        a missing transcript reads as empty with missing_transcripts:
        empty; check_split refuses it otherwise)."""
        return system.text_encoder.tokenize(text or "")

    characters = character_encoder() if hparams["w_ctc"] > 0 else None

    @sb.utils.data_pipeline.takes("gold_text", "duration")
    @sb.utils.data_pipeline.provides("chars")
    def chars_pipeline(gold_text, duration):
        """CTC targets: what is said, also when the model reads an ASR
        transcript; none for cropped audio (which no longer holds it all,
        so CTC skips it)."""
        if max_seconds is not None and duration > max_seconds:
            return character_targets("", characters)
        return character_targets(gold_text or "", characters)

    @sb.utils.data_pipeline.takes("emo")
    @sb.utils.data_pipeline.provides("label")
    def label_pipeline(emo):
        """The class index (NO_CLASS where the utterance has none)."""
        return torch.LongTensor(
            [NO_CLASS if emo is None else labels.index(emo)]
        )

    @sb.utils.data_pipeline.takes(*DIMENSIONS[: hparams["n_dims"]])
    @sb.utils.data_pipeline.provides("dims")
    def dims_pipeline(*ratings):
        """The ratings on the 0-1 scale of the regressor (NaN: not rated)."""
        ratings = [math.nan if r is None else r for r in ratings]
        ratings = torch.tensor(ratings, dtype=torch.float)
        return to_unit(ratings, hparams["rating_scale"])

    inputs = [audio_pipeline, text_pipeline]
    keys = ["sig", "tokens"]
    if cached is not None:
        inputs = [feature_pipeline(m, files) for m, files in cached.items()]
        keys = [f"{modality}_feats" for modality in cached]
    if hparams["w_ctc"] > 0:
        inputs.append(chars_pipeline)
        keys.append("chars")

    paths = fold_paths(
        hparams["prepare_folder"], hparams["protocol"], hparams["fold"]
    )
    datasets = {}
    for split, path in paths.items():
        data = split_entries(path, (heard or {}).get(split))
        check_split(
            data,
            split,
            path,
            labels,
            classes_trained=hparams["w_ce"] > 0,
            missing_transcripts=hparams["missing_transcripts"],
            max_audio_seconds=max_seconds,
        )
        datasets[split] = sb.dataio.dataset.DynamicItemDataset(data)
    for item in (*inputs, label_pipeline, dims_pipeline):
        sb.dataio.dataset.add_dynamic_item(list(datasets.values()), item)
    # a CSV corpus may have no speakers, and only IEMOCAP is improvised
    passed = [
        key
        for key in ("speaker", "improvised")
        if all(key in e for d in datasets.values() for e in d.data.values())
    ]
    sb.dataio.dataset.set_output_keys(
        list(datasets.values()),
        ["id", *keys, "label", "dims", "emo", *passed],
    )
    return datasets


def main(argv):
    """Prepares the data, trains one fold, tests the selected checkpoint."""
    imported = process_age()
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    # torchrun: one process per device, joined in one process group (gloo
    # for processes on the CPU, nccl on GPUs)
    run_opts = choose_ddp_backend(run_opts)
    ddp_init_group(run_opts)
    # a folder prepared by `mtmm prepare csv|msp-podcast` brings its own
    # labels, rating scale and protocol
    overrides = corpus_overrides(hparams_file, overrides)
    # run options that are also YAML keys (grad_accumulation_factor, ...):
    # the value the Brain applies is the one counted, saved and compared
    overrides = run_option_overrides(hparams_file, run_opts, overrides)
    built = time.perf_counter()
    hparams = load_recipe_hparams(hparams_file, overrides)
    built = time.perf_counter() - built
    # SpeechBrain would stop on both kinds of intra-epoch checkpoints only
    # once the run folder is made
    check_checkpoint_interval(hparams_file, hparams, run_opts)
    # the fold exists, and (once prepared) its splits share no speaker
    # and no audio: before the run folder is made
    check_protocol(
        hparams["data_folder"],
        hparams["protocol"],
        hparams["fold"],
        PROTOCOLS,
        hparams["prepare_folder"],
    )
    # Transcripts: gold or ASR for training; the test conditions (gold,
    # asr, none = audio only), the first is the headline; checked (the ASR
    # model's language too) before anything is computed or written
    conditions = check_transcript_settings(
        hparams["transcripts"],
        hparams["test_transcripts"],
        hparams["modalities"],
        hparams["feature_cache"],
        asr_source=hparams["asr_source"],
        asr_language=hparams["asr_language"],
    )
    # the tested checkpoint is the best on the validation speaker, by the
    # mean of these scores (auto: those of the trained heads)
    hparams["selection_metrics"] = selection_metrics(
        hparams["selection_metrics"], hparams["model_config"]
    )
    # the auxiliary objectives need what they train on (not the cache)
    check_auxiliary_options(
        hparams["w_ctc"],
        hparams["w_aug"],
        hparams["feature_cache"],
        hparams["modalities"],
    )
    # one run folder, one set of settings: the same command resumes it,
    # other settings are refused (or discard it, with start_over)
    check_run_folder(
        hparams_file, overrides, hparams["output_folder"], hparams["start_over"]
    )
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    log_start_up(logger, imported, built)

    # Data: the manifest and speaker-independent folds, prepared once and
    # shared by all runs; the corpus must rate what the model learns
    corpus = prepare_corpus(
        prepare_iemocap,
        hparams["data_folder"],
        hparams["prepare_folder"],
        hparams["protocol"],
        hparams["fold"],
        PROTOCOLS,
        label_map=hparams["label_map"],
        skip_missing=hparams["skip_missing"],
    )
    check_ratings(
        corpus,
        hparams["prepare_folder"],
        hparams["rating_scale"],
        {
            "valence": hparams["w_valence"],
            "arousal": hparams["w_arousal"],
            "dominance": hparams["w_dominance"],
        },
        hparams["n_dims"],
    )
    # Frozen encoders run once over the fold: their features are cached
    cached = prepare_feature_cache(
        hparams["feature_cache"],
        hparams["system"],
        hparams["modalities"],
        paths=fold_paths(
            hparams["prepare_folder"], hparams["protocol"], hparams["fold"]
        ),
        folder=hparams["feature_cache_folder"],
        batch_size=hparams["feature_cache_batch_size"],
        run_opts=run_opts,
        empty_text=hparams["missing_transcripts"] == "empty",
    )
    asr = None
    if "asr" in (hparams["transcripts"], *conditions):
        asr = prepare_asr_transcripts(
            corpus_manifest(hparams["prepare_folder"], corpus),
            run_opts,
            hparams["asr_source"],
            hparams["asr_cache_folder"],
            hparams["asr_language"],
            hparams["asr_batch_size"],
            # fixed before the first epoch, recorded in the run folder: a
            # resumed run reads what it trained with
            run_folder=hparams["output_folder"],
        )
    heard = asr if hparams["transcripts"] == "asr" else None
    datasets = dataio_prepare(hparams, cached, {"train": heard, "valid": heard})
    test_sets = {
        condition: datasets["test"]
        if condition != "asr"
        else dataio_prepare(hparams, cached, {"test": asr})["test"]
        for condition in conditions
    }
    # cross-entropy weighted by the training counts (class_weights)
    hparams["compute_loss"].class_weights = class_weights(
        hparams["class_weights"], hparams["labels"], datasets["train"].data
    )

    # Training: the checkpoint with the best validation score is kept
    brain = EmotionBrain(
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
    train_opts, brain.train_sampler = train_loader_options(
        datasets["train"],
        hparams["train_dataloader_opts"],
        hparams["dynamic_batch_sampler"]
        if hparams["dynamic_batching"]
        else None,
        seed=hparams["seed"],
        max_audio_seconds=hparams["max_audio_seconds"],
    )
    brain.total_steps = plan_training(
        datasets["train"],
        brain.train_sampler,
        hparams["number_of_epochs"],
        hparams["batch_size"],
        brain.grad_accumulation_factor,
        hparams["max_batch_length"],
        hparams["selection_metrics"],
    )

    def batched(dataset):
        """A validation or test set and its loader options (eval_batching:
        the predictions do not depend on it)."""
        return evaluation_batches(
            dataset,
            hparams["eval_batching"],
            hparams["valid_dataloader_opts"],
            hparams["max_batch_length"],
            hparams["num_buckets"],
            hparams["max_audio_seconds"],
        )

    valid_set, valid_opts = batched(datasets["valid"])
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        valid_set,
        train_loader_kwargs=train_opts,
        valid_loader_kwargs=valid_opts,
    )

    # Test: the selected checkpoint meets the test speaker for the first
    # time, in each transcript condition; the headline is tested last, so
    # that it is the last line of the log
    tested = {}
    for condition in reversed(conditions):
        brain.test_condition = condition
        brain.text_masked = condition == "none"
        test_set, test_opts = batched(test_sets[condition])
        brain.evaluate(test_set, max_key="score", test_loader_kwargs=test_opts)
        tested[condition] = (brain.tested, brain.test_rows)
    if if_main_process():
        wer = asr_word_error_rates(datasets["test"].data, asr) if asr else None
        results = with_conditions({c: tested[c][0] for c in conditions}, wer)
        # what the model card says of the data depends on the corpus
        results["corpus"] = corpus["corpus"]
        write_test_outputs(
            hparams["output_folder"], results, tested[conditions[0]][1]
        )
    end_run(brain)


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
