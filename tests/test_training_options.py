"""Per-module learning rates, schedules, gradient accumulation, the
selection rule and the encoder presets of the IEMOCAP recipe."""

import json
import re
import shutil
from pathlib import Path

import pytest
import speechbrain as sb
import torch
import yaml
from transformers import AutoConfig

from speechbrain_mtmm.plain_yaml import read_plain_yaml
from speechbrain_mtmm.run_folder import write_run_config
from speechbrain_mtmm.testing.recipes import recipe_command
from speechbrain_mtmm.testing.tiny_models import (
    build_tiny_deberta_v2,
    build_tiny_roberta,
    build_tiny_speech_ssl,
    build_tiny_whisper_encoder,
)
from speechbrain_mtmm.training.hparams import (
    load_recipe_hparams,
    run_option_overrides,
)
from speechbrain_mtmm.training.metrics import (
    MetricChoiceError,
    selection_metrics,
)
from speechbrain_mtmm.training.optim import (
    LearningRateSchedule,
    parameter_groups,
)
from speechbrain_mtmm.training.run import (
    DDPSettingError,
    RunFolderError,
    check_run_folder,
    choose_ddp_backend,
    run_settings,
)

RECIPE = (
    Path(__file__).resolve().parents[1]
    / "recipes"
    / "IEMOCAP"
    / "multimodal_emotion"
)
PRESETS = RECIPE / "hparams" / "models"
LIGHT = ("fbank", "hashing")


RATE_KEYS = ("lr", "lr_audio_encoder", "lr_text_encoder")


def logged_rates(run):
    """{rate key: rate} of every epoch line of train_log.txt."""
    text = (run / "train_log.txt").read_text()
    lines = re.findall(r"^epoch: \d+, .*$", text, re.M)
    return [
        {
            key: float(rate)
            for key, rate in re.findall(r"\b(lr\w*): ([-\d.e+]+)", line)
        }
        for line in lines
    ]


def two_groups():
    modules = {
        "audio_encoder": torch.nn.Linear(2, 2),
        "model": torch.nn.Linear(2, 2),
    }
    optimizer = torch.optim.SGD(
        parameter_groups(modules, lr=1.0, lr_encoders=0.1)
    )
    return optimizer


def three_modules(frozen_text=False):
    """An audio encoder, a text encoder (frozen or not) and a model."""
    text = torch.nn.Linear(2, 2)
    text.requires_grad_(not frozen_text)
    return {
        "audio_encoder": torch.nn.Linear(2, 2),
        "text_encoder": text,
        "model": torch.nn.Linear(2, 2),
    }


def named_rates(groups):
    return [(group["name"], group["lr"]) for group in groups]


def yaml_rates(yaml_file, *args):
    """The four rates the recipe YAML gives with command-line ``args``."""
    _, _, overrides = sb.parse_arguments(
        [str(yaml_file), "--data_folder=/corpus", *args]
    )
    values = read_plain_yaml(yaml_file, overrides)
    return {
        key: values[key]
        for key in ("lr", "lr_encoders", "lr_audio_encoder", "lr_text_encoder")
    }


RECIPE_YAMLS = [
    RECIPE / "hparams" / "iemocap.yaml",
    RECIPE / "hparams" / "mmer.yaml",
    RECIPE.parents[1]
    / "MSP-Podcast"
    / "multimodal_emotion"
    / "hparams"
    / "msp_podcast.yaml",
]


# ---------------------------------------------------------------- the rates


def test_the_encoders_and_the_model_train_at_their_own_rates(light_run):
    """conftest's light run: 1 epoch, lr 1e-3, lr_encoders 1e-4."""
    run = light_run.folder
    assert {"number_of_epochs": 1, "lr": 1e-3, "lr_encoders": 1e-4}.items() <= (
        light_run.extra.items()
    )
    assert logged_rates(run) == [
        {"lr": 1e-3, "lr_audio_encoder": 1e-4, "lr_text_encoder": 1e-4}
    ]
    saved = sorted(run.glob("save/CKPT+*/optimizer.ckpt"))[-1]
    groups = torch.load(saved, weights_only=True)["param_groups"]
    assert named_rates(groups) == [
        ("model", 1e-3),
        ("audio_encoder", 1e-4),
        ("text_encoder", 1e-4),
    ]


