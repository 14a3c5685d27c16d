"""ASR transcripts a run can trust (issue 28, items 2 and 17): a resumed
run reads the transcripts an uninterrupted one would (whatever the cache
held, whatever shared a batch), records them, leaves the random state as
it found it; a language the ASR model cannot take is refused in one line
before anything is computed or written. Tiny random models, built
locally."""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.data.synthetic import RELEASE_DIRNAME
from speechbrain_mtmm.encoders.asr import (
    ASRSettingError,
    ASRTranscriber,
    check_asr_source,
)
from speechbrain_mtmm.testing.recipes import (
    OFFLINE_ENV,
    load_recipe,
    recipe_command,
)
from speechbrain_mtmm.testing.tiny_models import (
    build_tiny_wav2vec2_ctc,
    build_tiny_whisper,
)
from speechbrain_mtmm.training.inputs import prepare_asr_transcripts
from speechbrain_mtmm.training.transcripts import (
    CACHE_FILE,
    RECORD_FILE,
    TranscriptCache,
    TranscriptSettingError,
)


def read_json(path):
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


@pytest.fixture(scope="module")
def whispers(tmp_path_factory):
    """Tiny Whispers: ``tiny`` (no languages listed), ``english_only``
    (as ``*.en``) and ``multilingual`` (English and German)."""
    root = tmp_path_factory.mktemp("whispers")
    return {
        "tiny": build_tiny_whisper(root / "tiny"),
        "english_only": build_tiny_whisper(
            root / "english_only", english_only=True
        ),
        "multilingual": build_tiny_whisper(
            root / "multilingual", languages=("en", "de")
        ),
    }


@pytest.fixture(scope="module")
def wavs(synthetic_prepared):
    """Seven utterances of the synthetic corpus, not in id order."""
    manifest = read_json(synthetic_prepared / "iemocap.json")
    chosen = list(manifest.items())[::9][:7]
    return {utt: entry["wav"] for utt, entry in reversed(chosen)}


# ------------------------------------------------------ item 17: language


def generate_refuses(asr, language, wav):
    """Whether transformers' own pipeline refuses the language (the
    reference: no check of ours in the way)."""
    kwargs = {"generate_kwargs": {"language": language}} if language else {}
    try:
        asr({"raw": wav.numpy(), "sampling_rate": 16000}, **kwargs)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("layout", ["tiny", "english_only", "multilingual"])
def test_an_asr_language_is_refused_exactly_when_whisper_would_refuse_it(
    whispers, wavs, layout
):
    wav = load_audio(next(iter(wavs.values())))[:16000]
    asr = pipeline("automatic-speech-recognition", model=str(whispers[layout]))
    for language in (None, "english", "klingon"):
        try:
            check_asr_source(whispers[layout], language)
            refused = False
        except ASRSettingError:
            refused = True
        assert refused == generate_refuses(asr, language, wav), language


@pytest.mark.parametrize("layout", ["tiny", "english_only"])
def test_the_default_english_with_a_whisper_without_languages_is_one_line(
    whispers, layout
):
    with pytest.raises(ASRSettingError) as error:
        check_asr_source(whispers[layout], "english")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("asr_language=english: ")
    assert str(whispers[layout]) in message
    assert "--asr_language=null" in message and "multilingual" in message


@pytest.fixture(scope="module")
def recipe_main(recipe):
    """The IEMOCAP recipe's ``main``, run in this process."""
    return load_recipe(recipe).main


@pytest.mark.parametrize(
    "extra, error",
    [
        ({"asr_language": "english"}, ASRSettingError),
        (
            {"asr_language": "null", "feature_cache": True},
            TranscriptSettingError,
        ),
    ],
    ids=["asr_language", "asr_with_feature_cache"],
)
def test_a_refused_transcript_setting_leaves_no_run_folder_and_no_cache(
    tmp_path,
    monkeypatch,
    recipe,
    recipe_main,
    synthetic_corpus,
    synthetic_prepared,
    whispers,
    extra,
    error,
):
    prepared = shutil.copytree(synthetic_prepared, tmp_path / "prepared")
    before = sorted(p.relative_to(prepared) for p in prepared.rglob("*"))
    output = tmp_path / "run"
    command = recipe_command(
        recipe,
        synthetic_corpus / RELEASE_DIRNAME,
        prepared,
        output,
        "fbank",
        "hashing",
        {
            "transcripts": "asr",
            "asr_source": str(whispers["tiny"]),
            "feature_cache_folder": str(tmp_path / "features"),
            **extra,
        },
    )
    monkeypatch.chdir(recipe)
    with pytest.raises(error):
        recipe_main(command[2:])
    assert not output.exists()
    assert not (tmp_path / "features").exists()
    assert sorted(p.relative_to(prepared) for p in prepared.rglob("*")) == (
        before
    )


