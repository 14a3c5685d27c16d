"""Protocol facts are checked, not trusted (issue 28, items 3-8): folds
that share a speaker or audio across splits, duplicate ids, labels in
several spellings, misspelt columns and transcripts that match no input
are refused in one line naming the file, wherever they come from."""

import csv
import json
import logging
import shutil

import pytest

from speechbrain_mtmm.data.fold_checks import check_fold_files
from speechbrain_mtmm.data.folds import FoldError, fold_paths, write_protocol
from speechbrain_mtmm.training.splits import check_protocol

SPEAKERS = ("Ses01F", "Ses01M", "Ses02F", "Ses02M")


def read_json(path):
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as fout:
        json.dump(data, fout)


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fout:
        out = csv.writer(fout)
        out.writerow(header)
        out.writerows(rows)
    return path


@pytest.fixture
def toy_fold(tmp_path):
    """A prepared folder with one speaker-protocol fold of 4 speakers, 2
    utterances each, every utterance its own (distinct) audio file."""
    manifest = {}
    for s, speaker in enumerate(SPEAKERS):
        for i in range(2):
            wav = tmp_path / "wav" / f"{speaker}_{i}.wav"
            wav.parent.mkdir(exist_ok=True)
            wav.write_bytes(bytes([s, i]) * 50)  # all of one size
            manifest[f"{speaker}_{i}"] = {
                "wav": str(wav),
                "speaker": speaker,
                "session": int(speaker[3:5]),
            }
    folds = {
        1: {
            "train": ["Ses02F", "Ses02M"],
            "valid": ["Ses01M"],
            "test": ["Ses01F"],
        }
    }
    write_protocol(manifest, tmp_path / "p", "speaker", folds)
    return tmp_path / "p", fold_paths(tmp_path / "p", "speaker", 1)


def move(paths, utt, source, target, new_id=None):
    """Copies an entry of one split file into another (a hand edit)."""
    entries = read_json(paths[source])
    into = read_json(paths[target])
    into[new_id or utt] = entries[utt]
    write_json(paths[target], into)


# 3. folds edited by hand


def test_a_test_speaker_added_to_training_is_refused_naming_file_and_speaker(
    toy_fold,
):
    folder, paths = toy_fold
    check_fold_files(folder, "speaker", 1)  # as prepared: accepted
    move(paths, "Ses01F_0", "test", "train", new_id="extra")
    with pytest.raises(FoldError) as error:
        check_fold_files(folder, "speaker", 1)
    message = str(error.value)
    assert message.startswith(f"{paths['test']}: speaker(s) Ses01F also in")
    assert f"train ({paths['train']})" in message
    assert "\n" not in message


def test_a_test_session_in_training_is_refused_by_the_session_protocol(
    tmp_path,
):
    manifest = {
        f"{s}_0": {"speaker": s, "session": int(s[3:5])} for s in SPEAKERS
    }
    manifest["Ses03F_0"] = {"speaker": "Ses03F", "session": 3}
    # the session partner of the test speaker trains: a session leak
    folds = {
        1: {
            "train": ["Ses01M", "Ses02M"],
            "valid": ["Ses03F"],
            "test": ["Ses01F", "Ses02F"],
        }
    }
    write_protocol(manifest, tmp_path, "session", folds)
    with pytest.raises(FoldError, match=r"session\(s\) 1, 2 also in train"):
        check_fold_files(tmp_path, "session", 1)


def test_the_session_protocol_validates_inside_the_training_sessions(
    tmp_path,
):
    # IEMOCAP's session protocol: the validation speaker's partner trains
    manifest = {
        f"{s}_0": {"speaker": s, "session": int(s[3:5])} for s in SPEAKERS
    }
    manifest["Ses03F_0"] = {"speaker": "Ses03F", "session": 3}
    manifest["Ses03M_0"] = {"speaker": "Ses03M", "session": 3}
    folds = {
        1: {
            "train": ["Ses01F", "Ses01M", "Ses02M"],
            "valid": ["Ses02F"],
            "test": ["Ses03F", "Ses03M"],
        }
    }
    write_protocol(manifest, tmp_path, "session", folds)
    assert check_fold_files(tmp_path, "session", 1) == []


