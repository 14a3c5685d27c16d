"""Export, the Pretrained interface and the CLI, on tiny trained runs.

Two runs trained on the synthetic corpus, conftest's shared ones: one with
tiny random HuggingFace encoders (exported from a copy of the run, then
that copy and the encoder folders deleted and the export moved), and one
with the light fbank/hashing pair. Every variant of the model is also
trained and exported (marked slow). Nothing is downloaded.
"""

import csv
import json
import math
import os
import re
import shutil

import pytest
import ruamel.yaml
import torch
import torchaudio
import yaml
from speechbrain.dataio import audio_io
from speechbrain.utils.data_utils import batch_pad_right

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.encoders.asr import ASRTranscriber
from speechbrain_mtmm.inference.predict import UsageError, read_csv
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.run_folder import read_predictions as read_rows
from speechbrain_mtmm.sharing.export import (
    ExportError,
    export_model,
    record_digests,
)
from speechbrain_mtmm.sharing.export import (
    best_checkpoint as export_best_checkpoint,
)
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV
from speechbrain_mtmm.testing.tiny_models import build_tiny_whisper

OFFLINE = dict(os.environ, **OFFLINE_ENV)
PROBS_TOL = 1e-4  # test_predictions.jsonl rounds probs to 5 decimals
DIMS_TOL = 1e-4  # and the 1-5 dimensions to 4


def predict_main(args):
    return mtmm(["predict", *args])


@pytest.fixture(scope="module")
def manifest(synthetic_prepared):
    with open(synthetic_prepared / "iemocap.json") as fin:
        return json.load(fin)


@pytest.fixture(scope="module")
def hf_export(tiny_hf_run):
    """(model folder, test prediction rows): tiny HF encoders, test set
    evaluated in batches of 8, exported with ``mtmm export`` from a copy of
    the run; then that copy and the encoder folders were deleted and the
    export moved (conftest's ``tiny_hf_run``)."""
    return tiny_hf_run.moved_model, tiny_hf_run.rows


@pytest.fixture(scope="module")
def recognizer(hf_export):
    return MultimodalEmotionRecognizer.from_hparams(hf_export[0])


@pytest.fixture(scope="module")
def test_utterances(hf_export, manifest):
    """(wav path, transcript) of the test utterances, in recipe order."""
    return [
        (manifest[row["id"]]["wav"], manifest[row["id"]]["text"])
        for row in hf_export[1]
    ]


@pytest.fixture(scope="module")
def light_run(light_run):
    """The shared fbank/hashing run folder of conftest's ``light_run``
    (copy it before changing it)."""
    return light_run.folder


def assert_matches(result, row, probs_tol=PROBS_TOL, dims_tol=DIMS_TOL):
    """An export's prediction equals a row of test_predictions.jsonl, and
    has what the row has: the outputs the model was trained for."""
    assert result.get("label") == row.get("pred_emo")
    for label, p in row.get("probs", {}).items():
        assert result["probs"][label] == pytest.approx(p, abs=probs_tol)
    for name in ("valence", "arousal", "dominance"):
        assert (name in result) == (f"pred_{name}" in row), name
        if f"pred_{name}" in row:
            expected = row[f"pred_{name}"]
            assert result[f"{name}_1to5"] == pytest.approx(
                expected, abs=dims_tol
            )
            assert result[name] == pytest.approx(
                (expected - 1) / 4, abs=dims_tol
            )


def masked_reference(recognizer, wav=None, text=None):
    """The model run by hand with the missing modality as one zero frame."""
    system = recognizer.mods.system
    lens = torch.ones(1)
    with torch.no_grad():
        if wav is None:
            audio = torch.zeros(1, 1, system.audio_encoder.output_size), lens
        else:
            audio = system.audio_encoder(wav[None], lens), lens
        if text is None:
            text_in = torch.zeros(1, 1, system.text_encoder.output_size), lens
        else:
            tokens = system.text_encoder.tokenize(text)[None]
            text_in = system.text_encoder(tokens, lens), lens
        out = system.model(*audio, *text_in)
    return torch.softmax(out["logits"], -1)[0], out["dims"][0]


def assert_close_to(result, probs, dims, abs_tol=1e-5):
    labels = list(result["probs"])
    got = torch.tensor([result["probs"][label] for label in labels])
    assert torch.allclose(got, probs, atol=abs_tol)
    got_dims = torch.tensor([result["valence"], result["arousal"]])
    assert torch.allclose(got_dims, dims[:2], atol=abs_tol)


