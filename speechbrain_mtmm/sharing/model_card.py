"""The model card (``README.md``) of an exported model folder.

Written by ``mtmm export`` from what the run folder records: the corpus,
protocol, fold and seed, the encoders and the architecture, the test
metrics with their number of utterances and speakers, the labels and
rating scales, how to use the model, its intended use and limitations,
and the licence fields the publisher has to fill. It starts with the YAML
front matter the Hugging Face hub reads (library, tags, data set, metrics),
so the folder can be uploaded as it is. A sweep export (all folds of a
cross-validation) gets a card with the cross-validation table instead.

Written here: neither SpeechBrain nor transformers writes model cards for
a model they did not train through their own trainers.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from pathlib import Path

from speechbrain_mtmm.experiments.reports import (
    STD_TEXT,
    fold_table,
    format_score,
    markdown_table,
    results_table,
)
from speechbrain_mtmm.run_folder import (
    DIMENSIONS,
    RATING_SCALE,
    TEST_RESULTS,
    rating_key,
    read_predictions,
    read_run_config,
    read_test_results,
)

FILL = "**to be filled by the publisher**"

#: What each protocol guarantees about the test speakers
PROTOCOL_NOTES = {
    "speaker": "speaker-independent: the test speakers were never seen in "
    "training or checkpoint selection",
    "session": "speaker-independent: the test speakers were never seen in "
    "training or checkpoint selection",
    "official": "the release's split: Train, Development for checkpoint "
    "selection, Test1 and Test2, which aim to share no speaker with Train",
    "split": "the corpus' own train/valid/test split",
    "utterance": "utterance-level folds, NOT speaker-independent: test "
    "speakers may also be in training, which overstates the scores",
}
OTHER_PROTOCOL = "see the training recipe"

#: What a card says of each corpus a recipe trains on (test_results.json
#: records which: ``corpus``)
CORPORA = {
    "iemocap": {
        "name": "IEMOCAP",
        "recipe": "IEMOCAP",
        "about": "ten North-American English actors in five dyadic "
        "sessions, scripted and improvised, recorded with close-talk "
        "microphones in a studio. Acted emotion is more prototypical than "
        "everyday speech; expect lower accuracy on spontaneous, noisy, "
        "telephone, far-field, non-English, child or elderly speech, and "
        "on accents absent from the ten speakers.",
        "transcripts": "IEMOCAP's manual transcripts",
        "licence": "IEMOCAP's licence governs what may be shared of models "
        "trained on it; check it before publishing",
    },
    "msp-podcast": {
        "name": "MSP-Podcast",
        "recipe": "MSP-Podcast",
        "about": "natural English speech from podcasts, thousands of "
        "speakers, labelled by crowd-sourced raters; classes are heavily "
        "imbalanced (neutral and happy dominate). Expect lower accuracy "
        "on acted, telephone, far-field, non-English, child or elderly "
        "speech.",
        "transcripts": "the release's transcripts (utterances without one "
        "read an empty text)",
        "licence": "the MSP-Podcast licence (academic, no redistribution) "
        "governs what may be shared of models trained on it; check it "
        "before publishing",
    },
    "csv": {
        "name": "a corpus prepared from a CSV manifest",
        "recipe": "IEMOCAP",
        "about": f"{FILL} (who speaks, in which language and "
        "setting, how the labels were given).",
        "transcripts": "the transcripts of the corpus' manifest",
        "licence": "the corpus' licence governs what may be shared of "
        "models trained on it; check it before publishing",
    },
}


def corpus_facts(results):
    """What the card says of the corpus a run was trained on.

    Arguments
    ---------
    results : dict
        The run's ``test_results.json`` (``corpus``; runs from before it
        was recorded trained on IEMOCAP).

    Returns
    -------
    dict
        ``name``, ``recipe``, ``about``, ``transcripts``, ``licence``.

    Example
    -------
    >>> corpus_facts({"corpus": "msp-podcast"})["name"]
    'MSP-Podcast'
    >>> corpus_facts({})["name"]
    'IEMOCAP'
    """
    return CORPORA.get(results.get("corpus", "iemocap"), CORPORA["csv"])


#: Metric columns of a card: key, title
METRICS = (
    ("WA", "WA (accuracy)"),
    ("UA", "UA (mean recall)"),
    ("macro_F1", "macro-F1"),
    ("CCC_valence", "CCC valence"),
    ("CCC_arousal", "CCC arousal"),
    ("CCC_dominance", "CCC dominance"),
)
LABEL_NAMES = {
    "neu": "neutral",
    "hap": "happy",
    "sad": "sad",
    "ang": "angry",
    "fru": "frustrated",
    "exc": "excited",
    "sur": "surprised",
    "fea": "fearful",
    "dis": "disgusted",
    "con": "contemptuous",
}
CONDITIONS = {
    "gold": "gold transcripts",
    "asr": "ASR transcripts",
    "none": "no transcript (audio only)",
}
CITATION = """```bibtex
@inproceedings{ispas2023multimodal,
  title     = {A Multi-Task, Multi-Modal Approach for Predicting Categorical
               and Dimensional Emotions},
  author    = {Ispas, Alex-R\\u{a}zvan and Deschamps-Berger, Th\\'{e}o and
               Devillers, Laurence},
  booktitle = {ICMI '23 Companion},
  year      = {2023}
}
@misc{speechbrain,
  title  = {{SpeechBrain}: A General-Purpose Speech Toolkit},
  author = {Ravanelli, Mirco and others},
  year   = {2021},
  eprint = {2106.04624},
  archivePrefix = {arXiv}
}
```"""


def front_matter(tags, metrics):
    """The YAML header the Hugging Face hub reads.

    Arguments
    ---------
    tags : list of str
        Hub tags.
    metrics : list of str
        Hub metric names.

    Returns
    -------
    str

    Example
    -------
    >>> print(front_matter(["emotion"], ["f1"]).splitlines()[1])
    library_name: speechbrain
    """
    lines = [
        "---",
        "library_name: speechbrain",
        "license: other  # to be filled by the publisher",
        "language:",
        "  - en",
        "datasets:",
        "  - iemocap",
        "pipeline_tag: audio-classification",
        "tags:",
        *(f"  - {tag}" for tag in tags),
        "metrics:",
        *(f"  - {metric}" for metric in metrics),
        "---",
    ]
    return "\n".join(lines)


def _labels_line(labels, facts=None):
    names = dict(LABEL_NAMES)
    if (facts or CORPORA["iemocap"]) is CORPORA["iemocap"] and (
        "exc" not in labels
    ):
        names["hap"] = "happy (IEMOCAP's excited merged in)"
    return ", ".join(
        f"`{label}` ({names[label]})" if label in names else label
        for label in labels
    )


def _dimensions(config):
    return list(DIMENSIONS[: config["n_dims"]])


def _encoder_line(config, modality):
    section = config[modality]
    layers = section.get("layers", [-1])
    which = "last layer" if list(layers) == [-1] else f"layers {layers}"
    freeze = section.get("freeze", "paper")
    source = f"`{section['source']}`"
    if Path(section["source"]).is_absolute():  # a folder of the trainer's
        source = f"the local model `{Path(section['source']).name}`"
    return f"- {modality}: {source} ({which}, freeze policy `{freeze}`)"


def usage(model_ref, dims, onnx=False, scale=RATING_SCALE):
    """The Python and command-line use of a model folder.

    Arguments
    ---------
    model_ref : str
        The folder or hub id to load.
    dims : list of str
        The dimensions predicted.
    onnx : bool
        The folder holds ONNX graphs.

    Returns
    -------
    str
        Markdown.
    """
    fields = ", ".join(
        f"`{name}`"
        for name in ["label", "probs", *dims]
        + [rating_key(d, scale) for d in dims]
    )
    onnx_text = (
        f"""

