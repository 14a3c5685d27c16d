"""The model card (``README.md``) of an exported model folder.

Written by ``mtmm export`` from what the run folder records: the corpus,
protocol, fold and seed, the encoders and the architecture, the test
metrics with their number of utterances and speakers, the labels and
rating scales, how to use the model, its intended use and limitations,
and the licence fields the publisher has to fill. It starts with the YAML
front matter the Hugging Face hub reads (library, tags, data set, metrics),
so the folder can be uploaded as it is. A sweep export (all folds of a
cross-validation) gets a card with the cross-validation table instead.

The front matter is huggingface_hub's ``ModelCardData``: the corpus'
data set, language and licence (the corpus' record,
:data:`speechbrain_mtmm.data.corpora.CORPORA`), the encoders' hub ids
as ``base_model``, and a ``model-index`` of ``EvalResult`` entries, one
per test metric the run has, with the values of ``test_results.json``
(a sweep: the means of ``cv_results.json``). The card's prose is written
here: neither SpeechBrain nor transformers writes model cards for a model
they did not train through their own trainers.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from speechbrain_mtmm.data.corpora import CORPORA, FILL
from speechbrain_mtmm.encoders import LIGHT_SOURCES, MODALITIES
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
    classes_trained,
    rating_key,
    read_predictions,
    read_run_config,
    read_test_results,
    trained_dimensions,
)
from speechbrain_mtmm.training.metrics import TEST_METRICS

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
        ``corpus``, ``name``, ``recipe`` and the record's ``card``
        (:data:`speechbrain_mtmm.data.corpora.CORPORA`): ``dataset``,
        ``language``, ``about``, ``transcripts``, ``license_name``,
        ``license_link``, ``licence_terms``.

    Example
    -------
    >>> corpus_facts({"corpus": "msp-podcast"})["name"]
    'MSP-Podcast'
    >>> corpus_facts({})["name"]
    'IEMOCAP'
    """
    record = CORPORA.get(results.get("corpus", "iemocap"), CORPORA["csv"])
    return {
        "corpus": record.name,
        "name": record.title,
        "recipe": record.recipe,
        **record.card,
    }


#: What a card says of IEMOCAP, the corpus of runs that do not say theirs
IEMOCAP_FACTS = corpus_facts({"corpus": "iemocap"})


#: Metric columns of a card: key, title
METRICS = tuple((key, names[1]) for key, names in TEST_METRICS.items())
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


#: The hub's metric of each test metric: type, name, arguments
HUB_METRICS = {
    key: (hub, title, arguments)
    for key, (_, title, hub, arguments) in TEST_METRICS.items()
}
#: The hub task of every result (classes and dimensions of one model)
TASK = ("audio-classification", "Speech emotion recognition")
TAGS = [
    "speech-emotion-recognition",
    "multimodal",
    "audio",
    "text",
    "speechbrain",
    "speechbrain-mtmm",
]
# a split read from the corpus' own partition, not from numbered folds
SPLIT_PROTOCOLS = ("official", "split")


def base_models(config):
    """The hub ids of a model's encoders, for ``base_model``.

    Local folders and the light encoders (``fbank``, ``hashing``) are
    not hub models and are left out.

    Arguments
    ---------
    config : dict
        The ``model_config`` with the sources as trained.

    Returns
    -------
    list of str

    Example
    -------
    >>> base_models({"audio": {"source": "facebook/hubert-large-ll60k"},
    ...              "text": {"source": "hashing"}})
    ['facebook/hubert-large-ll60k']
    >>> base_models({"audio": {"source": "/models/hubert"},
    ...              "text": {"source": "microsoft/deberta-v3-large"}})
    ['microsoft/deberta-v3-large']
    """
    found = []
    for modality in MODALITIES:
        source = str(config[modality]["source"])
        folder = Path(source).expanduser()
        if source == LIGHT_SOURCES[modality]:
            continue
        if folder.is_absolute() or folder.exists() or source[0] in ".~":
            continue  # a folder of the trainer's
        try:
            validate_repo_id(source)
        except HFValidationError:
            continue
        found.append(source)
    return found