# ##### Export #####


def test_export_is_self_contained_without_encoder_weights(hf_export):
    model, _ = hf_export
    names = {p.relative_to(model).as_posix() for p in model.rglob("*")}
    for name in (
        "hyperparams.yaml",
        "system.ckpt",
        "labels.txt",
        "export_info.json",
        "encoders/audio/config.json",
        "encoders/audio/preprocessor_config.json",
        "encoders/text/config.json",
    ):
        assert name in names
    assert not [n for n in names if n.endswith((".safetensors", ".bin"))]
    assert "optimizer.ckpt" not in names
    assert (model / "labels.txt").read_text().split() == [
        "neu",
        "hap",
        "sad",
        "ang",
    ]
    info = json.loads((model / "export_info.json").read_text())
    assert not os.path.exists(info["run_folder"])  # deleted by the fixture
    assert "score" in info["validation"]


def test_file_predictions_equal_the_recipe_test_predictions(
    recognizer, hf_export, test_utterances
):
    for (wav, text), row in zip(test_utterances, hf_export[1]):
        result = recognizer.predict_file(wav, text)
        assert result["path"] == "audio+text" and result["text_used"] == text
        assert_matches(result, row)


def test_batched_predictions_equal_the_recipe_test_predictions(
    recognizer, hf_export, test_utterances
):
    """The recipe tested in batches of 8; so does predict_batch here: the
    encoders' exact output lengths make padding irrelevant."""
    wavs = [load_audio(wav) for wav, _ in test_utterances]
    texts = [text for _, text in test_utterances]
    padded, lens = batch_pad_right(wavs)
    results = recognizer.predict_batch(padded, lens, texts)
    for result, row in zip(results, hf_export[1]):
        assert_matches(result, row)


# Every variant of the model, light encoders unless named: trained for one
# epoch, exported, and predicted again from the export
VARIANTS = {
    "paper": {},
    "paired": {"fusion_type": "bridge_paired"},
    "cross-attention-no-masking": {
        "fusion_type": "cross_attention",
        "modality_masking": False,
    },
    "pooled-mean-no-refinement": {
        "fusion_type": "pooled_mean",
        "refinement": False,
    },
    "pooled-concat-classes-only": {
        "fusion_type": "pooled_concat",
        "w_valence": 0,
        "w_arousal": 0,
        "selection_metrics": ["UA"],
    },
    "dimensions-only": {
        "w_ce": 0,
        "selection_metrics": ["CCC_valence", "CCC_arousal"],
    },
    "audio-only": {"modalities": ["audio"]},
    "text-only": {"modalities": ["text"]},
    "dominance-session": {
        "n_dims": 3,
        "w_dominance": 0.2,
        "protocol": "session",
        "fold": 2,
    },
    # tiny HF encoders: learned sums of several hidden states
    "hf-cached-layer-sum": {
        "freeze_policy": "frozen",
        "feature_cache": True,
        "audio_layers": [0, 1, 2],
        "text_layers": [1, 2],
        "modality_masking": False,
    },
    "hf-fine-tuned-layer-sum": {"audio_layers": [1, 2]},
}
# Cached features are float16, the export computes float32 features: the
# tolerances of tests/test_cache.py (else those of the rounded files)
CACHED_PROBS_TOL, CACHED_DIMS_TOL = 5e-3, 0.02