The `onnx/` folder holds the same model as ONNX graphs, run by
onnxruntime (`pip install onnxruntime`; `int8/`: weights quantized to
int8), with the same results to 1e-4:
`MultimodalEmotionRecognizer.from_onnx("{model_ref}")` (the class
`foreign_class` returned has it too), or `mtmm predict --backend onnx`
(`onnx-int8`). Loading them fetches only `hyperparams.yaml` and `onnx/`,
and reads `hyperparams.yaml` as plain YAML: nothing in it runs."""
        if onnx
        else ""
    )
    return f"""## How to use

With SpeechBrain alone (`pip install speechbrain transformers`), as
SpeechBrain's hosted models with custom code load: the folder's
`custom_interface.py` holds the recognizer, generated from
speechbrain-mtmm's source by `mtmm export` (when `speechbrain_mtmm` is
installed, the installed code runs instead).

```python
from speechbrain.inference.interfaces import foreign_class

model = foreign_class(
    source="{model_ref}",  # this folder, or its hub id
    pymodule_file="custom_interface.py",
    classname="MultimodalEmotionRecognizer",
)
print(model.predict_file("speech.wav", text="I can't believe you did that."))
```

With speechbrain-mtmm installed (from its source: `pip install -e .` in
its repository), which also checks `hyperparams.yaml` before running it:

```python
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer

model = MultimodalEmotionRecognizer.from_hparams(source="{model_ref}")
print(model.predict_file("speech.wav", text="I can't believe you did that."))
```

Both take a folder or a hub id, and `savedir=` to put the files
elsewhere. The result holds {fields} (dimensions on 0-1 and on the
corpus' {scale[0]:g}-{scale[1]:g} scale), `path` (audio+text, audio-only,
...) and `text_used`.
Without `text`, the model runs audio-only, with the text masked as in
training (or transcribes the audio when the export names an ASR model).
From the command line (speechbrain-mtmm installed):

```bash
mtmm predict --model {model_ref} speech.wav --text "I can't believe it."
mtmm predict --model {model_ref} recordings/ --format csv --output out.csv
```

Loading a model runs its `hyperparams.yaml` (HyperPyYAML can run code),
and `foreign_class` runs `custom_interface.py`: load only models you
trust. `from_hparams` refuses a `hyperparams.yaml` with other tags than
those `mtmm export` writes, or naming a block class from outside
speechbrain-mtmm, unless given `trust_remote_code=True`. The weights are
read with `torch.load(weights_only=True)`, and every file loading reads is
checked against the SHA-256 recorded in `export_info.json`.{onnx_text}"""


def limitations(settings, scale=RATING_SCALE, facts=None):
    """Intended use and limitations, with the corpus facts.

    Arguments
    ---------
    settings : dict
        The run's recorded settings.
    scale : tuple of float
        The rating scale.
    facts : dict, optional
        :func:`corpus_facts` (default: IEMOCAP's).

    Returns
    -------
    str
        Markdown.
    """
    facts = facts or CORPORA["iemocap"]
    corpus = facts["name"]
    if "label_map" in settings and facts is CORPORA["iemocap"]:
        corpus += f" ({settings['label_map']} label map)"
    heard = facts["transcripts"]
    protocol = settings.get("protocol")
    split_note = (
        "**One split**: the scores are those of one test set; they vary "
        "with the seed and from corpus to corpus."
        if protocol in ("official", "split")
        else "**One fold**: the test set is one held-out group; its scores "
        "vary from fold to fold (see the cross-validation results of the "
        "training recipe), and from corpus to corpus."
    )
    if settings.get("transcripts") == "asr":
        heard = (
            "the transcripts of the ASR model "
            f"`{settings.get('asr_source', 'asr_source')}`"
        )
    return f"""## Intended use and limitations

- **For research** on speech emotion recognition: comparing systems,
  studying the use of audio and text, a baseline to fine-tune from.
- **Trained on {corpus}**: {facts["about"]} Check it on your own data
  first.
- **Transcripts**: training used {heard}. Transcripts with more
  errors lower the scores; audio-only use lowers them more (see the
  evaluation above when the run was tested both ways).
- **Labels are perceived emotion**: the majority of a few annotators'
  judgements, not what the speaker felt. The dimensions are annotator
  means on a {scale[0]:g}-{scale[1]:g} scale.
- **Not for decisions about people** (hiring, health, policing, access to
  services, surveillance) or for inferring emotion without consent.
- {split_note}"""


def run_card(run_folder, config, info, model_ref="<model folder>", onnx=False):
    """The card of one exported run.

    Arguments
    ---------
    run_folder : str or path-like
        The run folder (``run_config.json``, ``test_results.json``,
        ``test_predictions.jsonl``).
    config : dict
        The exported ``model_config``.
    info : dict
        The export's ``export_info.json`` content.
    model_ref : str
        How users load the folder (a hub id once uploaded).
    onnx : bool
        The folder holds ONNX graphs.

    Returns
    -------
    str
        Markdown with hub front matter.
    """
    run_folder = Path(run_folder)
    settings = read_run_config(run_folder) or {}
    tested = (
        read_test_results(run_folder)
        if (run_folder / TEST_RESULTS).is_file()
        else {}
    )
    facts = corpus_facts(tested)
    dims = _dimensions(config)
    low, high = config.get("rating_scale", RATING_SCALE)
    title_dims = " + ".join(["emotion class", *dims])
    sections = [
        front_matter(
            [
                "speech-emotion-recognition",
                "multimodal",
                "audio",
                "text",
                "speechbrain",
                "speechbrain-mtmm",
            ],
            ["accuracy", "f1", "ccc"],
        ),
        f"# Speech emotion recognition from audio and text: {title_dims}",
        "One model reads the audio and the transcript of an utterance and "
        "predicts its emotion class "
        f"({_labels_line(config['labels'], facts)}) and "
        f"its {' and '.join(dims)} on the corpus' {low:g}-{high:g} scale "
        f"({low:g} = negative/calm/weak, {high:g} = positive/excited/strong; "
        "also given on 0-1). "
        f"It was trained on {facts['name']} with the {facts['recipe']} "
        "recipe of speechbrain-mtmm, after "
        + (
            "MMER (Ghosh et al., Interspeech 2023)."
            if config["fusion_type"] == "mmer"
            else "Ispas et al. (ICMI 2023)."
        ),
        usage(model_ref, dims, onnx, (low, high)),
        training_section(settings, config, info, facts),
        evaluation_section(run_folder, settings),
        limitations(settings, (low, high), facts),
        f"## Licence\n\n- Weights: {FILL} ({facts['licence']}).\n"
        "- Encoders: their own licences (see the sources above).\n"
        f"- Contact: {FILL}.",
        f"## Citation\n\n{CITATION}",
    ]
    return "\n\n".join(sections) + "\n"


def training_section(settings, config, info, facts=None):
    """Corpus, protocol, fold, seed, encoders, architecture, checkpoint.

    Arguments
    ---------
    settings : dict
        The run's recorded settings (may be empty).
    config : dict
        The exported ``model_config``.
    info : dict
        ``export_info.json``.
    facts : dict, optional
        :func:`corpus_facts` (default: IEMOCAP's).

    Returns
    -------
    str
        Markdown.
    """
    unknown = "not recorded"
    facts = facts or CORPORA["iemocap"]
    corpus = facts["name"]
    if facts is CORPORA["iemocap"]:
        corpus += f", label map `{settings.get('label_map', unknown)}`"
    terms = {
        "ce": "CE",
        **{d: f"(1 - CCC {d})" for d in DIMENSIONS},
        "ctc": "CTC",
        "supcon": "SupCon",
        "aug": "AugCon",
    }
    loss = " + ".join(
        f"{settings[f'w_{key}']:g} x {name}"
        for key, name in terms.items()
        if settings.get(f"w_{key}")
    )
    validation = info.get("validation", {})
    lines = [
        "## Training",
        "",
        f"- Corpus: {corpus}, classes {config['labels']}",
        f"- Protocol: `{settings.get('protocol', unknown)}`, fold "
        f"{settings.get('fold', unknown)}, seed {settings.get('seed', unknown)}"
        f" ({PROTOCOL_NOTES.get(settings.get('protocol'), OTHER_PROTOCOL)})",
        "- Encoders:",
        "  " + _encoder_line(config, "audio"),
        "  " + _encoder_line(config, "text"),
        f"- Fusion: `{config['fusion_type']}`, refinement "
        f"{'on' if config.get('refinement') else 'off'}, d_model "
        f"{config['d_model']}, {config['n_heads']} heads"
        + (
            f", {config['bridge_tokens']} bridge tokens per modality"
            if config["fusion_type"].startswith("bridge")
            else ""
        ),
        f"- Loss: {loss or unknown}; Random Modality Masking "
        f"{'on' if settings.get('modality_masking') else 'off'}",
        f"- Epochs: {settings.get('number_of_epochs', unknown)}, batch "
        f"{settings.get('batch_size', unknown)}, learning rate "
        f"{settings.get('lr', unknown)}",
        f"- Checkpoint: `{info.get('checkpoint', unknown)}`, the best on "
        f"the validation split (score {_number(validation.get('score'))}"
        f", from `{settings.get('selection_metrics', unknown)}`)",
    ]
    return "\n".join(lines)


def _number(value):
    return "not recorded" if value is None else f"{float(value):.3f}"


def evaluation_section(run_folder, settings):
    """The test metrics with n, or a note that the run was not tested.

    Arguments
    ---------
    run_folder : pathlib.Path
        The run folder.
    settings : dict
        Its recorded settings.

    Returns
    -------
    str
        Markdown.
    """
    if not (run_folder / TEST_RESULTS).is_file():
        return "## Evaluation\n\nThe run was not tested."
    results = read_test_results(run_folder)
    speakers = sorted(
        {row.get("speaker") for row in read_predictions(run_folder)} - {None}
    )
    shown = [(key, title) for key, title in METRICS if key in results]
    table = markdown_table(
        ["n", *(title for _, title in shown)],
        [
            [results.get("n", "?")]
            + [format_score(key, results[key]) for key, _ in shown]
        ],
    )
    # a few speakers are named (IEMOCAP's fold), many are counted
    who = ""
    if 0 < len(speakers) <= 10:
        who = f" (speakers {', '.join(speakers)})"
    elif speakers:
        who = f" ({len(speakers)} speakers)"
    conditions = results.get("conditions", {})
    headline = results.get("test_transcripts", "gold")
    if len(conditions) > 1:
        wer = results.get("WER", {}).get("all", {}).get("WER")
        table = markdown_table(
            ["tested with", "n", *(title for _, title in shown), "WER %"],
            [
                [CONDITIONS.get(name, name), scores.get("n", "?")]
                + [format_score(key, scores.get(key)) for key, _ in shown]
                + [f"{wer:.1f}" if name == "asr" and wer is not None else "–"]
                for name, scores in conditions.items()
            ],
        )
    return (
        "## Evaluation\n\n"
        f"On the test split of {settings.get('protocol', '?')} fold "
        f"{settings.get('fold', '?')}{who}, with the checkpoint chosen on "
        f"validation; headline: tested with "
        f"{CONDITIONS.get(headline, headline)}. WA, UA and macro-F1 in %, "
        "CCC on -1..1:\n\n"
        f"{table}\n\nPer-class recall (headline): "
        + ", ".join(
            f"{label} {format_score('UA', recall)}"
            for label, recall in results.get("recall", {}).items()
        )
        + "."
    )


def sweep_card(
    results,
    members,
    config,
    model_ref="<model folder>",
    onnx=False,
    facts=None,
):
    """The card of a sweep export: one model per fold x seed.

    Arguments
    ---------
    results : dict
        The sweep's ``cv_results.json``.
    members : list of str
        The exported runs' subfolders.
    config : dict
        The ``model_config`` the runs share.
    model_ref : str
        How users load the folder.
    onnx : bool
        The members hold ONNX graphs.
    facts : dict, optional
        :func:`corpus_facts` of the runs (default: IEMOCAP's).

    Returns
    -------
    str
        Markdown with hub front matter.
    """
    dims = _dimensions(config)
    scale = config.get("rating_scale", RATING_SCALE)
    one = f"{model_ref}/{members[0]}" if members else model_ref
    intro = (
        f"One model per fold and seed of a {results['protocol']} "
        "cross-validation; each subfolder is a complete model "
        f"folder predicting {_labels_line(config['labels'], facts)} and "
        f"{' and '.join(dims)}, tested on its fold's test set ("
        + PROTOCOL_NOTES.get(results["protocol"], OTHER_PROTOCOL)
        + ")."
    )
    cv = "\n\n".join(
        [
            "## Cross-validation results",
            results_table("this configuration", results),
            fold_table(results),
            STD_TEXT,
        ]
    )
    members_table = markdown_table(
        ["folder", "fold", "seed"],
        [[f"`{name}`", *_fold_seed(name)] for name in members],
    )
    sections = [
        front_matter(
            ["speech-emotion-recognition", "multimodal", "speechbrain"],
            ["accuracy", "f1", "ccc"],
        ),
        "# Speech emotion recognition from audio and text: "
        f"cross-validation models ({len(members)} runs)",
        intro,
        cv,
        f"## Models\n\n{members_table}",
        usage(one, dims, onnx, scale),
        limitations({"protocol": results["protocol"]}, scale, facts),
        f"## Licence\n\n- Weights: {FILL} "
        f"({(facts or CORPORA['iemocap'])['licence']}).\n"
        f"- Contact: {FILL}.",
        f"## Citation\n\n{CITATION}",
    ]
    return "\n\n".join(sections) + "\n"


def _fold_seed(name):
    """``speaker_fold3/seed1`` -> ``(3, 1)``."""
    fold, seed = name.split("/")
    return fold.rsplit("fold", 1)[1], seed[len("seed") :]