def metric_results(scores, dataset, suffix="", value=None):
    """``EvalResult`` entries of the test metrics one set of scores has.

    Arguments
    ---------
    scores : dict
        Metric key (``WA``, ``CCC_valence``, ...) -> value or summary.
    dataset : dict
        ``dataset_name``, ``dataset_type`` and optionally
        ``dataset_config``, ``dataset_split`` of ``EvalResult``.
    suffix : str
        Appended to every metric's name (the condition, the mean).
    value : callable, optional
        The number of an entry of ``scores`` (default: the entry).

    Returns
    -------
    list of huggingface_hub.EvalResult
        One per metric of :data:`HUB_METRICS` in ``scores`` (not None),
        the value unchanged.

    Example
    -------
    >>> entries = metric_results({"WA": 0.5, "CCC_arousal": 0.25, "n": 7},
    ...     {"dataset_name": "IEMOCAP", "dataset_type": "iemocap"})
    >>> [(e.metric_type, e.metric_name, e.metric_value) for e in entries]
    [('accuracy', 'WA (accuracy)', 0.5), ('ccc', 'CCC arousal', 0.25)]
    """
    value = value or (lambda entry: entry)
    entries = []
    for key, (kind, name, args) in HUB_METRICS.items():
        number = value(scores[key]) if key in scores else None
        if number is None:
            continue
        entries.append(
            EvalResult(
                task_type=TASK[0],
                task_name=TASK[1],
                metric_type=kind,
                metric_name=name + suffix,
                metric_args=args,
                metric_value=number,
                **dataset,
            )
        )
    return entries


def _dataset(facts, split, config=None):
    """The ``dataset`` fields of an ``EvalResult``."""
    fields = {
        "dataset_name": facts["name"],
        "dataset_type": facts["dataset"] or "custom",
        "dataset_split": split,
    }
    if config:
        fields["dataset_config"] = config
    return fields


def run_results(results, settings, facts):
    """The ``model-index`` entries of one run's test results.

    Every test set the run reports (MSP-Podcast: Test1 and Test2; else
    the fold's test split) in its headline condition, and the headline
    set in every other condition it was tested in (ASR transcripts, no
    transcript), with the values of ``test_results.json``.

    Arguments
    ---------
    results : dict
        ``test_results.json``.
    settings : dict
        The run's settings (``protocol``, ``fold``).
    facts : dict
        :func:`corpus_facts`.

    Returns
    -------
    list of huggingface_hub.EvalResult

    Example
    -------
    >>> results = {"WA": 0.5, "UA": 0.4, "test_transcripts": "gold",
    ...     "conditions": {"gold": {"WA": 0.5}, "none": {"WA": 0.25}}}
    >>> entries = run_results(results, {"protocol": "speaker", "fold": 1},
    ...                       corpus_facts({"corpus": "iemocap"}))
    >>> [(e.dataset_config, e.metric_name, e.metric_value) for e in entries]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('speaker_fold1', 'WA (accuracy)', 0.5),
     ('speaker_fold1', 'UA (unweighted mean recall)', 0.4),
     ('speaker_fold1', 'WA (accuracy), no transcript (audio only)', 0.25)]
    """
    protocol = settings.get("protocol")
    config = None
    if protocol and protocol not in SPLIT_PROTOCOLS:
        config = f"{protocol}_fold{settings.get('fold', '?')}"
    test_sets = results.get("test_sets") or {"test": results}
    entries = []
    for split, scores in test_sets.items():
        entries += metric_results(scores, _dataset(facts, split, config))
    headline = results.get("test_transcripts", "gold")
    split = next(iter(test_sets))
    for condition, scores in results.get("conditions", {}).items():
        if condition != headline:
            suffix = f", {CONDITIONS.get(condition, condition)}"
            dataset = _dataset(facts, split, config)
            entries += metric_results(scores, dataset, suffix)
    return entries


def sweep_results(results, facts):
    """The ``model-index`` entries of a cross-validation sweep.

    The mean over folds and seeds of each metric (``cv_results.json``'s
    ``summary.all``), and of each other condition the runs were tested in.

    Arguments
    ---------
    results : dict
        ``cv_results.json``.
    facts : dict
        :func:`corpus_facts`.

    Returns
    -------
    list of huggingface_hub.EvalResult

    Example
    -------
    >>> results = {"protocol": "speaker", "folds": [1, 2], "seeds": [1],
    ...            "summary": {"all": {"WA": {"mean": 0.5}}}}
    >>> [(e.dataset_config, e.metric_name, e.metric_value)
    ...  for e in sweep_results(results, corpus_facts({"corpus": "iemocap"}))]
    [('speaker_cv', 'WA (accuracy), mean of 2 folds x 1 seeds', 0.5)]
    """
    mean = (
        f", mean of {len(results.get('folds', []))} folds x "
        f"{len(results.get('seeds', []))} seeds"
    )
    dataset = _dataset(facts, "test", f"{results['protocol']}_cv")
    summary = results.get("summary", {}).get("all") or {}

    def value(entry):
        """The mean of a metric's summary."""
        return entry.get("mean") if isinstance(entry, dict) else None

    entries = metric_results(summary, dataset, mean, value)
    conditions = list(results.get("transcripts") or {})
    for condition in conditions[1:]:  # the first is the headline
        suffix = f", {CONDITIONS.get(condition, condition)}{mean}"
        scores = results["transcripts"][condition] or {}
        entries += metric_results(scores, dataset, suffix, value)
    return entries


