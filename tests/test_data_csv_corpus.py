"""``mtmm prepare csv``: any corpus from a CSV manifest, checked row by row,
with speaker-independent folds in IEMOCAP's layout."""

import csv
import json

import pytest

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data.corpus import read_corpus_info
from speechbrain_mtmm.data.csv_corpus import (
    MANIFEST_NAME,
    CorpusCSVError,
    prepare_csv,
)
from speechbrain_mtmm.data.folds import SPLITS, fold_paths, group_folds
from speechbrain_mtmm.data.synthetic_csv import (
    CORPUS_DIRNAME,
    generate_synthetic_csv_corpus,
)
from speechbrain_mtmm.experiments.sweep import plan_runs

SMALL = {"per_speaker": 4, "seconds": (0.3, 0.5)}


def load(path):
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fout:
        out = csv.writer(fout)
        out.writerow(header)
        out.writerows(rows)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("csv")
    written = generate_synthetic_csv_corpus(out, n_speakers=5, **SMALL)
    return out / CORPUS_DIRNAME, written


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    folder, _ = corpus
    save = tmp_path_factory.mktemp("prepared")
    summary = prepare_csv(
        folder / "corpus.csv", save, folds=5, scale=(1, 5), progress=False
    )
    return save, summary


def wavs(corpus, n=1):
    """Real audio files of the corpus (absolute paths)."""
    return [str(w["path"]) for w in list(corpus[1].values())[:n]]


def test_the_manifest_holds_exactly_what_the_csv_says(corpus, prepared):
    _, written = corpus
    manifest = load(prepared[0] / MANIFEST_NAME)
    assert set(manifest) == set(written)
    for utt, truth in written.items():
        entry = manifest[utt]
        assert entry["wav"] == truth["path"]
        assert entry["text"] == truth["text"]
        assert entry["emo"] == truth["label"]
        assert entry["speaker"] == truth["speaker"]
        for dim in ("valence", "arousal", "dominance"):
            assert entry[dim] == truth[dim]
        assert entry["duration"] == pytest.approx(truth["seconds"], abs=1e-3)


def test_speaker_folds_test_every_speaker_once_and_never_mix_splits(
    corpus, prepared
):
    save, _ = prepared
    speakers = {w["speaker"] for w in corpus[1].values()}
    tested = []
    for fold in range(1, 6):
        found = {}
        for split, path in fold_paths(save, "speaker", fold).items():
            found[split] = {e["speaker"] for e in load(path).values()}
        assert set().union(*found.values()) == speakers
        for i, first in enumerate(SPLITS):
            for second in SPLITS[i + 1 :]:
                assert not found[first] & found[second]
        tested += sorted(found["test"])
    assert sorted(tested) == sorted(speakers)


def test_corpus_json_describes_labels_dimensions_scale_and_folds(prepared):
    info = read_corpus_info(prepared[0])
    assert info["corpus"] == "csv"
    assert info["labels"] == ["angry", "happy", "neutral", "sad"]
    assert info["dimensions"] == ["valence", "arousal", "dominance"]
    assert info["rating_scale"] == [1.0, 5.0]
    assert info["protocols"] == {"speaker": 5}


def test_group_folds_balance_utterances_across_groups():
    sizes = {f"s{i}": n for i, n in enumerate([9, 7, 6, 5, 4, 3, 2, 2, 1, 1])}
    folds = group_folds(sizes, 4)
    totals = [sum(sizes[s] for s in folds[k]["test"]) for k in folds]
    assert sum(totals) == sum(sizes.values())
    # largest first to the smallest group: 11, 10, 10, 9 of 40
    assert max(totals) - min(totals) <= 2


def test_a_split_column_is_used_as_given(tmp_path):
    written = generate_synthetic_csv_corpus(
        tmp_path, n_speakers=5, split=True, **SMALL
    )
    summary = prepare_csv(
        tmp_path / CORPUS_DIRNAME / "corpus.csv",
        tmp_path / "p",
        scale=(1, 5),
        progress=False,
    )
    assert summary["protocol"] == "split"
    paths = fold_paths(tmp_path / "p", "split", 1)
    for split, path in paths.items():
        expected = {u for u, w in written.items() if w["split"] == split}
        assert set(load(path)) == expected


def test_no_speakers_refuses_folds_and_says_why(tmp_path):
    generate_synthetic_csv_corpus(
        tmp_path, n_speakers=3, speakers=False, **SMALL
    )
    with pytest.raises(CorpusCSVError, match="no speaker column.*utterance"):
        prepare_csv(
            tmp_path / CORPUS_DIRNAME / "corpus.csv",
            tmp_path / "p",
            scale=(1, 5),
            progress=False,
        )


def test_utterance_folds_test_every_utterance_once(tmp_path):
    written = generate_synthetic_csv_corpus(
        tmp_path, n_speakers=3, speakers=False, **SMALL
    )
    summary = prepare_csv(
        tmp_path / CORPUS_DIRNAME / "corpus.csv",
        tmp_path / "p",
        folds=3,
        scale=(1, 5),
        utterance_folds=True,
        progress=False,
    )
    assert summary["protocol"] == "utterance"
    tested = []
    for fold in (1, 2, 3):
        tested += load(fold_paths(tmp_path / "p", "utterance", fold)["test"])
    assert sorted(tested) == sorted(written)