@pytest.fixture(scope="module")
def variant_run(
    tmp_path_factory,
    synthetic_corpus,
    synthetic_prepared,
    tiny_hf_encoders,
    train,
):
    """``variant_run(name)``: (variant, run folder, export folder) of a
    variant, trained and exported once per module."""
    done = {}

    def get(name):
        if name not in done:
            variant = VARIANTS[name]
            work = tmp_path_factory.mktemp(name)
            encoders = ("fbank", "hashing")
            if name.startswith("hf-"):
                encoders = tiny_hf_encoders
            extra = {"number_of_epochs": 1, **variant}
            if variant.get("feature_cache"):
                extra["feature_cache_folder"] = str(work / "cache")
            run = work / "run"
            train(synthetic_corpus, synthetic_prepared, run, *encoders, extra)
            done[name] = variant, run, export_model(run, work / "model")
        return done[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_trains_with_its_settings(name, variant_run):
    variant, run, _ = variant_run(name)
    results = json.loads((run / "test_results.json").read_text())
    # the scores of what was trained, and only those
    classes = variant.get("w_ce", 1) > 0
    for key in ("WA", "UA", "macro_F1", "confusion"):
        assert (key in results) == classes, key
    assert ("CCC_valence" in results) == (variant.get("w_valence", 1) > 0)
    assert ("CCC_dominance" in results) == (variant.get("n_dims") == 3)
    # the run really used the variant: SpeechBrain saves the applied overrides
    # (values referenced elsewhere get a YAML anchor, &id001, dropped here)
    with open(run / "hyperparams.yaml") as fin:
        plain = [
            re.sub(r"^(\w+): &\w+ ", r"\1: ", line)
            for line in fin
            if re.match(r"^\w+: (&\w+ )?[^!&*]", line)
        ]
    saved = yaml.safe_load("".join(plain))
    for key, value in variant.items():
        assert saved[key] == value, key


@pytest.mark.slow
@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_export_reproduces_its_test_predictions(
    name, variant_run, manifest
):
    variant, run, model = variant_run(name)
    recognizer = MultimodalEmotionRecognizer.from_hparams(model)
    rows = read_rows(run)
    entries = [manifest[row["id"]] for row in rows]
    padded, lens = batch_pad_right([load_audio(e["wav"]) for e in entries])
    texts = [e["text"] for e in entries]
    tolerances = {}
    if variant.get("feature_cache"):
        tolerances = {
            "probs_tol": CACHED_PROBS_TOL,
            "dims_tol": CACHED_DIMS_TOL,
        }
    results = recognizer.predict_batch(padded, lens, texts)
    for result, row in zip(results, rows):
        assert_matches(result, row, **tolerances)


@pytest.mark.slow
def test_a_multi_layer_cached_run_exports_its_learned_layer_weights(
    variant_run,
):
    _, run, model = variant_run("hf-cached-layer-sum")
    exported = torch.load(model / "system.ckpt", weights_only=True)
    trained = torch.load(
        export_best_checkpoint(run).path / "system.ckpt", weights_only=True
    )
    for modality, layers in (("audio", 3), ("text", 2)):
        logits = exported[f"{modality}_layer_sum.logits"]
        assert logits.shape == (layers,) and logits.abs().sum() > 0
        assert torch.equal(logits, trained[f"{modality}_layer_sum.logits"])


def test_export_names_a_run_folder_without_checkpoints(light_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(light_run, run)
    shutil.rmtree(run / "save")
    with pytest.raises(ExportError, match=str(run / "save")):
        export_model(run, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_export_refuses_weights_that_do_not_fit_the_model_config(
    light_run, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(light_run, run)
    yaml = ruamel.yaml.YAML()
    tree = yaml.load(run / "hyperparams.yaml")
    tree["model_config"]["bridge_tokens"] = 3
    yaml.dump(tree, run / "hyperparams.yaml")
    with pytest.raises(ExportError, match="system.ckpt: the weights do not"):
        export_model(run, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert not list(tmp_path.glob(".model*"))  # staging folder removed


def test_export_names_a_run_without_a_model_config(light_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(light_run, run)
    yaml = ruamel.yaml.YAML()
    tree = yaml.load(run / "hyperparams.yaml")
    del tree["model_config"]
    yaml.dump(tree, run / "hyperparams.yaml")
    with pytest.raises(ExportError, match="hyperparams.yaml: no model_config"):
        export_model(run, tmp_path / "model")


def test_export_refuses_to_overwrite_a_folder(light_run, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export_model(light_run, tmp_path / "model")
    assert (tmp_path / "model" / "keep.txt").exists()


# ##### Missing modalities #####


def test_audio_only_equals_the_model_with_the_text_masked(
    recognizer, test_utterances
):
    wav_path, text = test_utterances[0]
    result = recognizer.predict_file(wav_path)
    assert result["path"] == "audio-only" and result["text_used"] is None
    assert_close_to(
        result, *masked_reference(recognizer, wav=load_audio(wav_path))
    )
    assert recognizer.predict_file(wav_path, "   ")["path"] == "audio-only"
    with_text = recognizer.predict_file(wav_path, text)
    assert with_text["probs"] != pytest.approx(result["probs"], abs=1e-6)


def test_text_only_equals_the_model_with_the_audio_masked(
    recognizer, test_utterances
):
    text = test_utterances[0][1]
    result = recognizer.predict_text(text)
    assert result["path"] == "text-only" and result["text_used"] == text
    assert_close_to(result, *masked_reference(recognizer, text=text))
    batch = recognizer.predict_batch(None, None, [text, "Yeah."])
    assert batch[0]["probs"] == pytest.approx(result["probs"], abs=1e-6)


def test_a_model_trained_without_text_ignores_transcripts(
    hf_export, recognizer, test_utterances
):
    audio_model = MultimodalEmotionRecognizer.from_hparams(
        hf_export[0], overrides={"model_config": {"modalities": ["audio"]}}
    )
    wav_path, text = test_utterances[0]
    result = audio_model.predict_file(wav_path, text)
    assert result["path"] == "audio-only" and result["text_used"] is None
    assert result["probs"] == pytest.approx(
        recognizer.predict_file(wav_path)["probs"], abs=1e-6
    )
    with pytest.raises(ValueError, match="needs"):
        MultimodalEmotionRecognizer.from_hparams(
            hf_export[0], overrides={"model_config": {"modalities": ["text"]}}
        ).predict_file(wav_path)


# ##### Audio input #####


def test_resampled_and_stereo_copies_predict_close_to_the_original(
    recognizer, test_utterances, tmp_path, caplog
):
    wav_path, text = test_utterances[0]
    wav, rate = audio_io.load(wav_path)
    low = tmp_path / "8k.wav"
    audio_io.save(
        str(low), torchaudio.functional.resample(wav, rate, 8000), 8000
    )
    stereo = tmp_path / "44k_stereo.wav"
    high = torchaudio.functional.resample(wav, rate, 44100)
    audio_io.save(str(stereo), high.repeat(2, 1), 44100)
    original = recognizer.predict_file(wav_path, text)
    with caplog.at_level("INFO"):
        for copy in (low, stereo):
            result = recognizer.predict_file(copy, text)
            assert result["label"] == original["label"]
            assert result["probs"] == pytest.approx(original["probs"], abs=0.05)
            assert result["valence"] == pytest.approx(
                original["valence"], abs=0.05
            )
    assert "upsampled to 16000 Hz" in caplog.text
    assert "2 channels, mixed down" in caplog.text


def long_file(test_utterances, folder, seconds):
    """The test utterances concatenated until ``seconds`` long."""
    wavs = [load_audio(wav) for wav, _ in test_utterances]
    wav = torch.cat(wavs * math.ceil(seconds * 16000 / sum(map(len, wavs))))
    wav = wav[: int(seconds * 16000)]
    path = folder / "long.wav"
    audio_io.save(str(path), wav[None], 16000)
    return path, load_audio(path)


def test_long_audio_is_split_into_equal_windows_and_averaged(
    hf_export, test_utterances, tmp_path
):
    recognizer = MultimodalEmotionRecognizer.from_hparams(
        hf_export[0], overrides={"max_audio_seconds": 2.0}
    )
    text = test_utterances[0][1]
    path, wav = long_file(test_utterances, tmp_path, 5.0)
    result = recognizer.predict_file(path, text)
    assert result["windows"] == 3
    # independent reference: 3 windows of 80000/3 samples, each alone
    bounds = [0, 26667, 53334, 80000]
    probs, dims = torch.zeros(4), torch.zeros(2)
    for start, end in zip(bounds, bounds[1:]):
        part = recognizer.predict_batch(wav[None, start:end], None, [text])[0]
        weight = (end - start) / len(wav)
        probs += weight * torch.tensor(list(part["probs"].values()))
        dims += weight * torch.tensor([part["valence"], part["arousal"]])
    assert_close_to(result, probs, dims)


def test_long_audio_truncate_mode_keeps_the_first_window(
    hf_export, test_utterances, tmp_path, caplog
):
    recognizer = MultimodalEmotionRecognizer.from_hparams(
        hf_export[0],
        overrides={"max_audio_seconds": 2.0, "long_audio": "truncate"},
    )
    text = test_utterances[0][1]
    path, wav = long_file(test_utterances, tmp_path, 5.0)
    with caplog.at_level("WARNING"):
        result = recognizer.predict_file(path, text)
    assert result["windows"] == 1 and "truncated" in caplog.text
    first = recognizer.predict_batch(wav[None, :32000], None, [text])[0]
    assert result["probs"] == pytest.approx(first["probs"], abs=1e-6)


# ##### ASR for missing transcripts #####


def test_missing_transcript_is_transcribed_by_the_named_asr_model(
    hf_export, test_utterances, tmp_path
):
    whisper = build_tiny_whisper(tmp_path / "whisper")
    recognizer = MultimodalEmotionRecognizer.from_hparams(
        hf_export[0], overrides={"asr_source": str(whisper)}
    )
    wav_path = test_utterances[0][0]
    result = recognizer.predict_file(wav_path)
    transcript = ASRTranscriber(whisper)(load_audio(wav_path))
    assert transcript  # the random model still emits a few tokens
    assert result["path"] == "audio+asr" and result["text_used"] == transcript
    given = recognizer.predict_file(wav_path, transcript)
    assert given["path"] == "audio+text"
    assert result["probs"] == pytest.approx(given["probs"], abs=1e-6)


def test_an_injected_transcriber_replaces_the_asr_model(
    hf_export, test_utterances
):
    heard = []

    def transcriber(wav):
        heard.append(len(wav))
        return "Oh my God, this is amazing! I got the job!"

    recognizer = MultimodalEmotionRecognizer.from_hparams(
        hf_export[0], transcriber=transcriber
    )
    wav_path, text = test_utterances[0]
    result = recognizer.predict_file(wav_path)
    assert result["path"] == "audio+asr" and heard == [
        len(load_audio(wav_path))
    ]
    assert result["text_used"].startswith("Oh my God")
    assert recognizer.predict_file(wav_path, text)["path"] == "audio+text"
    assert len(heard) == 1  # a given transcript is never re-transcribed
    silent = MultimodalEmotionRecognizer.from_hparams(
        hf_export[0], transcriber=lambda wav: ""
    )
    assert silent.predict_file(wav_path)["path"] == "audio-only"


# ##### Command line #####


def test_cli_reports_a_broken_file_and_predicts_the_others(
    hf_export, test_utterances, tmp_path, capsys
):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not a wav file at all")
    good = [wav for wav, _ in test_utterances[:2]]
    inputs = [good[0], str(empty), str(garbage), good[1]]
    code = predict_main(["--model", str(hf_export[0]), *inputs])
    assert code == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["file"] for row in rows] == inputs
    assert [("error" in row) for row in rows] == [False, True, True, False]
    assert str(empty) in rows[1]["error"] and str(garbage) in rows[2]["error"]
    assert rows[0]["label"] in rows[0]["probs"]


def test_cli_reads_folders_manifests_and_transcript_files(
    hf_export, recognizer, test_utterances, tmp_path
):
    folder = tmp_path / "audio"
    folder.mkdir()
    for wav, _ in test_utterances[:2]:
        shutil.copy(wav, folder)
    manifest = tmp_path / "manifest.csv"
    wav, text = test_utterances[2]
    manifest.write_text(f"path,text\n{wav},{text}\n")
    transcripts = tmp_path / "transcripts.csv"
    first = os.path.basename(test_utterances[0][0])
    transcripts.write_text(
        f'path,text\naudio/{first},"{test_utterances[0][1]}"\n'
    )
    output = tmp_path / "out.csv"
    code = predict_main(
        [
            "--model",
            str(hf_export[0]),
            str(folder),
            str(manifest),
            "--transcripts",
            str(transcripts),
            "--format",
            "csv",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    with open(output) as fin:
        rows = list(csv.DictReader(fin))
    assert len(rows) == 3
    paths = {os.path.basename(r["file"]): r["path"] for r in rows}
    assert paths[first] == "audio+text"  # from --transcripts
    assert paths[os.path.basename(test_utterances[1][0])] == "audio-only"
    assert paths[os.path.basename(wav)] == "audio+text"  # manifest text
    expected = recognizer.predict_file(wav, text)
    assert float(rows[2]["p_neu"]) == pytest.approx(
        expected["probs"]["neu"], abs=1e-5
    )
    assert rows[2]["label"] == expected["label"]


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "no/such/model", "a.wav"],
        ["--model", "{model}", "a.wav", "b.wav", "--text", "hi"],
        ["--model", "{model}"],
        ["--model", "{model}", "{empty_folder}"],
        ["--model", "{model}", "a.wav", "--format", "xml"],
    ],
    ids=["no-model", "text-for-two", "no-input", "empty-folder", "format"],
)
def test_cli_usage_errors_exit_with_2(args, hf_export, tmp_path):
    (tmp_path / "empty").mkdir()
    args = [
        a.format(model=hf_export[0], empty_folder=tmp_path / "empty")
        for a in args
    ]
    assert predict_main(args) == 2


def test_cli_predicts_text_alone(hf_export, capsys):
    code = predict_main(["--model", str(hf_export[0]), "--text", "Yeah."])
    row = json.loads(capsys.readouterr().out)
    assert code == 0 and row["path"] == "text-only" and row["file"] is None


@pytest.mark.parametrize(
    "verb",
    [
        "prepare",
        "folds",
        "synth",
        "demo",
        "cv",
        "table",
        "export",
        "predict",
        "serve",
    ],
)
def test_every_verb_of_the_one_command_has_help(verb, capsys):
    assert mtmm([verb, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: mtmm {verb}")


def test_an_unknown_verb_is_a_usage_error(capsys):
    assert mtmm(["no-such-verb"]) == 2
    assert "invalid choice" in capsys.readouterr().err


# ##### Reliability and trust #####


def test_export_refuses_an_output_folder_that_is_or_holds_the_run(
    light_run, tmp_path
):
    run = tmp_path / "runs" / "run"
    shutil.copytree(light_run, run)
    for out in (run, run.parent, tmp_path):
        with pytest.raises(ExportError, match="would delete the run"):
            export_model(run, out, overwrite=True)
    assert (run / "test_results.json").is_file()
    assert sorted((run / "save").iterdir())


def test_a_weight_file_changed_after_the_export_is_refused(light_run, tmp_path):
    model = export_model(light_run, tmp_path / "model")
    weights = model / "system.ckpt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one corrupted byte inside a tensor
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"system.ckpt: missing or changed"):
        MultimodalEmotionRecognizer.from_hparams(model)


def test_non_finite_predictions_are_an_error_naming_the_model(
    light_run, tmp_path, capsys
):
    model = export_model(light_run, tmp_path / "model")
    state = torch.load(model / "system.ckpt", weights_only=True)
    key = next(k for k in state if k.startswith("model.heads."))
    state[key] = torch.full_like(state[key], float("nan"))
    torch.save(state, model / "system.ckpt")
    record_digests(model)  # signed again, as if exported so
    assert predict_main(["--model", str(model), "--text", "Yeah."]) == 1
    out = capsys.readouterr().out
    row = json.loads(out)  # valid JSON: no bare NaN
    assert row["error"].startswith("FloatingPointError: ")
    assert str(model.resolve()) in row["error"]


@pytest.mark.parametrize(
    "text, message",
    [
        ('path,text\na.wav,"Hello\nb.wav,Bye\n', "line 2: a quoted field runs"),
        ("path,text\na.wav,Hello, you\n", "line 2: 3 fields, the header has 2"),
        ("path,text\na.wav,Hi\n,Bye\n", "line 3: empty path"),
    ],
    ids=["unterminated-quote", "unquoted-comma", "empty-path"],
)
def test_malformed_manifest_rows_are_errors_naming_their_line(
    text, message, tmp_path
):
    path = tmp_path / "m.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        read_csv(path)


def test_a_manifest_with_an_excel_byte_order_mark_reads(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,text\na.wav,Hi\n", encoding="utf-8-sig")
    assert read_csv(path) == [{"path": "a.wav", "text": "Hi"}]


def test_short_or_silent_audio_gets_a_warning(recognizer, tmp_path):
    clip, silence = tmp_path / "clip.wav", tmp_path / "silence.wav"
    audio_io.save(str(clip), 0.1 * torch.randn(1, 800), 16000)  # 0.05 s
    audio_io.save(str(silence), torch.zeros(1, 16000), 16000)
    assert recognizer.predict_file(clip, "Yeah.")["warning"] == (
        "very short audio (0.05 s)"
    )
    assert "silent audio" in recognizer.predict_file(silence)["warning"]
    assert "warning" not in recognizer.predict_text("Yeah.")


def test_text_used_is_the_text_the_model_saw(recognizer):
    encoder = recognizer.system.text_encoder
    long = " ".join(["really"] * 400)
    seen = recognizer.predict_text(long)["text_used"]
    assert seen.startswith("really really") and len(seen) < len(long)
    assert len(encoder.tokenize(seen)) <= encoder.max_length
    assert len(encoder.tokenizer(seen)["input_ids"]) <= encoder.max_length
    assert recognizer.predict_text("Yeah.")["text_used"] == "Yeah."