def card_metadata(config, facts, results=(), model_name=None, onnx=False):
    """The hub metadata of a card, as huggingface_hub builds it.

    Arguments
    ---------
    config : dict
        The ``model_config`` (sources as trained).
    facts : dict
        :func:`corpus_facts`.
    results : list of huggingface_hub.EvalResult
        The test results (:func:`run_results`, :func:`sweep_results`).
    model_name : str, optional
        The model's name in the ``model-index``.
    onnx : bool
        The folder holds ONNX graphs (tagged ``onnx``).

    Returns
    -------
    huggingface_hub.ModelCardData

    Example
    -------
    >>> config = {"audio": {"source": "facebook/hubert-large-ll60k"},
    ...           "text": {"source": "/models/deberta"}}
    >>> data = card_metadata(config, corpus_facts({"corpus": "msp-podcast"}))
    >>> data.datasets, data.language, data.base_model, data.license_name
    (['msp-podcast'], ['en'], ['facebook/hubert-large-ll60k'], \
'msp-podcast-license')
    """
    results = list(results)
    kinds = list(dict.fromkeys(entry.metric_type for entry in results))
    return ModelCardData(
        library_name="speechbrain",
        license="other",
        license_name=facts["license_name"],
        license_link=facts["license_link"],
        language=[facts["language"]] if facts["language"] else None,
        datasets=[facts["dataset"]] if facts["dataset"] else None,
        base_model=base_models(config) or None,
        pipeline_tag="audio-classification",
        tags=TAGS + (["onnx"] if onnx else []),
        metrics=kinds or None,
        model_name=(model_name or "speechbrain-mtmm") if results else None,
        eval_results=results or None,
    )


def front_matter(data):
    """The YAML header the Hugging Face hub reads.

    Arguments
    ---------
    data : huggingface_hub.ModelCardData
        :func:`card_metadata`.

    Returns
    -------
    str
        Between ``---`` lines, as ``huggingface_hub.ModelCard`` writes it.

    Example
    -------
    >>> data = card_metadata({"audio": {"source": "fbank"},
    ...     "text": {"source": "hashing"}}, corpus_facts({"corpus": "iemocap"}))
    >>> print(front_matter(data).splitlines()[1])
    datasets:
    """
    return f"---\n{data.to_yaml()}\n---"


def _labels_line(labels, facts=None):
    names = dict(LABEL_NAMES)
    if (facts or IEMOCAP_FACTS)["corpus"] == "iemocap" and "exc" not in labels:
        names["hap"] = "happy (IEMOCAP's excited merged in)"
    return ", ".join(
        f"`{label}` ({names[label]})" if label in names else label
        for label in labels
    )


def _predicted(config, facts, low, high):
    """What the model predicts, as the card's first sentence says it:
    only the outputs it was trained for."""
    parts = []
    if classes_trained(config):
        parts.append(
            f"its emotion class ({_labels_line(config['labels'], facts)})"
        )
    dims = trained_dimensions(config)
    if dims:
        parts.append(
            f"its {' and '.join(dims)} on the corpus' {low:g}-{high:g} scale "
            f"({low:g} = negative/calm/weak, {high:g} = positive/excited/"
            "strong; also given on 0-1)"
        )
    return " and ".join(parts)


def _encoder_line(config, modality):
    section = config[modality]
    layers = section.get("layers", [-1])
    which = "last layer" if list(layers) == [-1] else f"layers {layers}"
    freeze = section.get("freeze", "paper")
    source = f"`{section['source']}`"
    if Path(section["source"]).is_absolute():  # a folder of the trainer's
        source = f"the local model `{Path(section['source']).name}`"
    return f"- {modality}: {source} ({which}, freeze policy `{freeze}`)"


