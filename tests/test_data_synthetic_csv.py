"""The synthetic corpus with a CSV manifest (input of ``mtmm prepare csv``)."""

import csv
import os
from collections import defaultdict

import pytest
import soundfile

from speechbrain_mtmm.data.synthetic_csv import (
    CORPUS_DIRNAME,
    LABELS,
    MANIFEST_NAME,
    generate_synthetic_csv_corpus,
)

SMALL = {"n_speakers": 3, "per_speaker": 5, "seconds": (0.3, 0.6)}


def read_manifest(out):
    path = out / CORPUS_DIRNAME / MANIFEST_NAME
    with open(path, newline="", encoding="utf-8") as fin:
        reader = csv.DictReader(fin)
        return reader.fieldnames, list(reader)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("csv_corpus")
    written = generate_synthetic_csv_corpus(out, seed=3, split=True, **SMALL)
    return out, written


def test_the_csv_rows_equal_what_is_returned(corpus):
    out, written = corpus
    _, rows = read_manifest(out)
    folder = out / CORPUS_DIRNAME
    assert len(rows) == len(written)
    for row in rows:
        utt = os.path.splitext(os.path.basename(row["path"]))[0]
        truth = written[utt]
        assert not os.path.isabs(row["path"])
        assert os.path.abspath(folder / row["path"]) == truth["path"]
        assert utt.startswith(row["speaker"] + "_")
        for key in ("text", "label", "speaker", "split"):
            assert row[key] == truth[key], key
        for dim in ("valence", "arousal", "dominance"):
            assert float(row[dim]) == truth[dim], dim


def test_some_texts_need_the_csv_quoting(corpus):
    texts = [w["text"] for w in corpus[1].values()]
    assert any("," in t and '"' in t for t in texts)
    raw = (corpus[0] / CORPUS_DIRNAME / MANIFEST_NAME).read_text()
    assert '""' in raw  # a doubled quote inside a quoted field


def test_every_speaker_has_every_label(tmp_path):
    written = generate_synthetic_csv_corpus(
        tmp_path, n_speakers=4, per_speaker=4, seconds=(0.3, 0.4)
    )
    labels = defaultdict(list)
    for entry in written.values():
        labels[entry["speaker"]].append(entry["label"])
    assert sorted(labels) == ["spk01", "spk02", "spk03", "spk04"]
    for speaker, seen in labels.items():
        assert sorted(seen) == sorted(LABELS), speaker


def test_ratings_are_on_the_requested_scale(tmp_path):
    written = generate_synthetic_csv_corpus(
        tmp_path, per_speaker=8, seconds=(0.3, 0.4), scale=(1, 7)
    )
    values = [
        w[dim]
        for w in written.values()
        for dim in ("valence", "arousal", "dominance")
    ]
    assert all(1 <= v <= 7 and v == round(v, 2) for v in values)
    assert max(values) > 5  # a 1-5 scale would not reach this
    happy = [w["valence"] for w in written.values() if w["label"] == "happy"]
    sad = [w["valence"] for w in written.values() if w["label"] == "sad"]
    assert min(happy) > max(sad)


def test_split_keeps_speakers_whole_and_covers_every_split(corpus):
    splits = defaultdict(set)
    for entry in corpus[1].values():
        splits[entry["split"]].add(entry["speaker"])
    assert sorted(splits) == ["test", "train", "valid"]
    assert sum(len(s) for s in splits.values()) == SMALL["n_speakers"]


def test_optional_columns_are_left_out(tmp_path):
    written = generate_synthetic_csv_corpus(
        tmp_path, dimensions=False, speakers=False, **SMALL
    )
    fields, rows = read_manifest(tmp_path)
    assert fields == ["path", "text", "label"]
    assert len(rows) == len(written)
    entry = next(iter(written.values()))
    assert "valence" not in entry
    assert entry["speaker"] is None and entry["split"] is None


def test_wav_durations_match_the_returned_seconds(corpus):
    for entry in corpus[1].values():
        info = soundfile.info(entry["path"])
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.subtype == "PCM_16"
        assert info.frames / info.samplerate == pytest.approx(entry["seconds"])
        assert 0.3 <= entry["seconds"] <= 0.6


def test_the_same_seed_gives_identical_csv_bytes(tmp_path):
    manifests = []
    for name in ("a", "b"):
        generate_synthetic_csv_corpus(tmp_path / name, seed=7, **SMALL)
        path = tmp_path / name / CORPUS_DIRNAME / MANIFEST_NAME
        manifests.append(path.read_bytes())
    assert manifests[0] == manifests[1]
