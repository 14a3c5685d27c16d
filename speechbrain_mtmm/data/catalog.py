"""What the command line knows of each corpus before importing it.

``mtmm --help``, ``mtmm prepare|synth`` and their usage errors read this
module, which imports nothing heavy; :mod:`.corpora` completes each entry
into the corpus' full record (its preparation, generator, recipe, model
card), so the facts here are written once.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from dataclasses import dataclass

#: IEMOCAP's raw emotion code -> label maps; codes absent from a map
#: are excluded
_FOUR_CLASS = {
    "neu": "neu",
    "hap": "hap",
    "exc": "hap",
    "sad": "sad",
    "ang": "ang",
}
LABEL_MAPS = {
    "4class": dict(_FOUR_CLASS),
    "4class_exc": {**_FOUR_CLASS, "exc": "exc"},
    "5class_fru": {**_FOUR_CLASS, "fru": "fru"},
}
#: IEMOCAP's speaker folds: where a test speaker's validation speaker is
SPEAKER_VALID_RULES = ("same_session", "next_session")
#: IEMOCAP's protocols and their folds: 10 speakers in 5 sessions
N_FOLDS = {"speaker": 10, "session": 5}
#: The synthetic IEMOCAP's named sizes (utterances per dialog)
SIZES = {"tiny": 4, "small": 8, "default": 14}


@dataclass(frozen=True)
class CorpusEntry:
    """What ``mtmm prepare`` and ``mtmm synth`` know of one corpus.

    Arguments
    ---------
    name : str
        Its name on the command line and in ``corpus.json``.
    source : str
        What its preparation reads, as a ``mtmm prepare`` option
        (``data_folder``: a release folder; ``manifest``: a CSV file).
    options : tuple of str
        The ``mtmm prepare`` options its preparation takes.
    sizes : dict
        The named sizes of ``mtmm synth`` and :attr:`size_unit`'s count.
    size_unit : str
        What a size counts.

    Example
    -------
    >>> CATALOG["csv"].source
    'manifest'
    """

    name: str
    source: str
    options: tuple
    sizes: dict
    size_unit: str

    def size(self, value):
        """The count a ``mtmm synth --size`` value stands for.

        Arguments
        ---------
        value : str or int
            A named size of :attr:`sizes` or a positive whole number.

        Returns
        -------
        int

        Raises
        ------
        ValueError
            Naming the sizes this corpus has.

        Example
        -------
        >>> CATALOG["iemocap"].size("tiny"), CATALOG["msp-podcast"].size("7")
        (4, 7)
        >>> CATALOG["csv"].size("big")
        Traceback (most recent call last):
        ...
        ValueError: --size for csv: tiny, small, default or a number of \
utterances per speaker (6 speakers), not 'big'
        """
        if value in self.sizes:
            return self.sizes[value]
        if str(value).isdigit() and int(value) > 0:
            return int(value)
        raise ValueError(
            f"--size for {self.name}: {', '.join(self.sizes)} or a number "
            f"of {self.size_unit}, not {value!r}"
        )


#: Every first-class corpus, by name, in the command line's order
CATALOG = {
    entry.name: entry
    for entry in (
        CorpusEntry(
            name="iemocap",
            source="data_folder",
            options=("label_map", "skip_missing", "speaker_valid"),
            sizes=dict(SIZES),
            size_unit="utterances per dialog (25 dialogs)",
        ),
        CorpusEntry(
            name="msp-podcast",
            source="data_folder",
            options=("skip_missing",),
            sizes={"tiny": 100, "small": 200, "default": 350},
            size_unit="utterances",
        ),
        CorpusEntry(
            name="csv",
            source="manifest",
            options=(
                "folds",
                "scale",
                "labels",
                "utterance_folds",
                "allow_missing_text",
            ),
            sizes={"tiny": 4, "small": 8, "default": 14},
            size_unit="utterances per speaker (6 speakers)",
        ),
    )
}
