#!/usr/bin/env python3
"""Recipe: multi-task, multi-modal speech emotion recognition on IEMOCAP.

Ispas et al. (ICMI 2023): the audio (HuBERT-large) and the gold transcript
(DeBERTaV3-large) of an utterance are encoded, each sequence is refined by
its own self-attention module, learnable bridge tokens gather both
modalities by cross-attention, and the pooled vector feeds a classifier
(4 emotion classes) and a regressor (valence, arousal in [0, 1]). The loss
is ``w_ce*CE + w_v*(1-CCC_v) + w_a*(1-CCC_a)``; Random Modality Masking
hides one modality for some epochs and freezes its encoder meanwhile.

One fold of a speaker-independent protocol is trained and tested per run:
the checkpoint kept for testing is chosen on the validation speaker only.

To run:
    python train.py hparams/iemocap.yaml \
        --data_folder=/data/IEMOCAP_full_release

Useful overrides (see README.md): --protocol=session --fold=3 --seed=2,
--audio_source=microsoft/wavlm-large --text_source=roberta-large,
--fusion_type=cross_attention --refinement=False --modality_masking=False,
--w_valence=0 --w_arousal=0 (classes only).

Outputs in <output_folder>: train_log.txt, save/ (checkpoints and the
label encoder), test_results.json and test_predictions.jsonl.

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

import json
import os
import sys
import time

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.sampler import DynamicBatchSampler
from speechbrain.utils.distributed import (
    ddp_all_reduce,
    ddp_init_group,
    if_main_process,
    run_on_main,
)
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm import (
    CCCStats,
    EmotionClassificationStats,
    masked_modality_features,
)
from speechbrain_mtmm.cache import (
    FeatureCacheError,
    build_feature_caches,
    check_cache_options,
    feature_pipeline,
)
from speechbrain_mtmm.data.audio import AudioFileError, load_audio
from speechbrain_mtmm.data.folds import FoldError, fold_paths
from speechbrain_mtmm.data.iemocap import IEMOCAPError, prepare_iemocap
from speechbrain_mtmm.losses import DIMENSIONS

logger = get_logger(__name__)


class MultimodalEmotionBrain(sb.Brain):
    """Encoders -> refinement -> bridge-token fusion -> classes + V/A."""

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
                self.encoder(modality).set_trainable(
                    modality != self.masked_modality
                )
            self.epoch_masking = self.masked_modality or "none"
            # [padded, total] input positions per modality, and utterances
            self.epoch_counts = torch.zeros(3, 2)
            self.epoch_start = time.time()
        else:
            self.class_stats = EmotionClassificationStats(self.hparams.labels)
            self.ccc_stats = CCCStats(DIMENSIONS[: self.hparams.n_dims])
            self.test_rows = []

    def compute_forward(self, batch, stage):
        """Encode audio and text (or read their cached features), refine,
        fuse, classify and regress."""
        batch = batch.to(self.device)
        if stage == sb.Stage.TRAIN:
            self.count_inputs(batch)
        audio, audio_lens = self.features("audio", batch)
        text, text_lens = self.features("text", batch)
        return self.modules.model(audio, audio_lens, text, text_lens)

    def features(self, modality, batch):
        """One modality's encoder features and their relative lengths.

        A masked modality (or one left out of ``modalities``) is one zero
        frame and its encoder is not run. With ``feature_cache`` the frozen
        encoder's features are read from the cache (stacked layers, summed
        with learned weights); otherwise the encoder runs.
        """
        encoder = self.encoder(modality)
        if (
            modality == self.masked_modality
            or modality not in self.hparams.modalities
        ):
            return masked_modality_features(
                len(batch.id), encoder.output_size, self.device
            )
        if self.hparams.feature_cache:
            feats, lens = getattr(batch, f"{modality}_feats")
            layer_sum = self.modules[f"{modality}_layer_sum"]
            # float16 on disk; the model's dtype here (autocast does the rest)
            return layer_sum(feats.to(self.model_dtype)), lens
        inputs, lens = batch.sig if modality == "audio" else batch.tokens
        feats = self.modules[f"{modality}_encoder"](inputs, lens)
        return feats, encoder.output_lens(lens, inputs.shape[1], feats.shape[1])

    def encoder(self, modality):
        """The encoder module itself (``self.modules`` may hold it wrapped
        in DistributedDataParallel, or not at all with the feature cache)."""
        return getattr(self.hparams, modality)["encoder"]

    @property
    def model_dtype(self):
        """The dtype of the model's parameters."""
        return next(self.hparams.model.parameters()).dtype

    def count_inputs(self, batch):
        """Adds the padded and total input positions of a training batch
        (waveform samples or cached frames; tokens) to the epoch's counts."""
        keys = ("sig", "tokens")
        if self.hparams.feature_cache:
            keys = ("audio_feats", "text_feats")
        for row, key in enumerate(keys):
            item = getattr(batch, key, None)
            if item is not None:
                data, lens = item
                total = data.shape[0] * data.shape[1]
                valid = torch.round(lens.float() * data.shape[1]).sum()
                self.epoch_counts[row] += torch.tensor(
                    [total - valid.item(), total]
                )
        self.epoch_counts[2, 0] += len(batch.id)

    def speed_stats(self, stage_loss):
        """The training loss and speed figures of an epoch, over all
        processes: mean loss, fraction of padded input positions per
        modality, utterances per second."""
        world = ddp_all_reduce(
            torch.ones(1, device=self.device), torch.distributed.ReduceOp.SUM
        )
        totals = ddp_all_reduce(
            torch.cat([self.epoch_counts.flatten(), torch.tensor([stage_loss])])
            .double()
            .to(self.device),
            torch.distributed.ReduceOp.SUM,
        ).cpu()
        counts, loss = totals[:-1].view(3, 2), totals[-1] / world.item()
        stats = {"loss": float(loss)}
        for row, modality in enumerate(("audio", "text")):
            if counts[row, 1] > 0:
                stats[f"{modality}_padding"] = float(
                    counts[row, 0] / counts[row, 1]
                )
        seconds = time.time() - self.epoch_start
        stats["utt_per_s"] = float(counts[2, 0]) / max(seconds, 1e-9)
        return stats

    def compute_objectives(self, predictions, batch, stage):
        """Multi-task loss: CE on classes, 1 - CCC on valence and arousal."""
        labels = batch.label.data.squeeze(-1)
        dims = batch.dims.data
        # losses and metrics in float32, also under mixed precision
        predictions = {k: v.float() for k, v in predictions.items()}
        parts = self.hparams.compute_loss(
            predictions["logits"], labels, predictions["dims"], dims
        )
        if not torch.isfinite(parts["loss"]):
            raise ValueError(
                f"non-finite loss {parts} in the batch of {batch.id}: check "
                "these utterances' audio, transcripts and labels"
            )
        if stage != sb.Stage.TRAIN:
            self.track(batch, predictions, dims, stage)
        return parts["loss"]

    def track(self, batch, predictions, dims, stage):
        """Adds a batch to the epoch's metrics (and test predictions)."""
        probs = torch.softmax(predictions["logits"].float(), dim=-1)
        predicted = [self.hparams.labels[i] for i in probs.argmax(-1)]
        self.class_stats.append(batch.id, predicted, batch.emo)
        self.ccc_stats.append(batch.id, predictions["dims"], dims)
        if stage != sb.Stage.TEST:
            return
        for i, utt_id in enumerate(batch.id):
            row = prediction_row(
                utt_id,
                batch.emo[i],
                predicted[i],
                probs[i],
                dims[i],
                predictions["dims"][i],
                self.hparams,
            )
            row.update(
                speaker=batch.speaker[i], improvised=bool(batch.improvised[i])
            )
            self.test_rows.append(row)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the epoch; keeps the best validation checkpoint; writes the
        test results."""
        if stage == sb.Stage.TRAIN:
            self.train_stats = self.speed_stats(stage_loss)
            return
        stats = {"loss": stage_loss, **self.summarize()}
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "masked": self.epoch_masking},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(meta=stats, max_keys=["score"])
        else:
            self.hparams.train_logger.log_stats(
                {"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            if if_main_process():
                self.write_test_outputs(stats)

    def summarize(self):
        """WA, UA, macro-F1, CCC per dimension, and the selection score."""
        stats = {
            key: value
            for key, value in self.class_stats.summarize().items()
            if key in ("WA", "UA", "macro_F1")
        }
        stats.update(self.ccc_stats.summarize())
        stats["score"] = sum(
            stats[name] for name in self.hparams.selection_metrics
        ) / len(self.hparams.selection_metrics)
        return stats

    def write_test_outputs(self, stats):
        """Writes test_results.json and test_predictions.jsonl."""
        summary = self.class_stats.summarize()
        results = {
            **{k: stats[k] for k in stats if k != "score"},
            "confusion": summary["confusion"],
            "labels": summary["labels"],
            "recall": summary["recall"],
            "n": summary["n"],
        }
        folder = self.hparams.output_folder
        with open(os.path.join(folder, "test_results.json"), "w") as fout:
            json.dump(results, fout, indent=2)
        with open(os.path.join(folder, "test_predictions.jsonl"), "w") as f:
            for row in self.test_rows:
                f.write(json.dumps(row) + "\n")
        self.test_results = results


def prediction_row(utt_id, emo, pred_emo, probs, dims, pred_dims, hparams):
    """One line of test_predictions.jsonl (dimensions on the 1-5 scale)."""
    row = {
        "id": utt_id,
        "emo": emo,
        "pred_emo": pred_emo,
        "probs": {
            label: round(float(p), 5) for label, p in zip(hparams.labels, probs)
        },
    }
    for index, name in enumerate(DIMENSIONS[: hparams.n_dims]):
        row[name] = round(1.0 + 4.0 * float(dims[index]), 4)
        row[f"pred_{name}"] = round(1.0 + 4.0 * float(pred_dims[index]), 4)
    return row


def dataio_prep(hparams, cached=None):
    """Builds the fold's datasets: 16 kHz mono audio, tokens of the text
    encoder (or, with ``cached``, both encoders' cached features), the
    label in a fixed class order, dimensions scaled to 0-1.

    ``cached`` maps each cached modality to {utterance id: feature file}
    (from ``prepare_feature_cache``).
    """
    labels = hparams["labels"]
    text_encoder = hparams["text"]["encoder"]
    n_dims = hparams["n_dims"]

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(
            wav, hparams["sample_rate"], hparams["max_audio_seconds"]
        )

    @sb.utils.data_pipeline.takes("id", "text")
    @sb.utils.data_pipeline.provides("tokens")
    def text_pipeline(utt_id, text):
        if not text or not text.strip():
            raise ValueError(f"{utt_id}: empty transcript")
        return text_encoder.tokenize(text)

    @sb.utils.data_pipeline.takes("emo")
    @sb.utils.data_pipeline.provides("label")
    def label_pipeline(emo):
        return torch.LongTensor([labels.index(emo)])

    @sb.utils.data_pipeline.takes("valence", "arousal", "dominance")
    @sb.utils.data_pipeline.provides("dims")
    def dims_pipeline(valence, arousal, dominance):
        values = torch.tensor([valence, arousal, dominance])[:n_dims]
        return (values - 1.0) / 4.0  # the 1-5 ratings rescaled to 0-1

    inputs = {"sig": audio_pipeline, "tokens": text_pipeline}
    if cached is not None:
        inputs = {
            f"{modality}_feats": feature_pipeline(modality, files)
            for modality, files in cached.items()
        }
    paths = fold_paths(
        hparams["prepare_folder"], hparams["protocol"], hparams["fold"]
    )
    datasets = {}
    for split, path in paths.items():
        dataset = sb.dataio.dataset.DynamicItemDataset.from_json(path)
        check_split(dataset, split, path, hparams)
        for pipeline in (*inputs.values(), label_pipeline, dims_pipeline):
            dataset.add_dynamic_item(pipeline)
        dataset.set_output_keys(
            ["id", *inputs, "label", "dims", "emo", "speaker", "improvised"]
        )
        datasets[split] = dataset
    return datasets


def prepare_feature_cache(hparams, run_opts):
    """With ``feature_cache``: computes the frozen encoders' features that
    are not cached yet (main process only; all folds and seeds share them)
    and returns, on every process, where each utterance's features are."""
    encoders = {m: hparams[m]["encoder"] for m in ("audio", "text")}
    layers = {m: hparams[f"{m}_cache_layers"] for m in ("audio", "text")}
    check_cache_options(
        hparams["feature_cache"], hparams["freeze_policy"], layers, encoders
    )
    if not hparams["feature_cache"]:
        return None
    device = run_opts["device"] or sb.utils.distributed.infer_device()
    paths = fold_paths(
        hparams["prepare_folder"], hparams["protocol"], hparams["fold"]
    )
    return run_on_main(
        build_feature_caches,
        kwargs={
            "folder": hparams["feature_cache_folder"],
            "encoders": {m: encoders[m] for m in hparams["modalities"]},
            "layers": layers,
            "manifests": list(paths.values()),
            "sample_rate": hparams["sample_rate"],
            "max_audio_seconds": hparams["max_audio_seconds"],
            "batch_size": hparams["feature_cache_batch_size"],
            "device": device,
        },
    )


def train_loader_options(hparams, train_set):
    """Fixed batches of ``batch_size`` or, with ``dynamic_batching``,
    batches of similar durations holding ``max_batch_length`` seconds."""
    if not hparams["dynamic_batching"]:
        return hparams["train_dataloader_opts"], None
    limit = hparams["max_audio_seconds"] or float("inf")
    sampler = DynamicBatchSampler(
        train_set,
        length_func=lambda entry: min(entry["duration"], limit),
        seed=hparams["seed"],
        **hparams["dynamic_batch_sampler"],
    )
    return {
        "batch_sampler": sampler,
        "num_workers": hparams["num_workers"],
    }, sampler


def check_split(dataset, split, path, hparams):
    """Stops on labels outside the label set; reports cropped audio."""
    data = dataset.data
    unknown = {e["emo"] for e in data.values()} - set(hparams["labels"])
    if unknown:
        raise IEMOCAPError(
            f"{path}: labels {sorted(unknown)} are not in labels "
            f"{hparams['labels']}; set labels to match label_map"
        )
    limit = hparams["max_audio_seconds"]
    if limit is not None:
        long = sum(e["duration"] > limit for e in data.values())
        if long:
            logger.info(
                f"{split}: {long} of {len(data)} utterances are longer than "
                f"{limit} s and are cropped (max_audio_seconds)"
            )


def main(argv):
    """Prepares the data, trains one fold, tests the selected checkpoint."""
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    # torchrun: one process per device, joined in one process group
    ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)

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
    # Frozen encoders: their features are computed once and read back
    cached = prepare_feature_cache(hparams, run_opts)
    datasets = dataio_prep(hparams, cached)
    modules = dict(hparams["modules"])
    if cached is not None:  # the encoders are not run (they stay on CPU)
        del modules["audio_encoder"], modules["text_encoder"]

    brain = MultimodalEmotionBrain(
        modules=modules,
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    train_opts, sampler = train_loader_options(hparams, datasets["train"])
    # SpeechBrain calls set_epoch (a new shuffle per epoch) only on this
    brain.train_sampler = sampler
    brain.fit(
        epoch_counter=hparams["epoch_counter"],
        train_set=datasets["train"],
        valid_set=datasets["valid"],
        train_loader_kwargs=train_opts,
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    # The checkpoint with the best validation score; the test speaker is
    # seen here for the first time
    brain.evaluate(
        datasets["test"],
        max_key="score",
        test_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    # torchrun: leave the process group cleanly (a gloo group still alive at
    # interpreter exit aborts the process after the results are written)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (
        IEMOCAPError,
        FoldError,
        AudioFileError,
        FeatureCacheError,
    ) as error:
        # bad input: one clear line naming the file and the problem
        sys.exit(f"{type(error).__name__}: {error}")