def test_unknown_speakers_are_not_compared(tmp_path):
    manifest = {
        "a": {"speaker": "Unknown", "split": "train"},
        "b": {"speaker": "Unknown", "split": "test"},
        "c": {"speaker": "7", "split": "valid"},
    }
    folds = {1: {s: [s] for s in ("train", "valid", "test")}}
    write_protocol(
        manifest, tmp_path, "official", folds, lambda u, e: e["split"]
    )
    assert check_fold_files(tmp_path, "official", 1) == []


def test_a_corpus_split_sharing_speakers_is_a_warning_with_the_count(
    tmp_path, caplog
):
    manifest = {
        "a": {"speaker": "x", "split": "train"},
        "b": {"speaker": "x", "split": "test"},
        "c": {"speaker": "y", "split": "valid"},
    }
    folds = {1: {s: [s] for s in ("train", "valid", "test")}}
    write_protocol(manifest, tmp_path, "split", folds, lambda u, e: e["split"])
    with caplog.at_level(logging.WARNING):
        warnings = check_fold_files(tmp_path, "split", 1)
    assert warnings == [
        f"{fold_paths(tmp_path, 'split', 1)['test']}: 1 speaker(s) also in "
        "train (x): the split split is not speaker-independent"
    ]
    assert warnings[0] in caplog.text


def test_a_row_moved_to_another_split_file_is_refused(tmp_path):
    manifest = {
        "a": {"speaker": "x", "split": "train"},
        "b": {"speaker": "y", "split": "valid"},
        "c": {"speaker": "z", "split": "test"},
    }
    folds = {1: {s: [s] for s in ("train", "valid", "test")}}
    write_protocol(manifest, tmp_path, "split", folds, lambda u, e: e["split"])
    paths = fold_paths(tmp_path, "split", 1)
    move(paths, "c", "test", "train")
    with pytest.raises(FoldError, match="c is a test row of the corpus"):
        check_fold_files(tmp_path, "split", 1)


def test_check_protocol_refuses_a_bad_fold_of_a_prepared_folder(toy_fold):
    folder, paths = toy_fold
    move(paths, "Ses02F_0", "train", "valid")
    with pytest.raises(FoldError, match="speaker\\(s\\) Ses02F also in train"):
        check_protocol("release", "speaker", 1, {"speaker": 1}, folder)


@pytest.mark.slow
def test_a_run_on_a_fold_sharing_a_speaker_stops_before_its_run_folder(
    tmp_path, synthetic_corpus, synthetic_prepared, train
):
    prepared = tmp_path / "prepared"
    shutil.copytree(synthetic_prepared, prepared)
    paths = fold_paths(prepared, "speaker", 1)
    test = read_json(paths["test"])
    utt = sorted(test)[0]
    train_split = read_json(paths["train"])
    train_split[f"{utt}_copy"] = {**test[utt], "wav": test[utt]["wav"]}
    write_json(paths["train"], train_split)
    output = tmp_path / "run"
    result = train(
        synthetic_corpus,
        prepared,
        output,
        "fbank",
        "hashing",
        check=False,
    )
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(
        f"FoldError: {paths['test']}: speaker(s) Ses01F also in train"
    ), error
    assert "Traceback" not in result.stderr + result.stdout
    assert not output.exists()


# 7. the same audio in two splits


def test_one_audio_file_under_two_ids_in_train_and_test_is_refused(toy_fold):
    folder, paths = toy_fold
    test = read_json(paths["test"])
    train = read_json(paths["train"])
    train["Ses02F_9"] = {**test["Ses01F_1"], "speaker": "Ses02F"}
    write_json(paths["train"], train)
    with pytest.raises(FoldError) as error:
        check_fold_files(folder, "speaker", 1)
    assert str(error.value).startswith(
        f"{paths['test']}: Ses01F_1 is the audio of Ses02F_9 in train "
        f"({paths['train']}; the same file: "
    )