def test_each_encoder_has_a_named_group_at_lr_encoders_by_default():
    groups = parameter_groups(three_modules(), lr=1.0, lr_encoders=0.1)
    assert named_rates(groups) == [
        ("model", 1.0),
        ("audio_encoder", 0.1),
        ("text_encoder", 0.1),
    ]
    assert [len(group["params"]) for group in groups] == [2, 2, 2]


def test_without_lr_encoders_every_group_trains_at_lr():
    groups = parameter_groups(three_modules(), lr=1.0)
    assert [rate for _, rate in named_rates(groups)] == [1.0, 1.0, 1.0]


def test_an_encoder_rate_of_its_own_overrides_lr_encoders():
    groups = parameter_groups(
        three_modules(), lr=1.0, lr_encoders=0.1, lr_text_encoder=0.01
    )
    assert named_rates(groups) == [
        ("model", 1.0),
        ("audio_encoder", 0.1),
        ("text_encoder", 0.01),
    ]


def test_a_frozen_encoder_gets_no_group():
    """MMER freezes its text encoder: no group, so no rate is logged."""
    groups = parameter_groups(three_modules(frozen_text=True), lr=1.0)
    assert [name for name, _ in named_rates(groups)] == [
        "model",
        "audio_encoder",
    ]


def test_a_rate_that_is_not_a_number_is_refused_naming_its_key():
    with pytest.raises(ValueError, match="lr_audio_encoder must be a number"):
        parameter_groups(three_modules(), lr=1.0, lr_audio_encoder="fast")


@pytest.mark.parametrize("yaml_file", RECIPE_YAMLS, ids=lambda p: p.stem)
def test_each_encoder_rate_defaults_to_lr_encoders_then_lr_in_the_yaml(
    yaml_file,
):
    lr = read_plain_yaml(yaml_file, {"data_folder": "/corpus"})["lr"]
    assert yaml_rates(yaml_file) == dict.fromkeys(
        ("lr", "lr_encoders", "lr_audio_encoder", "lr_text_encoder"), lr
    )
    assert yaml_rates(yaml_file, "--lr=0.5") == dict.fromkeys(
        ("lr", "lr_encoders", "lr_audio_encoder", "lr_text_encoder"), 0.5
    )


@pytest.mark.parametrize("yaml_file", RECIPE_YAMLS, ids=lambda p: p.stem)
def test_command_line_encoder_rates_reach_the_optimizer(yaml_file):
    rates = yaml_rates(
        yaml_file, "--lr=0.5", "--lr_encoders=0.1", "--lr_audio_encoder=0.02"
    )
    assert rates == {
        "lr": 0.5,
        "lr_encoders": 0.1,
        "lr_audio_encoder": 0.02,
        "lr_text_encoder": 0.1,
    }
    groups = parameter_groups(three_modules(), **rates)
    assert named_rates(groups) == [
        ("model", 0.5),
        ("audio_encoder", 0.02),
        ("text_encoder", 0.1),
    ]


def test_newbob_anneals_each_group_when_the_validation_score_drops():
    optimizer = two_groups()
    schedule = LearningRateSchedule("newbob", annealing_factor=0.5)
    schedule.attach(optimizer, total_steps=10)
    for score in (0.5, 0.6):  # improving: unchanged
        schedule.validation_end(optimizer, score)
    assert schedule.rates(optimizer) == {"lr": 1.0, "lr_audio_encoder": 0.1}
    schedule.validation_end(optimizer, 0.55)  # worse: both halved
    assert schedule.rates(optimizer) == {"lr": 0.5, "lr_audio_encoder": 0.05}


