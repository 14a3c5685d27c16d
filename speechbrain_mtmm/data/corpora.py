"""One record per corpus: everything the rest of the toolkit asks of it.

The CLI (``mtmm prepare|synth``), the demo, the recipes' error
translation, sweeps (which protocols a recipe's corpus has) and the model
cards read :data:`CORPORA`, and nothing else names a corpus. A new
first-class corpus is its preparation module, its synthetic generator,
its record here and its recipe folder.

Every preparation writes ``corpus.json`` (:mod:`.corpus`), so a prepared
folder says which corpus it holds.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import json
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

from speechbrain_mtmm.data.catalog import CATALOG, N_FOLDS, CorpusEntry
from speechbrain_mtmm.data.csv_corpus import (
    CorpusCSVError,
    format_summary,
    prepare_csv,
)
from speechbrain_mtmm.data.iemocap import IEMOCAPError, prepare_iemocap
from speechbrain_mtmm.data.msp_podcast import (
    PROTOCOL,
    MSPPodcastError,
    prepare_msp_podcast,
)
from speechbrain_mtmm.data.synthetic import (
    RELEASE_DIRNAME,
    generate_synthetic_iemocap,
)
from speechbrain_mtmm.data.synthetic_csv import (
    CORPUS_DIRNAME,
    generate_synthetic_csv_corpus,
)
from speechbrain_mtmm.data.synthetic_csv import (
    MANIFEST_NAME as SYNTHETIC_CSV,
)
from speechbrain_mtmm.data.synthetic_msp import (
    RELEASE_DIRNAME as MSP_RELEASE,
)
from speechbrain_mtmm.data.synthetic_msp import (
    generate_synthetic_msp_podcast,
)


@dataclass(frozen=True)
class CorpusRecord(CorpusEntry):
    """What the toolkit knows of one corpus: its :class:`.CorpusEntry` of
    the command line (name, source, options, sizes, size unit, and the
    ``size`` of a ``mtmm synth --size`` value), and the rest.

    Arguments
    ---------
    name : str
        Its name on the command line and in ``corpus.json``.
    title : str
        How text names it.
    prepare : callable
        ``prepare(source, save_folder, **options)``: writes the manifest,
        the folds and ``corpus.json``; returns what :attr:`report` prints.
    source : str
        What ``prepare`` reads, as a ``mtmm prepare`` option
        (``data_folder``: a release folder; ``manifest``: a CSV file).
    options : tuple of str
        The ``mtmm prepare`` options ``prepare`` takes.
    report : callable
        ``report(prepared, save_folder) -> str``, the lines printed.
    synthesize : callable
        ``synthesize(out, seed, size) -> utterances``: a synthetic corpus
        in the real layout, its source at ``<out>/<synthetic_source>``.
    synthetic_source : str
        Where :attr:`synthesize` puts what ``prepare`` reads.
    sizes : dict
        The named sizes of ``mtmm synth`` and :attr:`size_unit`'s count.
    size_unit : str
        What a size counts.
    protocols : dict or None
        Protocol -> folds (None: the preparation decides).
    error : type
        The error its preparation raises on bad input (one line).
    recipe : str
        Its recipe folder in a checkout, and ``hparams`` its YAML there.
    hparams : str
        The recipe's YAML, relative to :attr:`recipe`.
    demo_options : dict
        The options of the demo's preparation.
    card : dict
        What a model card says of it: ``dataset`` (hub id or None),
        ``language`` (ISO 639-1 or None), ``about``, ``transcripts``,
        ``license_name``, ``license_link`` (the terms the corpus is
        distributed under, which bind models trained on it) and
        ``licence_terms``.
    headline : tuple of str
        The test metrics of a sweep report's headline table, in order
        (keys of ``training.metrics.TEST_METRICS``): the corpus'
        customary ones (IEMOCAP: the paper's UA, WA, CCC-V, CCC-A;
        MSP-Podcast: the challenge's macro-F1, then CCC for arousal,
        valence and dominance).
    """

    title: str
    prepare: Callable
    report: Callable
    synthesize: Callable
    synthetic_source: str
    protocols: Optional[dict]
    error: type
    recipe: str
    hparams: str
    demo_options: dict = field(default_factory=dict)
    card: dict = field(default_factory=dict)
    headline: tuple = ("UA", "WA", "CCC_valence", "CCC_arousal")


def _synthetic_iemocap(out, seed, size):
    """A synthetic IEMOCAP: its utterance count."""
    return generate_synthetic_iemocap(out, seed, size)["total_utterances"]


def _synthetic_msp(out, seed, size):
    """A synthetic MSP-Podcast release: its utterance count."""
    return len(generate_synthetic_msp_podcast(out, size, seed))


def _synthetic_csv(out, seed, size):
    """A synthetic CSV corpus: its utterance count."""
    return len(generate_synthetic_csv_corpus(out, per_speaker=size, seed=seed))


def _manifest_line(prepared, save_folder):
    """The line printed after a preparation that returns its manifest."""
    return f"manifest: {prepared}"


def _summary_json(prepared, save_folder):
    """The summary of an MSP-Podcast preparation, as JSON."""
    return json.dumps(prepared, indent=2)


IEMOCAP = CorpusRecord(
    **vars(CATALOG["iemocap"]),
    title="IEMOCAP",
    prepare=prepare_iemocap,
    report=_manifest_line,
    synthesize=_synthetic_iemocap,
    synthetic_source=RELEASE_DIRNAME,
    protocols=dict(N_FOLDS),
    error=IEMOCAPError,
    recipe="recipes/IEMOCAP/multimodal_emotion",
    hparams="hparams/iemocap.yaml",
    card={
        "dataset": "iemocap",
        "language": "en",
        "about": "ten North-American English actors in five dyadic "
        "sessions, scripted and improvised, recorded with close-talk "
        "microphones in a studio. Acted emotion is more prototypical than "
        "everyday speech; expect lower accuracy on spontaneous, noisy, "
        "telephone, far-field, non-English, child or elderly speech, and "
        "on accents absent from the ten speakers.",
        "transcripts": "IEMOCAP's manual transcripts",
        "license_name": "iemocap-license",
        "license_link": "https://sail.usc.edu/iemocap/"
        "Data_Release_Form_IEMOCAP.pdf",
        "licence_terms": "IEMOCAP is distributed by USC's SAIL lab under "
        "its data release form (research use; the data may not be "
        "redistributed); the front matter links it as the licence of "
        "these weights because no standard licence covers a model trained "
        "on it. Whether the form allows publishing such a model is for "
        "the publisher to check with USC.",
    },
)

MSP_PODCAST = CorpusRecord(
    **vars(CATALOG["msp-podcast"]),
    title="MSP-Podcast",
    prepare=prepare_msp_podcast,
    report=_summary_json,
    synthesize=_synthetic_msp,
    synthetic_source=MSP_RELEASE,
    protocols={PROTOCOL: 1},
    error=MSPPodcastError,
    recipe="recipes/MSP-Podcast/multimodal_emotion",
    hparams="hparams/msp_podcast.yaml",
    headline=("macro_F1", "CCC_arousal", "CCC_valence", "CCC_dominance"),
    card={
        "dataset": "msp-podcast",
        "language": "en",
        "about": "natural English speech from podcasts, thousands of "
        "speakers, labelled by crowd-sourced raters; classes are heavily "
        "imbalanced (neutral and happy dominate). Expect lower accuracy "
        "on acted, telephone, far-field, non-English, child or elderly "
        "speech.",
        "transcripts": "the release's transcripts (utterances without one "
        "read an empty text)",
        "license_name": "msp-podcast-license",
        "license_link": "https://ecs.utdallas.edu/research/researchlabs/"
        "msp-lab/MSP-Podcast.html",
        "licence_terms": "MSP-Podcast is distributed by UT Dallas' MSP "
        "lab under its licence agreement (an academic licence, commercial "
        "use under a separate one; the data may not be redistributed); "
        "the front matter links the corpus' page as the licence of these "
        "weights because no standard licence covers a model trained on "
        "it. Whether the agreement allows publishing such a model is for "
        "the publisher to check with UT Dallas.",
    },
)

#: What the card says where the publisher has to fill something in
FILL = "**to be filled by the publisher**"

CSV = CorpusRecord(
    **vars(CATALOG["csv"]),
    title="a corpus prepared from a CSV manifest",
    prepare=prepare_csv,
    report=format_summary,
    synthesize=_synthetic_csv,
    synthetic_source=f"{CORPUS_DIRNAME}/{SYNTHETIC_CSV}",
    protocols=None,
    error=CorpusCSVError,
    recipe="recipes/IEMOCAP/multimodal_emotion",
    hparams="hparams/iemocap.yaml",
    demo_options={"folds": 3, "scale": (1, 5)},
    headline=("UA", "WA", "macro_F1", "CCC_valence", "CCC_arousal"),
    card={
        "dataset": None,
        "language": None,
        "about": f"{FILL} (who speaks, in which language and "
        "setting, how the labels were given).",
        "transcripts": "the transcripts of the corpus' manifest",
        "license_name": "to-be-filled-by-the-publisher",
        "license_link": "LICENSE",
        "licence_terms": "The front matter's `license_name` and "
        "`license_link` are placeholders: set `license_name` to a short "
        "id of the corpus' licence and `license_link` to its URL (or put "
        "its text in a `LICENSE` file next to this card), and add "
        "`language` (ISO 639-1 codes) and `datasets` (hub ids, if the "
        "corpus is on the hub) to the front matter.",
    },
)

#: Every first-class corpus, by name
CORPORA = {record.name: record for record in (IEMOCAP, MSP_PODCAST, CSV)}
#: The errors of their preparations (bad input, reported in one line)
CORPUS_ERRORS = tuple(record.error for record in CORPORA.values())


def corpus_of_recipe(recipe_folder):
    """The record whose recipe is ``recipe_folder`` (IEMOCAP's for a folder
    of no record: the recipes of other corpora copy IEMOCAP's).

    Arguments
    ---------
    recipe_folder : str or os.PathLike
        A recipe folder (absolute or relative).

    Returns
    -------
    CorpusRecord

    Example
    -------
    >>> corpus_of_recipe("/x/recipes/MSP-Podcast/multimodal_emotion").name
    'msp-podcast'
    """
    path = os.path.normpath(str(recipe_folder)).replace(os.sep, "/")
    for record in CORPORA.values():
        if path.endswith(record.recipe):
            return record
    return IEMOCAP