def test_a_copy_of_a_test_file_in_valid_is_refused_by_its_content(toy_fold):
    folder, paths = toy_fold
    test = read_json(paths["test"])
    copy = folder / "copy.wav"
    shutil.copy(test["Ses01F_0"]["wav"], copy)
    valid = read_json(paths["valid"])
    valid["Ses01M_9"] = {"wav": str(copy), "speaker": "Ses01M"}
    write_json(paths["valid"], valid)
    with pytest.raises(FoldError, match="the same content"):
        check_fold_files(folder, "speaker", 1)


def test_files_of_equal_size_and_other_content_are_not_the_same(toy_fold):
    # every toy file has the same size and the same first block length
    folder, paths = toy_fold
    assert check_fold_files(folder, "speaker", 1) == []


def test_files_of_one_first_block_and_other_content_are_not_the_same(
    toy_fold,
):
    # leading digital silence: equal sizes and first blocks, other audio
    folder, paths = toy_fold
    test = read_json(paths["test"])
    train = read_json(paths["train"])
    silence = bytes(8192)
    with open(test["Ses01F_0"]["wav"], "wb") as fout:
        fout.write(silence + b"test")
    with open(train["Ses02F_0"]["wav"], "wb") as fout:
        fout.write(silence + b"tran")
    assert check_fold_files(folder, "speaker", 1) == []
    with open(train["Ses02F_0"]["wav"], "wb") as fout:
        fout.write(silence + b"test")  # now the same
    with pytest.raises(FoldError, match="the same content"):
        check_fold_files(folder, "speaker", 1)


def test_the_same_audio_twice_inside_one_split_is_a_warning(toy_fold, caplog):
    folder, paths = toy_fold
    train = read_json(paths["train"])
    train["Ses02F_9"] = dict(train["Ses02F_0"])
    write_json(paths["train"], train)
    with caplog.at_level(logging.WARNING):
        warnings = check_fold_files(folder, "speaker", 1)
    assert warnings == [
        f"{paths['train']}: Ses02F_0 (train), Ses02F_9 (train) are the same "
        "audio (counted 2 times)"
    ]


def test_a_csv_corpus_listing_one_file_in_train_and_test_is_refused(
    tmp_path,
):
    from speechbrain_mtmm.data.csv_corpus import CorpusCSVError, prepare_csv
    from speechbrain_mtmm.data.synthetic_csv import (
        CORPUS_DIRNAME,
        generate_synthetic_csv_corpus,
    )

    generate_synthetic_csv_corpus(
        tmp_path, n_speakers=3, per_speaker=4, seconds=(0.2, 0.3), split=True
    )
    source = tmp_path / CORPUS_DIRNAME / "corpus.csv"
    with open(source, newline="", encoding="utf-8") as fin:
        rows = list(csv.reader(fin))
    header = [*rows[0], "id"]
    split, path = header.index("split"), header.index("path")
    rows = [[*row, ""] for row in rows[1:]]
    train = next(r for r in rows if r[split] == "train")
    leak = list(next(r for r in rows if r[split] == "test"))
    leak[path], leak[-1] = train[path], "leak"
    write_csv(source, header, [*rows, leak])
    with pytest.raises(CorpusCSVError) as error:
        prepare_csv(source, tmp_path / "p", scale=(1, 5), progress=False)
    stem = train[path].rsplit("/", 1)[-1][: -len(".wav")]
    assert f"leak is the audio of {stem} in train" in str(error.value)
    assert not (tmp_path / "p" / "corpus.json").exists()


# 4. MSP-Podcast: one file labelled twice

MSP_HEADER = [
    "FileName",
    "EmoClass",
    "EmoAct",
    "EmoVal",
    "EmoDom",
    "SpkrID",
    "Gender",
    "Split_Set",
]


def msp_row(name, code="N", split="Train"):
    return [name, code, "4.0", "4.0", "4.0", "12", "Female", split]


