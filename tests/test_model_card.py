"""The hub front matter of model cards, from hand-written run folders.

The card is built from a run folder's ``run_config.json``,
``test_results.json`` and ``test_predictions.jsonl`` and the exported
``model_config``: each test writes those files for an IEMOCAP, an
MSP-Podcast or a CSV-corpus run (nothing is trained), and reads the front
matter back with ``yaml.safe_load`` and with huggingface_hub's own parser.
"""

import copy
import json

import pytest
import yaml
from huggingface_hub import ModelCard

from speechbrain_mtmm.experiments.aggregate import summarize_metric
from speechbrain_mtmm.sharing.model_card import run_card, sweep_card
from speechbrain_mtmm.system import PAPER_CONFIG

INFO = {"checkpoint": "CKPT+x", "validation": {"score": 0.5}}
# a hand-written MSP-Podcast result: Test1 in two conditions, and Test2
MSP_TEST1 = {
    "WA": 0.61,
    "UA": 0.42,
    "macro_F1": 0.38,
    "CCC_valence": 0.55,
    "CCC_arousal": 0.63,
    "CCC_dominance": 0.51,
    "n": 40,
}
MSP_TEST2 = {
    "WA": 0.58,
    "UA": 0.40,
    "macro_F1": 0.36,
    "CCC_valence": 0.50,
    "CCC_arousal": 0.60,
    "CCC_dominance": 0.47,
    "n": 30,
}
MSP_NONE = {
    "WA": 0.52,
    "UA": 0.33,
    "macro_F1": 0.30,
    "CCC_valence": 0.21,
    "CCC_arousal": 0.58,
    "CCC_dominance": 0.44,
    "n": 40,
}


def write_run(folder, results, settings):
    """A run folder holding only what a card reads."""
    folder.mkdir(parents=True)
    (folder / "run_config.json").write_text(json.dumps({"settings": settings}))
    (folder / "test_results.json").write_text(json.dumps(results))
    rows = [{"id": f"u{i}", "speaker": f"s{i % 2}"} for i in range(4)]
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    (folder / "test_predictions.jsonl").write_text(lines)
    return folder


def model_config(**changes):
    config = copy.deepcopy(PAPER_CONFIG)
    config.update(changes)
    return config


def metadata(card):
    """The front matter as plain YAML and as huggingface_hub reads it."""
    assert card.startswith("---\n")
    plain = yaml.safe_load(card.split("---\n")[1])
    return plain, ModelCard(card).data


@pytest.fixture
def iemocap_card(tmp_path):
    results = {
        "WA": 0.7,
        "UA": 0.68,
        "macro_F1": 0.67,
        "CCC_valence": 0.71,
        "CCC_arousal": 0.64,
        "n": 4,
        "test_transcripts": "gold",
        "conditions": {
            "gold": {"WA": 0.7, "UA": 0.68, "macro_F1": 0.67, "n": 4},
            "asr": {"WA": 0.6, "UA": 0.59, "macro_F1": 0.58, "n": 4},
        },
        "corpus": "iemocap",
    }
    settings = {"protocol": "speaker", "fold": 3, "seed": 2}
    run = write_run(tmp_path / "run", results, settings)
    return results, run_card(run, model_config(), INFO)


@pytest.fixture
def msp_card(tmp_path):
    results = {
        **MSP_TEST1,
        "test_transcripts": "gold",
        "conditions": {"gold": MSP_TEST1, "none": MSP_NONE},
        "test_sets": {"Test1": MSP_TEST1, "Test2": MSP_TEST2},
        "corpus": "msp-podcast",
    }
    settings = {"protocol": "official", "fold": 1, "seed": 1}
    config = model_config(
        labels=["A", "S", "H", "U", "F", "D", "C", "N"],
        n_dims=3,
        rating_scale=[1.0, 7.0],
        audio={"source": "microsoft/wavlm-large", "layers": [-1]},
        text={"source": "/home/me/models/roberta", "layers": [-1]},
    )
    run = write_run(tmp_path / "msp_run", results, settings)
    return run_card(run, config, INFO)


@pytest.fixture
def csv_card(tmp_path):
    results = {"WA": 0.5, "UA": 0.5, "n": 4, "corpus": "csv"}
    settings = {"protocol": "speaker", "fold": 1, "seed": 1}
    config = model_config(
        audio={"source": "fbank", "layers": [-1]},
        text={"source": "hashing", "layers": [-1]},
    )
    run = write_run(tmp_path / "csv_run", results, settings)
    return run_card(run, config, INFO)


def test_an_iemocap_card_names_its_data_set_language_and_licence(
    iemocap_card,
):
    plain, data = metadata(iemocap_card[1])
    assert plain["datasets"] == ["iemocap"]
    assert plain["language"] == ["en"]
    assert plain["license"] == "other"
    assert plain["license_name"] == "iemocap-license"
    assert plain["license_link"].startswith("https://sail.usc.edu/iemocap/")
    assert plain["pipeline_tag"] == "audio-classification"
    assert plain["library_name"] == "speechbrain"
    assert data.license_name == "iemocap-license"


def test_base_model_lists_the_encoders_hub_ids(iemocap_card):
    plain, _ = metadata(iemocap_card[1])
    assert plain["base_model"] == [
        "facebook/hubert-large-ll60k",
        "microsoft/deberta-v3-large",
    ]


