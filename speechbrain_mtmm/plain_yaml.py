"""Reading a HyperPyYAML file without building (or running) anything.

A recipe's YAML and an export's ``hyperparams.yaml`` are HyperPyYAML:
loading them builds the objects their tags name (``!new:``, ``!apply:``,
...), which runs code. The settings of a run, the model configuration of
an export and the checks of a command line only need the plain values:
:func:`read_plain_yaml` gives those, references and overrides resolved,
and leaves out every entry holding a tag. A file that is not valid YAML
(a tab where YAML wants spaces, ...) is one line naming the file, the line
and the column (:class:`YamlSyntaxError`).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import ruamel.yaml
import ruamel.yaml.constructor
from hyperpyyaml import resolve_references

TAGGED = object()  # what a tagged node (!new:, !name:, !ref, ...) reads as


class YamlSyntaxError(ValueError):
    """A YAML file that cannot be read; the message names the file, the
    line and the column."""


def yaml_syntax_error(path, error):
    """The one-line :class:`YamlSyntaxError` of a YAML parser's error.

    Arguments
    ---------
    path : str or path-like
        The file read.
    error : ruamel.yaml.YAMLError
        The parser's error (its marks count from 0).

    Returns
    -------
    YamlSyntaxError

    Example
    -------
    >>> try:
    ...     ruamel.yaml.YAML(typ="safe", pure=True).load("a: 1\\n\\tb: 2\\n")
    ... except ruamel.yaml.YAMLError as error:
    ...     print(yaml_syntax_error("x.yaml", error))
    x.yaml, line 2, column 1: found character '\\t' that cannot start any \
token (YAML indents with spaces, not tabs: replace the tab with spaces)
    """
    mark = getattr(error, "problem_mark", None) or getattr(
        error, "context_mark", None
    )
    where = f"{path}"
    if mark is not None:
        where += f", line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    if "\\t" in problem or "\t" in problem:
        problem += " (YAML indents with spaces, not tabs: replace the tab "
        problem += "with spaces)"
    return YamlSyntaxError(f"{where}: {problem}")


class _PlainConstructor(ruamel.yaml.constructor.SafeConstructor):
    """The safe constructor, reading every tagged node as :data:`TAGGED`."""


_PlainConstructor.add_multi_constructor("!", lambda *_: TAGGED)


def is_plain(value):
    """Whether a value read by :func:`read_plain_yaml` holds no tag.

    Arguments
    ---------
    value : object

    Returns
    -------
    bool

    Example
    -------
    >>> is_plain({"a": [1, 2]}), is_plain({"a": [1, TAGGED]})
    (True, False)
    """
    if isinstance(value, dict):
        return all(is_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return value is not TAGGED


def read_plain_yaml(path, overrides=None, resolve=True, keep_tagged=False):
    """A YAML file's top-level entries as plain values, nothing built.

    Arguments
    ---------
    path : str or path-like
        The file.
    overrides : str or dict, optional
        Overrides, as SpeechBrain's ``parse_arguments`` gives them.
    resolve : bool
        Resolve ``!ref`` and ``!include`` first (as HyperPyYAML would; a
        ``!PLACEHOLDER`` left then raises). False: read the file as written
        (references count as tags).
    keep_tagged : bool
        Keep the entries holding a tag, with :data:`TAGGED` where it is
        (False: leave them out).

    Returns
    -------
    dict
        Key -> value (plain dicts, lists, strings, numbers, booleans).

    Raises
    ------
    YamlSyntaxError
        When the file is not valid YAML, naming the line and column.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.yaml"
    >>> _ = path.write_text(
    ...     "lr: 0.1\\nout: !ref <lr>\\nflag: True\\nsys: !new:os.getcwd\\n")
    >>> read_plain_yaml(path, {"lr": 0.2})
    {'lr': 0.2, 'out': 0.2, 'flag': True}
    >>> read_plain_yaml(path, resolve=False)
    {'lr': 0.1, 'flag': True}
    """
    reader = ruamel.yaml.YAML(typ="safe", pure=True)
    reader.Constructor = _PlainConstructor
    with open(path, encoding="utf-8") as fin:
        try:  # the file as written first: a syntax error names its line
            values = reader.load(fin.read())
        except ruamel.yaml.YAMLError as error:
            raise yaml_syntax_error(path, error) from None
        if resolve:  # from the file (an !include is relative to it)
            fin.seek(0)
            text = resolve_references(fin, overrides or {}).getvalue()
            values = reader.load(text)
    if not isinstance(values, dict):
        return {}
    return {
        str(key): value
        for key, value in values.items()
        if keep_tagged or is_plain(value)
    }