def test_an_msp_podcast_file_labelled_twice_is_refused_naming_both_lines(
    tmp_path,
):
    from speechbrain_mtmm.data.msp_podcast import MSPPodcastError, read_labels

    (tmp_path / "Labels").mkdir()
    path = write_csv(
        tmp_path / "Labels" / "labels_consensus.csv",
        MSP_HEADER,
        [
            msp_row("MSP-PODCAST_0001_0001.wav"),
            msp_row("MSP-PODCAST_0001_0002.wav"),
            msp_row("MSP-PODCAST_0001_0001.wav", "A", "Test1"),
        ],
    )
    with pytest.raises(MSPPodcastError) as error:
        read_labels(tmp_path)
    assert str(error.value) == (
        f"{path}: lines 2 and 4 are both utterance MSP-PODCAST_0001_0001 "
        "(MSP-PODCAST_0001_0001.wav, MSP-PODCAST_0001_0001.wav); keep one "
        "of them"
    )


def test_an_msp_podcast_json_key_given_twice_is_refused(tmp_path):
    from speechbrain_mtmm.data.msp_podcast import MSPPodcastError, read_labels

    (tmp_path / "Labels").mkdir()
    fields = '{"EmoClass": "N", "EmoAct": 4, "EmoVal": 4, "EmoDom": 4, '
    fields += '"SpkrID": 1, "Gender": "Male", "Split_Set": "Train"}'
    path = tmp_path / "Labels" / "labels_consensus.json"
    path.write_text(f'{{"a.wav": {fields}, "a.wav": {fields}}}')
    with pytest.raises(MSPPodcastError, match="'a.wav' is given twice"):
        read_labels(tmp_path)


def test_an_iemocap_utterance_evaluated_twice_is_refused_naming_both_lines(
    tmp_path,
):
    from speechbrain_mtmm.data.iemocap import (
        IEMOCAPFormatError,
        parse_evaluation,
    )

    line = "[6.29 - 8.23]\tSes01F_impro01_F000\tneu\t[2.5000, 3.0000, 2.0000]"
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text(f"% header\n\n{line}\n\n{line}\n")
    with pytest.raises(IEMOCAPFormatError) as error:
        parse_evaluation(path)
    assert str(error.value) == (
        f"{path}, line 5: utterance Ses01F_impro01_F000 evaluated twice "
        "(first at line 3)"
    )


def test_an_iemocap_utterance_in_two_dialog_files_is_refused_naming_both(
    tmp_path, synthetic_corpus
):
    from speechbrain_mtmm.data.iemocap import IEMOCAPFormatError, read_release
    from speechbrain_mtmm.data.synthetic import RELEASE_DIRNAME

    release = tmp_path / RELEASE_DIRNAME
    shutil.copytree(
        synthetic_corpus / RELEASE_DIRNAME,
        release,
        ignore=shutil.ignore_patterns("*.wav"),
    )
    evaluations = release / "Session1" / "dialog" / "EmoEvaluation"
    first = sorted(evaluations.glob("Ses01*.txt"))[0]
    shutil.copy(first, evaluations / "Ses01F_zcopy.txt")
    with pytest.raises(IEMOCAPFormatError) as error:
        read_release(release)
    assert str(error.value).startswith(
        f"{evaluations / 'Ses01F_zcopy.txt'}: utterance "
    )
    assert str(error.value).endswith(f"is also evaluated in {first}")


# 5. and 6. CSV corpora: labels in several spellings, misspelt columns


@pytest.fixture(scope="module")
def csv_rows(tmp_path_factory):
    """A small synthetic CSV corpus: its folder, header and rows."""
    from speechbrain_mtmm.data.synthetic_csv import (
        CORPUS_DIRNAME,
        generate_synthetic_csv_corpus,
    )

    out = tmp_path_factory.mktemp("csv_rows")
    generate_synthetic_csv_corpus(
        out, n_speakers=3, per_speaker=4, seconds=(0.2, 0.3)
    )
    folder = out / CORPUS_DIRNAME
    with open(folder / "corpus.csv", newline="", encoding="utf-8") as fin:
        rows = list(csv.reader(fin))
    return folder, rows[0], rows[1:]