def test_the_model_index_equals_the_test_results(iemocap_card):
    results, card = iemocap_card
    _, data = metadata(card)
    got = {
        (r.dataset_type, r.dataset_config, r.dataset_split, r.metric_name): (
            r.metric_type,
            r.metric_value,
        )
        for r in data.eval_results
    }
    where = ("iemocap", "speaker_fold3", "test")
    asr = ", ASR transcripts"
    assert got == {
        (*where, "WA (accuracy)"): ("accuracy", results["WA"]),
        (*where, "UA (unweighted mean recall)"): ("recall", results["UA"]),
        (*where, "macro-F1"): ("f1", results["macro_F1"]),
        (*where, "CCC valence"): ("ccc", results["CCC_valence"]),
        (*where, "CCC arousal"): ("ccc", results["CCC_arousal"]),
        (*where, "WA (accuracy)" + asr): ("accuracy", 0.6),
        (*where, "UA (unweighted mean recall)" + asr): ("recall", 0.59),
        (*where, "macro-F1" + asr): ("f1", 0.58),
    }
    assert {r.task_type for r in data.eval_results} == {"audio-classification"}


def test_an_msp_podcast_card_names_its_corpus_and_nothing_of_iemocap(
    msp_card,
):
    plain, _ = metadata(msp_card)
    assert plain["datasets"] == ["msp-podcast"]
    assert plain["language"] == ["en"]
    assert plain["license_name"] == "msp-podcast-license"
    assert "utdallas.edu" in plain["license_link"]
    assert "iemocap" not in msp_card.lower()


def test_an_msp_podcast_model_index_has_each_test_set_and_condition(
    msp_card,
):
    _, data = metadata(msp_card)
    got = {
        (r.dataset_split, r.metric_name): r.metric_value
        for r in data.eval_results
    }
    names = {
        "WA": "WA (accuracy)",
        "UA": "UA (unweighted mean recall)",
        "macro_F1": "macro-F1",
        "CCC_valence": "CCC valence",
        "CCC_arousal": "CCC arousal",
        "CCC_dominance": "CCC dominance",
    }
    expected = {}
    for key, name in names.items():
        expected["Test1", name] = MSP_TEST1[key]
        expected["Test2", name] = MSP_TEST2[key]
        expected["Test1", f"{name}, no transcript (audio only)"] = MSP_NONE[key]
    assert got == expected
    assert {r.dataset_config for r in data.eval_results} == {None}


def test_local_and_light_encoders_are_not_base_models(msp_card, csv_card):
    msp, _ = metadata(msp_card)
    assert msp["base_model"] == ["microsoft/wavlm-large"]
    csv, _ = metadata(csv_card)
    assert "base_model" not in csv


def test_a_csv_card_leaves_corpus_fields_to_the_publisher_and_says_where(
    csv_card,
):
    plain, _ = metadata(csv_card)
    assert "datasets" not in plain and "language" not in plain
    assert plain["license"] == "other"
    assert plain["license_name"] == "to-be-filled-by-the-publisher"
    licence = csv_card.split("## Licence")[1]
    for field in ("`license_name`", "`license_link`", "`language`"):
        assert field in licence


def test_only_the_metrics_a_run_has_are_indexed(csv_card):
    plain, data = metadata(csv_card)
    assert [r.metric_name for r in data.eval_results] == [
        "WA (accuracy)",
        "UA (unweighted mean recall)",
    ]
    assert plain["metrics"] == ["accuracy", "recall"]


def test_an_untested_run_has_no_model_index(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    card = run_card(run, model_config(), INFO)
    plain, data = metadata(card)
    assert "model-index" not in plain and "metrics" not in plain
    assert data.eval_results is None
    assert plain["datasets"] == ["iemocap"]  # runs before corpus was recorded


def test_a_sweep_card_indexes_the_cross_validation_means():
    metrics = ["WA", "UA", "macro_F1", "CCC_valence", "CCC_arousal"]
    scores = {  # (fold, seed) -> score; metric k adds k / 100
        (fold, seed): 0.5 + 0.1 * fold + 0.01 * seed
        for fold in (1, 2, 3)
        for seed in (1, 2)
    }

    def summary(offset):
        return summarize_metric({k: v + offset for k, v in scores.items()})

    results = {
        "protocol": "speaker",
        "folds": [1, 2, 3],
        "seeds": [1, 2],
        "metrics": metrics,
        "summary": {
            "all": {
                **{m: summary(k / 100) for k, m in enumerate(metrics)},
                "n": 60,
                "runs": 6,
            }
        },
        "transcripts": {
            "gold": {"WA": summary(0.0)},
            "none": {"WA": summary(-0.2), "UA": summary(-0.25)},
        },
        "runs": [
            {"fold": fold, "seed": seed, "test_speakers": [], "all": {"n": 10}}
            for fold, seed in scores
        ],
    }
    members = [f"speaker_fold{f}/seed{s}" for f, s in scores]
    card = sweep_card(results, members, model_config())
    plain, data = metadata(card)
    got = {
        (r.dataset_config, r.metric_name): r.metric_value
        for r in data.eval_results
    }
    mean = ", mean of 3 folds x 2 seeds"
    none = ", no transcript (audio only)"
    middle = 0.5 + 0.2 + 0.015  # fold 2, mean of seeds 1 and 2
    assert got == pytest.approx(
        {
            ("speaker_cv", f"WA (accuracy){mean}"): middle,
            ("speaker_cv", f"UA (unweighted mean recall){mean}"): middle + 0.01,
            ("speaker_cv", f"macro-F1{mean}"): middle + 0.02,
            ("speaker_cv", f"CCC valence{mean}"): middle + 0.03,
            ("speaker_cv", f"CCC arousal{mean}"): middle + 0.04,
            ("speaker_cv", f"WA (accuracy){none}{mean}"): middle - 0.2,
            ("speaker_cv", f"UA (unweighted mean recall){none}{mean}"): (
                middle - 0.25
            ),
        }
    )
    assert plain["license_name"] == "iemocap-license"
    assert plain["base_model"] == [
        "facebook/hubert-large-ll60k",
        "microsoft/deberta-v3-large",
    ]