# ------------------------------------------- item 2: fixed transcripts


def test_a_transcript_does_not_depend_on_the_others_in_its_batch(
    tmp_path, wavs
):
    """wav2vec 2.0 base layout (no attention mask): in a padded batch it
    would hear the padding; each utterance is compared with the same
    model's pipeline run on it alone."""
    ctc = build_tiny_wav2vec2_ctc(tmp_path / "ctc")
    audio = [load_audio(wav) for wav in wavs.values()]
    alone = pipeline("automatic-speech-recognition", model=str(ctc))
    expected = [
        alone({"raw": a.numpy(), "sampling_rate": 16000})["text"].strip()
        for a in audio
    ]
    assert ASRTranscriber(ctc, batch_size=4).transcribe(audio) == expected


class BatchEcho:
    """A stand-in ASR model whose every transcript depends on the whole
    batch it is in (as padding can make it), so that any difference in
    batch make-up shows in the text; fails after ``fail_after`` batches
    (a run killed while transcribing)."""

    source = "batch-echo"
    sample_rate = 16000
    decoding = {}

    def __init__(self, batch_size, fail_after=None):
        self.batch_size = batch_size
        self.fail_after = fail_after
        self.batches = 0

    def fingerprint(self):
        return "0" * 64

    def transcribe(self, wavs):
        if self.batches == self.fail_after:
            raise KeyboardInterrupt("killed")
        self.batches += 1
        return echo(wavs)


def echo(audio):
    """What :class:`BatchEcho` writes for a batch."""
    batch = hashlib.sha256(b"".join(a.numpy().tobytes() for a in audio))
    return [f"{batch.hexdigest()[:8]}/{i}" for i in range(len(audio))]


def one_pass(wavs, size):
    """The transcripts of one uninterrupted pass: batches of ``size``
    over the sorted ids (the reference, written out independently)."""
    ids = sorted(wavs)
    texts = {}
    for start in range(0, len(ids), size):
        batch = ids[start : start + size]
        texts.update(zip(batch, echo([load_audio(wavs[u]) for u in batch])))
    return texts


@pytest.mark.parametrize(
    "before", ["killed", "killed_with_another_batch_size", "a_subset_cached"]
)
def test_cached_transcripts_equal_one_uninterrupted_pass(
    tmp_path, wavs, before
):
    if before == "a_subset_cached":
        subset = dict(list(wavs.items())[::2])
        TranscriptCache(tmp_path, BatchEcho(3)).transcribe(subset, False)
    else:
        size = 2 if before == "killed_with_another_batch_size" else 3
        with pytest.raises(KeyboardInterrupt):
            TranscriptCache(tmp_path, BatchEcho(size, 1)).transcribe(
                wavs, False
            )
        assert len(read_json(tmp_path / ("0" * 16) / CACHE_FILE)) == size
    texts = TranscriptCache(tmp_path, BatchEcho(3)).transcribe(wavs, False)
    assert texts == one_pass(wavs, 3)
    assert list(texts) == list(wavs)


@pytest.fixture
def small_manifest(tmp_path, wavs):
    """A manifest of the seven utterances."""
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps({u: {"wav": w} for u, w in wavs.items()}))
    return path


def draws():
    """One draw of each generator a run uses."""
    return torch.rand(2).tolist(), np.random.rand(), random.random()


def test_asr_leaves_the_random_state_as_it_found_it(
    tmp_path, whispers, small_manifest
):
    """The transformers pipeline draws from torch's generator on every
    call: a run whose transcripts were partly cached would train from
    another state than one that transcribed everything."""
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    expected = draws()
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    prepare_asr_transcripts(
        small_manifest,
        {"device": "cpu"},
        whispers["tiny"],
        tmp_path / "cache",
        batch_size=2,
    )
    assert draws() == expected


def fake_checkpoint(run):
    """What makes a run folder one that has trained."""
    (run / "save" / "CKPT+2026-01-01+00-00-00+00").mkdir(parents=True)