def prepare_rows(csv_rows, tmp_path, header=None, rows=None, **options):
    """Prepares the corpus with another header or rows (the CSV beside the
    audio, so that its relative paths hold); returns the CSV and summary."""
    from speechbrain_mtmm.data.csv_corpus import prepare_csv

    folder, original_header, original_rows = csv_rows
    source = write_csv(
        folder / f"{tmp_path.name}.csv",
        header or original_header,
        original_rows if rows is None else rows,
    )
    options = {"folds": 3, "scale": (1, 5), "progress": False, **options}
    return source, prepare_csv(source, tmp_path / "p", **options)


def respelt(csv_rows, spellings):
    """The rows with the k-th 'angry' row spelt spellings[k]."""
    _, header, rows = csv_rows
    label = header.index("label")
    rows = [list(r) for r in rows]
    angry = [r for r in rows if r[label] == "angry"]
    for row, spelling in zip(angry, spellings):
        row[label] = spelling
    return rows


def test_a_label_in_two_cases_is_refused_naming_both_lines(csv_rows, tmp_path):
    from speechbrain_mtmm.data.csv_corpus import CorpusCSVError

    rows = respelt(csv_rows, ["angry", "Angry"])
    with pytest.raises(CorpusCSVError) as error:
        prepare_rows(csv_rows, tmp_path, rows=rows)
    label = csv_rows[1].index("label")
    lines = [
        i + 2 for i, r in enumerate(rows) if r[label] in ("angry", "Angry")
    ]
    source = csv_rows[0] / f"{tmp_path.name}.csv"
    assert str(error.value).startswith(
        f"{source} line {lines[1]}: label 'Angry' is 'angry' ({source} line "
        f"{lines[0]}) in another case: fix the CSV, or give the spelling"
    )
    assert not (tmp_path / "p" / "corpus.json").exists()


def test_labels_given_with_labels_are_read_in_that_spelling_and_counted(
    csv_rows, tmp_path
):
    rows = respelt(csv_rows, ["angry", "Angry", "ANGRY"])
    labels = ["Angry", "happy", "neutral", "sad"]
    _, summary = prepare_rows(csv_rows, tmp_path, rows=rows, labels=labels)
    info = read_json(tmp_path / "p" / "corpus.json")
    assert info["labels"] == labels
    manifest = read_json(tmp_path / "p" / "manifest.json")
    emos = {e["emo"] for e in manifest.values()}
    assert emos == set(labels)  # three spellings, one class
    angry = sum(e["emo"] == "Angry" for e in manifest.values())
    assert angry == summary["class_counts"]["Angry"] >= 3
    assert summary["respelled_labels"] == {"ANGRY": 1, "angry": angry - 2}


def test_labels_option_giving_one_label_in_two_spellings_is_refused(
    csv_rows, tmp_path
):
    from speechbrain_mtmm.data.csv_corpus import CorpusCSVError

    with pytest.raises(CorpusCSVError, match="--labels gives 'sad' and 'Sad'"):
        prepare_rows(csv_rows, tmp_path, labels=["sad", "Sad", "angry"])


@pytest.mark.parametrize(
    "written, meant",
    [("valance", "valence"), ("Arousal", "arousal"), ("speaker_id", "speaker")],
)
def test_a_misspelt_column_is_refused_with_did_you_mean(
    csv_rows, tmp_path, written, meant
):
    from speechbrain_mtmm.data.csv_corpus import CorpusCSVError

    header = [written if c == meant else c for c in csv_rows[1]]
    with pytest.raises(CorpusCSVError) as error:
        prepare_rows(csv_rows, tmp_path, header=header)
    source = csv_rows[0] / f"{tmp_path.name}.csv"
    assert str(error.value) == (
        f"{source}: unknown column {written!r}: did you mean {meant!r}? "
        "(rename the column)"
    )


def test_an_unrelated_column_is_ignored_and_listed_in_the_summary(
    csv_rows, tmp_path
):
    _, header, rows = csv_rows
    _, summary = prepare_rows(
        csv_rows,
        tmp_path,
        header=[*header, "recording_notes"],
        rows=[[*r, "x"] for r in rows],
    )
    assert summary["ignored_columns"] == ["recording_notes"]
    assert summary["rated_counts"]["valence"] == len(rows)