def test_warmup_linear_rises_then_decays_to_zero():
    optimizer = two_groups()
    schedule = LearningRateSchedule("warmup_linear", warmup_fraction=0.2)
    schedule.attach(optimizer, total_steps=10)  # 2 warm-up steps
    rates = [schedule.rates(optimizer)["lr"]]
    for _ in range(10):
        schedule.step_end(optimizer)
        rates.append(schedule.rates(optimizer)["lr"])
    expected = [0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
    assert rates == pytest.approx(expected + [0.0])
    assert schedule.rates(optimizer)["lr_audio_encoder"] == 0.0


def test_the_schedule_state_survives_a_save_and_load(tmp_path):
    optimizer = two_groups()
    schedule = LearningRateSchedule("newbob", improvement_threshold=1.0)
    schedule.attach(optimizer, total_steps=10)
    schedule.validation_end(optimizer, 0.5)
    schedule.save(tmp_path / "schedule.ckpt")
    fresh = LearningRateSchedule("newbob", improvement_threshold=1.0)
    fresh.attach(two_groups(), total_steps=10)
    fresh.load(tmp_path / "schedule.ckpt")
    assert fresh.schedulers[0].metric_values == [0.5]
    with pytest.raises(ValueError, match="saved for lr_scheduler 'newbob'"):
        other = LearningRateSchedule("warmup_linear")
        other.attach(two_groups(), total_steps=10)
        other.load(tmp_path / "schedule.ckpt")


@pytest.mark.slow
def test_a_resumed_run_continues_the_schedule(
    tmp_path, synthetic_corpus, synthetic_prepared, train, train_and_kill
):
    """NewBob with an always-failing improvement test halves the rates
    after every epoch but the first; a run killed after epoch 2 and
    resumed with the same command must log the rates of an uninterrupted
    run (a lost schedule state would skip a halving after the resume)."""
    extra = {
        "number_of_epochs": 6,
        "lr_scheduler": "newbob",
        "newbob_annealing_factor": 0.5,
        "newbob_improvement_threshold": 10.0,
        "modality_masking": False,
        "lr": 1e-3,
        "lr_audio_encoder": 1e-4,
        "lr_text_encoder": 1e-5,
    }
    run = tmp_path / "run"
    train_and_kill(
        synthetic_corpus, synthetic_prepared, run, *LIGHT, extra, epoch=2
    )
    log = run / "train_log.txt"
    train(synthetic_corpus, synthetic_prepared, run, *LIGHT, extra)
    by_epoch = {
        int(re.match(r"epoch: (\d+)", line).group(1)): rates
        for line, rates in zip(
            re.findall(r"^epoch: \d+, .*$", log.read_text(), re.M),
            logged_rates(run),
        )
    }
    for key in RATE_KEYS:
        expected = [
            extra[key] * 0.5 ** max(0, epoch - 2) for epoch in range(1, 7)
        ]
        logged = [by_epoch[epoch][key] for epoch in range(1, 7)]
        assert logged == pytest.approx(expected), key


def test_resumed_rates_equal_those_of_an_uninterrupted_schedule(tmp_path):
    """Three groups at three rates under NewBob: an optimizer and schedule
    saved after two validations and loaded into fresh ones (a resume)
    give, validation after validation, the rates of the ones that went
    on (the rates come back with the optimizer's state, the NewBob state
    with the schedule's)."""
    scores = [0.5, 0.4, 0.45, 0.3, 0.6, 0.2]

    def started():
        modules = three_modules()
        optimizer = torch.optim.Adam(
            parameter_groups(
                modules, lr=1.0, lr_audio_encoder=0.1, lr_text_encoder=0.01
            )
        )
        schedule = LearningRateSchedule("newbob", annealing_factor=0.5)
        schedule.attach(optimizer, total_steps=10)
        return optimizer, schedule

    optimizer, schedule = started()
    for score in scores[:2]:
        schedule.validation_end(optimizer, score)
    torch.save(optimizer.state_dict(), tmp_path / "optimizer.ckpt")
    schedule.save(tmp_path / "schedule.ckpt")
    resumed, resumed_schedule = started()
    resumed.load_state_dict(
        torch.load(tmp_path / "optimizer.ckpt", weights_only=True)
    )
    resumed_schedule.load(tmp_path / "schedule.ckpt")
    assert resumed_schedule.rates(resumed) == {
        "lr": 0.5,
        "lr_audio_encoder": 0.05,
        "lr_text_encoder": 0.005,
    }
    for score in scores[2:]:
        schedule.validation_end(optimizer, score)
        resumed_schedule.validation_end(resumed, score)
        assert resumed_schedule.rates(resumed) == schedule.rates(optimizer)
    assert schedule.rates(optimizer)["lr_text_encoder"] == pytest.approx(
        0.01 * 0.5**3
    )


# ----------------------------------------------------- gradient accumulation


@pytest.fixture
def eight_utterances(tmp_path, synthetic_prepared):
    """The prepared corpus with a training split of 8 utterances."""
    prepared = tmp_path / "prepared"
    shutil.copytree(synthetic_prepared, prepared)
    path = prepared / "folds" / "speaker" / "fold_1" / "train.json"
    entries = json.loads(path.read_text())
    path.write_text(json.dumps(dict(list(entries.items())[:8])))
    return prepared


@pytest.mark.slow  # trains the recipe: CI's second step
def test_accumulating_two_batches_of_4_equals_one_batch_of_8(
    tmp_path, synthetic_corpus, eight_utterances, train
):
    """Classes only (CE is a batch mean; CCC is not), no dropout, frozen
    light encoders (eval mode), one epoch = one optimizer step, plain SGD
    (whose step, unlike Adam's first, scales with the gradient)."""
    common = {
        "number_of_epochs": 1,
        "w_valence": 0,
        "w_arousal": 0,
        "dropout": 0.0,
        "freeze_policy": "frozen",
        "modality_masking": False,
        "opt_class": "!name:torch.optim.SGD",
        "lr": 0.5,
    }
    weights = {}
    for name, batch, accumulate in (("one", 8, 1), ("two", 4, 2)):
        run = tmp_path / name
        train(
            synthetic_corpus,
            eight_utterances,
            run,
            *LIGHT,
            {
                **common,
                "batch_size": batch,
                "grad_accumulation_factor": accumulate,
                "train_dataloader_opts": {
                    "batch_size": batch,
                    "shuffle": False,
                },
            },
        )
        log = (run / "train_log.txt").read_text()
        ckpt = sorted(run.glob("save/CKPT+*/system.ckpt"))[-1]
        weights[name] = torch.load(ckpt, weights_only=True)
        assert "epoch: 1," in log
    changed = 0
    for key, value in weights["one"].items():
        torch.testing.assert_close(
            weights["two"][key], value, atol=1e-6, rtol=0
        )
        changed += key.startswith("model.")
    assert changed  # the model's weights were compared


# ------------------------------------------------------------------ selection


def trained(classes, valence, arousal, dominance=0.0):
    """A model configuration with these loss weights."""
    return {
        "n_dims": 3,
        "loss_weights": {
            "classes": classes,
            "valence": valence,
            "arousal": arousal,
            "dominance": dominance,
        },
    }


def test_selection_scores_only_the_trained_heads_by_default():
    assert selection_metrics("auto", trained(1.0, 0, 0)) == ["UA"]
    assert selection_metrics("auto", trained(0, 0.5, 0.5, 0.2)) == [
        "CCC_valence",
        "CCC_arousal",
        "CCC_dominance",
    ]


def test_selection_with_nothing_trained_is_refused():
    with pytest.raises(MetricChoiceError, match="nothing is trained"):
        selection_metrics("auto", {"n_dims": 2, "loss_weights": {}})


def test_a_chosen_score_of_an_untrained_head_is_refused():
    with pytest.raises(
        MetricChoiceError, match=r"include \['CCC_valence'\], which are not"
    ):
        selection_metrics(["UA", "CCC_valence"], trained(1.0, 0, 0))


def test_a_chosen_score_of_trained_heads_is_kept():
    chosen = ["CCC_mean", "macro_F1"]
    assert selection_metrics(chosen, trained(1.0, 0, 0.5)) == chosen


# -------------------------------------------------------------------- presets


FAMILIES = {  # preset source -> tiny model of the same family
    "hubert": lambda f, texts: build_tiny_speech_ssl(f, "hubert"),
    "wavlm": lambda f, texts: build_tiny_speech_ssl(f, "wavlm"),
    "wav2vec2": lambda f, texts: build_tiny_speech_ssl(f, "wav2vec2"),
    "data2vec-audio": lambda f, texts: build_tiny_speech_ssl(
        f, "data2vec-audio"
    ),
    "whisper": lambda f, texts: build_tiny_whisper_encoder(f),
    "deberta": build_tiny_deberta_v2,
    "roberta": build_tiny_roberta,
}


MODEL_CLASSES = {  # family -> transformers model class it builds
    "hubert": "HubertModel",
    "wavlm": "WavLMModel",
    "wav2vec2": "Wav2Vec2Model",
    "data2vec-audio": "Data2VecAudioModel",
    "whisper": "WhisperEncoder",
    "deberta": "DebertaV2Model",
    "roberta": "RobertaModel",
}


@pytest.mark.parametrize(
    "preset", sorted(p.name for p in PRESETS.glob("*.yaml"))
)
def test_each_encoder_preset_included_in_one_line_builds_its_encoder(
    preset, tmp_path, synthetic_corpus, synthetic_prepared
):
    """The preset with its source swapped for a tiny random model of the
    same family (no download), included in one line as users do: the
    recipe's hyperparameters load with it (as train.py parses and loads
    them), the model config holds exactly the preset's section and the
    system builds the encoder it describes; the other encoder is left as
    it was."""
    settings = yaml.safe_load((PRESETS / preset).read_text())
    family = next(f for f in FAMILIES if f in settings["source"])
    manifest = json.loads((synthetic_prepared / "iemocap.json").read_text())
    texts = [entry["text"] for entry in manifest.values()]
    settings["source"] = FAMILIES[family](tmp_path / "model", texts)
    copy = tmp_path / preset
    copy.write_text(yaml.safe_dump(settings))
    modality = "text" if "max_length" in settings else "audio"
    other = "audio" if modality == "text" else "text"
    command = recipe_command(
        RECIPE,
        synthetic_corpus / "IEMOCAP_full_release",
        synthetic_prepared,
        tmp_path / "run",
        *LIGHT,
        {"number_of_epochs": 1, f"{modality}_encoder": f"!include:{copy}"},
    )
    hparams_file, _, overrides = sb.parse_arguments(command[2:])
    hparams = load_recipe_hparams(RECIPE / hparams_file, overrides)
    assert hparams["model_config"][modality] == settings
    system = hparams["system"]
    encoder = system.encoder(modality)
    assert type(encoder.model).__name__ == MODEL_CLASSES[family]
    assert encoder.freeze_policy == settings["freeze"]
    hidden_states = AutoConfig.from_pretrained(settings["source"])
    last = hidden_states.num_hidden_layers  # hidden state 0: the input
    expected = list(range(last + 1)) if settings["layers"] == "all" else [last]
    assert system.layers(modality) == expected
    assert getattr(system, f"{modality}_layer_sum").num_layers == len(expected)
    if modality == "text":
        assert encoder.max_length == settings["max_length"]
    assert hparams["model_config"][other]["source"] == LIGHT[other == "text"]


#: SpeechBrain run options that are also keys of the recipes' YAMLs, and a
#: value other than the YAML's
RUN_OPTIONS_IN_YAML = (
    ("grad_accumulation_factor", 4),
    ("max_grad_norm", 1.5),
    ("ckpt_interval_minutes", 2),
)


def _parsed(recipe, *args):
    """SpeechBrain's parse_arguments of the IEMOCAP recipe's command, with
    the run options put back as overrides as the recipes do."""
    hparams_file, run_opts, overrides = sb.parse_arguments(
        [str(recipe / "hparams" / "iemocap.yaml"), "--data_folder=/c", *args]
    )
    return (
        hparams_file,
        run_opts,
        run_option_overrides(hparams_file, run_opts, overrides),
    )


@pytest.mark.parametrize(("option", "value"), RUN_OPTIONS_IN_YAML)
def test_a_run_option_on_the_command_line_is_the_value_recorded(
    recipe, option, value
):
    """The value SpeechBrain's Brain applies is the one in the recipe's
    hparams, hyperparams.yaml and run_config.json (it used to keep the
    YAML's: --grad_accumulation_factor=4 applied, 1 recorded)."""
    hparams_file, run_opts, overrides = _parsed(recipe, f"--{option}={value}")
    recorded = read_plain_yaml(hparams_file, overrides)[option]
    brain = sb.Brain(hparams={option: recorded}, run_opts=run_opts)
    assert recorded == value == getattr(brain, option)


@pytest.mark.parametrize(("option", "value"), RUN_OPTIONS_IN_YAML)
def test_a_run_option_in_the_yaml_alone_is_the_value_applied(
    recipe, option, value
):
    hparams_file, run_opts, overrides = _parsed(recipe)
    recorded = read_plain_yaml(hparams_file, overrides)[option]
    brain = sb.Brain(hparams={option: recorded}, run_opts=run_opts)
    assert recorded != value and getattr(brain, option) == recorded


def test_a_resume_with_another_accumulation_factor_is_other_settings(
    recipe, tmp_path
):
    hparams_file, _, first = _parsed(recipe, "--grad_accumulation_factor=1")
    write_run_config(tmp_path, run_settings(hparams_file, first))
    _, _, second = _parsed(recipe, "--grad_accumulation_factor=4")
    with pytest.raises(
        RunFolderError, match="grad_accumulation_factor: 1 -> 4"
    ):
        check_run_folder(hparams_file, second, tmp_path)


TORCHRUN_ENV = {"RANK": "0", "LOCAL_RANK": "0"}


def test_torchrun_on_the_cpu_takes_gloo_without_being_told(monkeypatch):
    for key, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(key, value)
    _, run_opts, _ = sb.parse_arguments(["x.yaml", "--device=cpu"])
    assert run_opts["distributed_backend"] == "nccl"  # SpeechBrain's default
    chosen = choose_ddp_backend(run_opts)
    assert chosen["distributed_backend"] == "gloo"
    # applied by the Brain too, as if given on the command line
    brain = sb.Brain(run_opts=chosen)
    assert brain.distributed_backend == "gloo"


def test_torchrun_on_the_cpu_asked_for_nccl_is_one_line_naming_it(
    monkeypatch,
):
    for key, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(key, value)
    _, run_opts, _ = sb.parse_arguments(
        ["x.yaml", "--device=cpu", "--distributed_backend=nccl"]
    )
    with pytest.raises(DDPSettingError, match="--distributed_backend=nccl"):
        choose_ddp_backend(run_opts)


def test_a_gpu_or_single_process_run_keeps_its_backend(monkeypatch):
    _, run_opts, _ = sb.parse_arguments(["x.yaml", "--device=cpu"])
    assert choose_ddp_backend(run_opts) is run_opts  # no torchrun
    for key, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(key, value)
    _, run_opts, _ = sb.parse_arguments(["x.yaml", "--device=cuda:0"])
    assert choose_ddp_backend(run_opts) is run_opts