def test_a_resumed_run_reads_the_transcripts_it_recorded(
    tmp_path, whispers, small_manifest
):
    run, cache = tmp_path / "run", tmp_path / "cache"
    options = {"device": "cpu"}, whispers["tiny"], cache
    first = prepare_asr_transcripts(small_manifest, *options, run_folder=run)
    assert read_json(run / RECORD_FILE)["transcripts"] == first
    fake_checkpoint(run)
    # the shared cache changes (here: by hand) after the run started
    (path,) = cache.glob(f"*/{CACHE_FILE}")
    entries = read_json(path)
    for entry in entries.values():
        entry["text"] = "something else"
    path.write_text(json.dumps(entries))
    again = prepare_asr_transcripts(small_manifest, *options, run_folder=run)
    assert again == first
    fresh = prepare_asr_transcripts(
        small_manifest, *options, run_folder=tmp_path / "new_run"
    )
    assert set(fresh.values()) == {"something else"}


def test_a_changed_transcript_record_is_refused_naming_it(
    tmp_path, whispers, small_manifest
):
    run = tmp_path / "run"
    options = {"device": "cpu"}, whispers["tiny"], tmp_path / "cache"
    prepare_asr_transcripts(small_manifest, *options, run_folder=run)
    fake_checkpoint(run)
    record = read_json(run / RECORD_FILE)
    first = next(iter(record["transcripts"]))
    record["transcripts"][first] = "edited by hand"
    (run / RECORD_FILE).write_text(json.dumps(record))
    with pytest.raises(TranscriptSettingError) as error:
        prepare_asr_transcripts(small_manifest, *options, run_folder=run)
    message = str(error.value)
    assert str(run / RECORD_FILE) in message and "\n" not in message
    assert "--start_over=True" in message


# --------------------------------------- item 2: a real kill during ASR


def kill_during_asr(command, recipe, cache, total):
    """Starts the recipe and kills it (SIGKILL) once the ASR cache holds
    some transcripts but not all; returns how many it held."""
    process = subprocess.Popen(
        command,
        cwd=recipe,
        env=dict(os.environ, **OFFLINE_ENV),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while process.poll() is None and time.time() < deadline:
        # written atomically, whole batches: it appears with some in it
        if any(Path(cache).glob(f"*/{CACHE_FILE}")):
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (path,) = Path(cache).glob(f"*/{CACHE_FILE}")
    held = len(read_json(path))
    assert 0 < held < total, f"killed with {held} of {total} transcribed"
    return held


@pytest.mark.slow
def test_a_run_killed_during_asr_resumes_to_the_results_of_an_uninterrupted_one(
    tmp_path, recipe, synthetic_corpus, synthetic_prepared, whispers
):
    """SIGKILL once the ASR cache holds some of the corpus' transcripts,
    then the same command: the resumed run transcribes the rest in the
    same fixed batches, records the same transcripts and ends with the
    test results and predictions of a run left alone (CPU)."""
    total = len(read_json(synthetic_prepared / "iemocap.json"))

    def command(name):
        """The same run, in its own folder and ASR cache."""
        return recipe_command(
            recipe,
            synthetic_corpus / RELEASE_DIRNAME,
            synthetic_prepared,
            tmp_path / name,
            "fbank",
            "hashing",
            {
                "number_of_epochs": 1,
                "transcripts": "asr",
                "test_transcripts": "[asr]",
                "asr_source": str(whispers["tiny"]),
                "asr_language": "null",
                "asr_batch_size": 1,
                "asr_cache_folder": str(tmp_path / f"{name}_asr"),
            },
        )

    env = dict(os.environ, **OFFLINE_ENV)
    whole = tmp_path / "whole"
    subprocess.run(command("whole"), cwd=recipe, env=env, check=True)
    killed = tmp_path / "killed"
    kill_during_asr(command("killed"), recipe, tmp_path / "killed_asr", total)
    subprocess.run(command("killed"), cwd=recipe, env=env, check=True)
    assert read_json(killed / RECORD_FILE) == read_json(whole / RECORD_FILE)
    assert read_json(killed / "test_results.json") == read_json(
        whole / "test_results.json"
    )
    assert (killed / "test_predictions.jsonl").read_text() == (
        whole / "test_predictions.jsonl"
    ).read_text()