def usage(model_ref, dims, onnx=False, scale=RATING_SCALE, classes=True):
    """The Python and command-line use of a model folder.

    Arguments
    ---------
    model_ref : str
        The folder or hub id to load.
    dims : list of str
        The dimensions predicted.
    onnx : bool
        The folder holds ONNX graphs.
    scale : tuple of float
        The rating scale of the dimensions.
    classes : bool
        It predicts classes (``label``, ``probs``).

    Returns
    -------
    str
        Markdown.
    """
    fields = ", ".join(
        f"`{name}`"
        for name in [*(["label", "probs"] if classes else []), *dims]
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
    scale : tuple of float or None
        The rating scale of the dimensions predicted (None: none are).
    facts : dict, optional
        :func:`corpus_facts` (default: IEMOCAP's).

    Returns
    -------
    str
        Markdown.
    """
    facts = facts or IEMOCAP_FACTS
    corpus = facts["name"]
    dimensions = (
        ""
        if scale is None
        else " The dimensions are annotator\n  means on a "
        f"{scale[0]:g}-{scale[1]:g} scale."
    )
    if "label_map" in settings and facts["corpus"] == "iemocap":
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
  judgements, not what the speaker felt.{dimensions}
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
    dims = trained_dimensions(config)
    low, high = config.get("rating_scale", RATING_SCALE)
    classes = classes_trained(config)
    title_dims = " + ".join([*(["emotion class"] if classes else []), *dims])
    name = _model_name(
        model_ref,
        f"{facts['name']} {settings.get('protocol', '')} fold "
        f"{settings.get('fold', '?')} seed {settings.get('seed', '?')}",
    )
    data = card_metadata(
        config,
        facts,
        run_results(tested, settings, facts) if tested else (),
        name,
        onnx,
    )
    sections = [
        front_matter(data),
        f"# Speech emotion recognition from audio and text: {title_dims}",
        "One model reads the audio and the transcript of an utterance and "
        f"predicts {_predicted(config, facts, low, high)}. "
        f"It was trained on {facts['name']} with the {facts['recipe']} "
        "recipe of speechbrain-mtmm, after "
        + (
            "MMER (Ghosh et al., Interspeech 2023)."
            if config["fusion_type"] == "mmer"
            else "Ispas et al. (ICMI 2023)."
        ),
        usage(model_ref, dims, onnx, (low, high), classes),
        training_section(settings, config, info, facts),
        evaluation_section(run_folder, settings),
        limitations(settings, (low, high) if dims else None, facts),
        f"## Licence\n\n- Weights: {facts['licence_terms']}\n"
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
    facts = facts or IEMOCAP_FACTS
    corpus = facts["name"]
    if facts["corpus"] == "iemocap":
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
    # the scales of the metrics shown (those of the trained heads)
    scales = " and ".join(
        [
            *(["WA, UA and macro-F1 in %"] if "WA" in results else []),
            *(
                ["CCC on -1..1"]
                if any(k.startswith("CCC") for k, _ in shown)
                else []
            ),
        ]
    )
    recall = results.get("recall", {})
    return (
        "## Evaluation\n\n"
        f"On the test split of {settings.get('protocol', '?')} fold "
        f"{settings.get('fold', '?')}{who}, with the checkpoint chosen on "
        f"validation; headline: tested with "
        f"{CONDITIONS.get(headline, headline)}. {scales}:\n\n{table}"
        + (
            "\n\nPer-class recall (headline): "
            + ", ".join(
                f"{label} {format_score('UA', value)}"
                for label, value in recall.items()
            )
            + "."
            if recall
            else ""
        )
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
    dims = trained_dimensions(config)
    scale = config.get("rating_scale", RATING_SCALE)
    one = f"{model_ref}/{members[0]}" if members else model_ref
    predicted = " and ".join(
        [
            *(
                [_labels_line(config["labels"], facts)]
                if classes_trained(config)
                else []
            ),
            *([" and ".join(dims)] if dims else []),
        ]
    )
    intro = (
        f"One model per fold and seed of a {results['protocol']} "
        "cross-validation; each subfolder is a complete model "
        f"folder predicting {predicted}, tested on its fold's test set ("
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
    facts = facts or IEMOCAP_FACTS
    name = _model_name(
        model_ref, f"{facts['name']} {results['protocol']} cross-validation"
    )
    data = card_metadata(
        config, facts, sweep_results(results, facts), name, onnx
    )
    sections = [
        front_matter(data),
        "# Speech emotion recognition from audio and text: "
        f"cross-validation models ({len(members)} runs)",
        intro,
        cv,
        f"## Models\n\n{members_table}",
        usage(one, dims, onnx, scale, classes_trained(config)),
        limitations(
            {"protocol": results["protocol"]}, scale if dims else None, facts
        ),
        f"## Licence\n\n- Weights: {facts['licence_terms']}\n"
        "- Encoders: their own licences (see the sources above).\n"
        f"- Contact: {FILL}.",
        f"## Citation\n\n{CITATION}",
    ]
    return "\n\n".join(sections) + "\n"


def _model_name(model_ref, about):
    """The ``model-index`` name: the hub id when given, else a title."""
    if model_ref and not model_ref.startswith("<"):
        return model_ref
    return f"speechbrain-mtmm {' '.join(about.split())}"


def _fold_seed(name):
    """``speaker_fold3/seed1`` -> ``(3, 1)``."""
    fold, seed = name.split("/")
    return fold.rsplit("fold", 1)[1], seed[len("seed") :]