def test_ratings_without_a_scale_are_refused(corpus, tmp_path):
    with pytest.raises(CorpusCSVError, match="--scale LOW HIGH"):
        prepare_csv(corpus[0] / "corpus.csv", tmp_path, progress=False)


@pytest.mark.parametrize(
    "row, message",
    [
        (["missing.wav", "Hi.", "sad", "3", "spk"], "line 3: .*no such audio"),
        (["{wav}", "Hi.", "bored", "3", "spk"], "line 3: label 'bored'"),
        (["{wav}", "Hi.", "sad", "9", "spk"], "line 3: valence 9 is outside"),
        (["{wav}", "Hi.", "sad", "x", "spk"], "line 3: valence 'x' is not"),
        (["{wav}", " ", "sad", "3", "spk"], "line 3: empty transcript"),
        (["{wav}", "Hi.", "sad", "3", ""], "line 3: empty speaker"),
        (["{wav}", "Hi.", "", "", "spk"], "line 3: neither a label nor"),
        (["{wav}", "Hi", "sad", "3"], "line 3: 4 fields, the header has 5"),
    ],
)
def test_a_bad_row_is_named_by_file_and_line(corpus, tmp_path, row, message):
    first, wav = wavs(corpus, 2)
    good = [first, "Fine.", "sad", "3", "spk"]
    path = write_csv(
        tmp_path / "bad.csv",
        ["path", "text", "label", "valence", "speaker"],
        [good, [field.format(wav=wav) for field in row]],
    )
    with pytest.raises(CorpusCSVError, match=f"bad.csv {message}"):
        prepare_csv(
            path,
            tmp_path / "p",
            scale=(1, 5),
            labels=["sad", "happy"],
            progress=False,
        )


def test_a_duplicate_utterance_id_is_refused(corpus, tmp_path):
    (wav,) = wavs(corpus)
    path = write_csv(
        tmp_path / "dup.csv",
        ["path", "text", "label", "speaker"],
        [[wav, "One.", "sad", "a"], [wav, "Two.", "sad", "b"]],
    )
    with pytest.raises(CorpusCSVError, match="line 3: utterance id .* again"):
        prepare_csv(path, tmp_path / "p", progress=False)


def test_corrupt_audio_is_named_by_line(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    path = write_csv(
        tmp_path / "c.csv",
        ["path", "text", "label", "speaker"],
        [["broken.wav", "Hi.", "sad", "a"]],
    )
    with pytest.raises(CorpusCSVError, match="c.csv line 2: .*broken.wav"):
        prepare_csv(path, tmp_path / "p", progress=False)


def test_more_folds_than_speakers_are_refused(corpus, tmp_path):
    with pytest.raises(CorpusCSVError, match="at least 9 speakers"):
        prepare_csv(
            corpus[0] / "corpus.csv",
            tmp_path / "p",
            folds=9,
            scale=(1, 5),
            progress=False,
        )


def test_allow_missing_text_keeps_and_counts_empty_transcripts(
    corpus, tmp_path
):
    rows = [
        [wav, "" if i == 0 else "Words.", "sad", f"s{i % 3}"]
        for i, wav in enumerate(wavs(corpus, 6))
    ]
    path = write_csv(
        tmp_path / "t.csv", ["path", "text", "label", "speaker"], rows
    )
    summary = prepare_csv(
        path, tmp_path / "p", folds=3, allow_missing_text=True, progress=False
    )
    assert summary["missing_transcript"] == 1
    manifest = load(tmp_path / "p" / MANIFEST_NAME)
    assert sum(e["text"] is None for e in manifest.values()) == 1


def test_cli_prepares_a_csv_corpus_and_reports_errors_in_one_line(
    corpus, tmp_path, capsys
):
    """``mtmm prepare csv`` (its main, in this process: the entry point
    ``python -m speechbrain_mtmm`` runs the same function)."""
    manifest = str(corpus[0] / "corpus.csv")
    ok = mtmm(
        ["prepare", "csv", "--manifest", manifest]
        + ["--save_folder", str(tmp_path / "a"), "--scale", "1", "5"]
        + ["--folds", "3"]
    )
    out = capsys.readouterr()
    assert ok == 0, out.err
    assert "protocol speaker, 3 fold(s)" in out.out
    bad = mtmm(
        ["prepare", "csv", "--manifest", manifest]
        + ["--save_folder", str(tmp_path / "b")]
    )
    assert bad == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("mtmm prepare: CorpusCSVError:")
    )
    missing = mtmm(["prepare", "csv", "--save_folder", str(tmp_path / "c")])
    assert missing == 2
    assert "--manifest is required" in capsys.readouterr().err


def test_a_sweep_over_a_prepared_corpus_runs_every_fold_of_its_protocol(
    prepared, tmp_path
):
    recipe = tmp_path / "recipe"
    (recipe / "hparams").mkdir(parents=True)
    (recipe / "train.py").write_text("")
    (recipe / "hparams" / "x.yaml").write_text("seed: 1")
    runs = plan_runs(
        recipe / "hparams" / "x.yaml",
        "speaker",
        None,
        [1],
        tmp_path / "cv",
        {"data_folder": str(prepared[0])},
    )
    assert [run.fold for run in runs] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="one of \\('speaker',\\)"):
        plan_runs(
            recipe / "hparams" / "x.yaml",
            "session",
            None,
            [1],
            tmp_path / "cv",
            {"data_folder": str(prepared[0])},
        )