def test_a_column_named_twice_is_refused(csv_rows, tmp_path):
    from speechbrain_mtmm.data.csv_corpus import CorpusCSVError

    _, header, rows = csv_rows
    with pytest.raises(CorpusCSVError, match="line 1: column label twice"):
        prepare_rows(
            csv_rows,
            tmp_path,
            header=[*header, "label"],
            rows=[[*r, "sad"] for r in rows],
        )


# 8. mtmm predict --transcripts that match no input


@pytest.fixture
def audio_inputs(tmp_path):
    """Two (empty) audio inputs of one name in two speakers' folders;
    collect_inputs reads no audio."""
    inputs = []
    for speaker in ("spk1", "spk2"):
        (tmp_path / "audio" / speaker).mkdir(parents=True)
        inputs.append(tmp_path / "audio" / speaker / "a.wav")
        inputs[-1].write_bytes(b"")
    return [str(path) for path in inputs]


def test_transcripts_matching_no_input_are_a_usage_error(
    audio_inputs, tmp_path
):
    from speechbrain_mtmm.inference.predict import UsageError, collect_inputs

    lists = tmp_path / "lists"
    lists.mkdir()
    # paths relative to audio/, the CSV in another folder
    rows = [["spk1/a.wav", "hi"], ["spk2/a.wav", "ho"]]
    transcripts = write_csv(lists / "t.csv", ["path", "text"], rows)
    with pytest.raises(UsageError) as error:
        collect_inputs(audio_inputs, transcripts=str(transcripts))
    assert str(error.value) == (
        f"{transcripts}: no transcript matches an input (its first path "
        f"'spk1/a.wav' reads as {lists / 'spk1' / 'a.wav'}; an input is "
        f"{audio_inputs[0]}); relative paths are read against the CSV's "
        "folder, else the current folder"
    )


def test_transcripts_matching_some_inputs_warn_with_the_count(
    audio_inputs, tmp_path, capsys
):
    from speechbrain_mtmm.inference.predict import collect_inputs

    transcripts = write_csv(
        tmp_path / "t.csv", ["path", "text"], [["audio/spk1/a.wav", "hi"]]
    )
    jobs = collect_inputs(audio_inputs, transcripts=str(transcripts))
    # spk2/a.wav has the CSV's only a.wav name, but not its transcript
    assert jobs == [(audio_inputs[0], "hi"), (audio_inputs[1], None)]
    assert capsys.readouterr().err == (
        f"mtmm predict: warning: {transcripts}: no transcript for 1 of 2 "
        f"inputs (e.g. {audio_inputs[1]}); they are transcribed by the ASR "
        "model, if any, or predicted from audio alone\n"
    )


def test_relative_transcript_paths_are_read_against_the_current_folder_too(
    audio_inputs, tmp_path, monkeypatch, capsys
):
    from speechbrain_mtmm.inference.predict import collect_inputs

    lists = tmp_path / "lists"
    lists.mkdir()
    rows = [["audio/spk1/a.wav", "hi"], ["audio/spk2/a.wav", "ho"]]
    transcripts = write_csv(lists / "t.csv", ["path", "text"], rows)
    monkeypatch.chdir(tmp_path)  # audio/ is here, not beside the CSV
    jobs = collect_inputs(audio_inputs, transcripts=str(transcripts))
    assert [text for _, text in jobs] == ["hi", "ho"]
    assert capsys.readouterr().err == ""


def test_a_transcript_path_given_twice_is_refused_naming_both_lines(
    audio_inputs, tmp_path
):
    from speechbrain_mtmm.inference.predict import UsageError, collect_inputs

    rows = [["audio/spk1/a.wav", "hi"], ["audio/spk1/a.wav", "x"]]
    transcripts = write_csv(tmp_path / "t.csv", ["path", "text"], rows)
    with pytest.raises(UsageError, match="line 3: audio/spk1/a.wav again"):
        collect_inputs(audio_inputs, transcripts=str(transcripts))
