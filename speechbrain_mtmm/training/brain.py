"""The Brain of the multi-task, multi-modal emotion recognizer, and the
steps of one run that every recipe shares (fit, then test each test set).

Ispas et al. (ICMI 2023): the audio and the transcript of an utterance are
encoded, each sequence is refined by its own self-attention module,
learnable bridge tokens gather both modalities by cross-attention, and the
pooled vector feeds a classifier and a regressor. The loss is
``w_ce*CE + w_v*(1-CCC_v) + w_a*(1-CCC_a) [+ w_d*(1-CCC_d)]``; Random
Modality Masking hides one modality for some epochs and freezes its
encoder meanwhile. MMER's auxiliary objectives (CTC, supervised
contrastive, augmentation contrastive) are added when their weights are
set. The IEMOCAP and MSP-Podcast recipes train this Brain; what differs
between them (the data, the test sets) stays in their ``train.py``.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import functools

import speechbrain as sb
import torch

from speechbrain_mtmm.run_folder import DIMENSIONS, prediction_row
from speechbrain_mtmm.training.auxiliary import auxiliary_modules
from speechbrain_mtmm.training.metrics import (
    CCCStats,
    EmotionClassificationStats,
    epoch_scores,
    summarize_test,
)
from speechbrain_mtmm.training.optim import parameter_groups
from speechbrain_mtmm.training.recipe import (
    check_finite_loss,
    evaluation_batches,
    plan_training,
    train_loader_options,
)
from speechbrain_mtmm.training.speed import EpochSpeed


class MultimodalEmotionBrain(sb.Brain):
    """Encoders -> refinement -> bridge-token fusion -> classes + V/A."""

    # tested without transcripts (test condition "none"): the text is
    # masked as Random Modality Masking masks it
    text_masked = False
    test_set_name = "test"
    test_condition = "gold"

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
                        scale=self.hparams.rating_scale,
                        **_passed_fields(batch, i),
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
                    "test set": self.test_set_name,
                    "transcripts": self.test_condition,
                },
                test_stats=stats,
            )
            self.tested = (
                summarize_test(self.class_stats, stats),
                self.test_rows,
            )


def _passed_fields(batch, i):
    """The manifest fields a batch carries for utterance ``i``: the
    speaker (if any) and IEMOCAP's improvised flag (a tensor in a batch)."""
    fields = {}
    if hasattr(batch, "speaker"):
        fields["speaker"] = batch.speaker[i]
    if hasattr(batch, "improvised"):
        fields["improvised"] = bool(batch.improvised[i])
    return fields


def build_brain(hparams, run_opts, cached=None):
    """The Brain of a run, with its modules, optimizer class and
    checkpointer from ``hparams``.

    Arguments
    ---------
    hparams : dict
        The recipe's hyperparameters.
    run_opts : dict
        SpeechBrain's run options.
    cached : dict, optional
        The feature cache: the encoders are then not run (and stay on the
        CPU).

    Returns
    -------
    MultimodalEmotionBrain
    """
    return MultimodalEmotionBrain(
        modules={
            **hparams["system"].parts(encoders=cached is None),
            **auxiliary_modules(hparams["auxiliary_heads"]),
        },
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )


def fit_and_test(brain, hparams, train_set, valid_set, tests):
    """Trains with the chosen batching, keeps the checkpoint with the best
    validation score, and tests it on each test set.

    Arguments
    ---------
    brain : MultimodalEmotionBrain
        From :func:`build_brain`.
    hparams : dict
        The loader options (``train_dataloader_opts``, ``dynamic_batching``,
        ``eval_batching``, ...).
    train_set, valid_set : speechbrain.dataio.dataset.DynamicItemDataset
        The training and validation splits.
    tests : list of tuple
        ``(name, condition, dataset)``: the test set's name, the
        transcripts it is read with (``none``: the text masked) and the
        dataset, in order.

    Returns
    -------
    dict
        ``(name, condition)`` -> ``(results, prediction rows)``.
    """
    # fixed batches, or batches of similar durations (dynamic_batching)
    train_opts, sampler = train_loader_options(
        train_set,
        hparams["train_dataloader_opts"],
        hparams["dynamic_batch_sampler"]
        if hparams["dynamic_batching"]
        else None,
        seed=hparams["seed"],
        max_audio_seconds=hparams["max_audio_seconds"],
    )
    # SpeechBrain calls set_epoch (a new shuffle per epoch) only on this
    brain.train_sampler = sampler
    brain.total_steps = plan_training(hparams, train_set, sampler)
    eval_batches = functools.partial(
        evaluation_batches,
        mode=hparams["eval_batching"],
        loader_options=hparams["valid_dataloader_opts"],
        max_batch_length=hparams["max_batch_length"],
        num_buckets=hparams["num_buckets"],
        max_audio_seconds=hparams["max_audio_seconds"],
    )
    valid_set, valid_opts = eval_batches(valid_set)
    brain.fit(
        epoch_counter=hparams["epoch_counter"],
        train_set=train_set,
        valid_set=valid_set,
        train_loader_kwargs=train_opts,
        valid_loader_kwargs=valid_opts,
    )
    # The checkpoint with the best validation score; the test speakers are
    # seen here for the first time
    tested = {}
    for name, condition, dataset in tests:
        brain.test_set_name = name
        brain.test_condition = condition
        brain.text_masked = condition == "none"
        test_set, test_opts = eval_batches(dataset)
        brain.evaluate(test_set, max_key="score", test_loader_kwargs=test_opts)
        tested[name, condition] = brain.tested
    return tested
