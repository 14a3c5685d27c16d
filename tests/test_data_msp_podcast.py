"""MSP-Podcast preparation on a synthetic release in the exact layout."""

import csv
import json
import shutil
from collections import Counter

import pytest

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data.msp_podcast import (
    CLASSES,
    MSPPodcastError,
    fold_files,
    prepare_msp_podcast,
)
from speechbrain_mtmm.data.synthetic_msp import (
    RELEASE_DIRNAME,
    generate_synthetic_msp_podcast,
)

SPLIT_FILES = {
    "Train": "train",
    "Development": "valid",
    "Test1": "test",
    "Test2": "test2",
    "Test3": "test3",
}


def read_json(path):
    with open(path) as fin:
        return json.load(fin)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("msp")
    written = generate_synthetic_msp_podcast(out, 80, seed=1, missing_text=0.1)
    return out / RELEASE_DIRNAME, written


@pytest.fixture(scope="module")
def prepared(release, tmp_path_factory):
    folder = tmp_path_factory.mktemp("msp_prepared")
    summary = prepare_msp_podcast(release[0], folder)
    return folder, summary


@pytest.fixture
def release_copy(release, tmp_path):
    copy = tmp_path / RELEASE_DIRNAME
    shutil.copytree(release[0], copy)
    return copy


def test_the_manifest_holds_exactly_what_the_release_holds(release, prepared):
    _, written = release
    manifest = read_json(prepared[0] / "msp_podcast.json")
    assert sorted(manifest) == sorted(written)
    for utt, entry in manifest.items():
        truth = written[utt]
        assert entry["split"] == truth["split"]
        assert entry["emo"] == CLASSES.get(truth["code"])  # O/X: None
        for dim in ("valence", "arousal", "dominance"):
            assert entry[dim] == truth[dim]  # the release's 1-7 scale
        assert entry["text"] == truth["text"]
        assert entry["speaker"] == truth["speaker"]
        assert entry["duration"] == pytest.approx(truth["seconds"])


def test_the_official_split_is_written_in_the_fold_layout(release, prepared):
    _, written = release
    files = fold_files(prepared[0])
    for split, name in SPLIT_FILES.items():
        expected = sorted(u for u, w in written.items() if w["split"] == split)
        assert sorted(read_json(files[name])) == expected, split


def test_the_summary_counts_what_has_no_class_or_no_transcript(
    release, prepared
):
    _, written = release
    summary = prepared[1]
    labelled = [w for w in written.values() if w["split"] != "Test3"]
    no_class = Counter(w["code"] for w in labelled if w["code"] in "OX")
    assert summary["no_class_counts"] == dict(sorted(no_class.items()))
    no_text = Counter(w["split"] for w in written.values() if not w["text"])
    assert summary["missing_transcript_counts"] == dict(sorted(no_text.items()))
    assert sum(summary["split_counts"].values()) == len(written)


def rewrite_row(release, index, column, value):
    path = release / "Labels" / "labels_consensus.csv"
    with open(path, newline="") as fin:
        rows = list(csv.reader(fin))
    rows[index][column] = value
    with open(path, "w", newline="") as fout:
        csv.writer(fout).writerows(rows)
    return path


@pytest.mark.parametrize(
    "column, value, message",
    [
        (1, "Q", "unknown EmoClass 'Q'"),
        (3, "9.5", "EmoVal 9.5 is outside the 1-7 scale"),
        (2, "high", "EmoAct 'high' is not a number"),
        (7, "Test4", "unknown Split_Set 'Test4'"),
    ],
)
def test_a_malformed_row_is_an_error_naming_its_line(
    release_copy, tmp_path, column, value, message
):
    path = rewrite_row(release_copy, 3, column, value)
    with pytest.raises(MSPPodcastError, match=f"^{path}: line 4: {message}"):
        prepare_msp_podcast(release_copy, tmp_path / "out")


def test_a_missing_wav_is_listed_or_dropped_and_counted(release_copy, tmp_path):
    wav = sorted((release_copy / "Audios").glob("*.wav"))[0]
    wav.unlink()
    with pytest.raises(MSPPodcastError, match=f"1 labelled file.*{wav.name}"):
        prepare_msp_podcast(release_copy, tmp_path / "out")
    summary = prepare_msp_podcast(release_copy, tmp_path / "out", True)
    assert summary["skipped_counts"] == {"missing_wav": 1}
    manifest = read_json(tmp_path / "out" / "msp_podcast.json")
    assert wav.stem not in manifest


def test_the_cli_prepares_a_release_in_one_line(release, tmp_path, capsys):
    status = mtmm(
        [
            "prepare",
            "msp-podcast",
            "--data_folder",
            str(release[0]),
            "--save_folder",
            str(tmp_path),
        ]
    )
    assert status == 0
    assert json.loads(capsys.readouterr().out)["utterances"] == len(release[1])
    status = mtmm(
        [
            "prepare",
            "msp-podcast",
            "--data_folder",
            str(tmp_path / "no"),
            "--save_folder",
            str(tmp_path / "x"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("mtmm prepare: MSPPodcastError: ")
