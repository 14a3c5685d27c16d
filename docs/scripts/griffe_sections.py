"""Reads SpeechBrain-style docstrings as NumPy ones (a griffe extension).

SpeechBrain's docstrings, and so this package's, title the parameters
``Arguments`` and the doctest ``Example``; griffe's NumPy parser knows
``Parameters`` and ``Examples`` only and would render the others as
admonitions of raw text. This extension renames the two titles (and their
dash lines) before griffe parses a docstring, shows Sphinx roles
(``:class:`~a.B```) as the code they name (`B`), and drops the second
colon of reStructuredText's ``::`` before an indented block (which Markdown
shows as code anyway). Our own: griffe has no
option for section-title aliases or Sphinx roles.
"""

import re

import griffe

ALIASES = {"Arguments": "Parameters", "Example": "Examples"}
ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _role_as_code(match):
    """``:class:`~a.B``` -> ```B```; without ``~`` the whole path."""
    tilde, target = match.groups()
    return f"``{target.rsplit('.', 1)[-1] if tilde else target}``"


def rewrite(text):
    """Rename SpeechBrain's section titles and unwrap Sphinx roles.

    Arguments
    ---------
    text : str
        A docstring, as griffe holds it (dedented).

    Returns
    -------
    str
        The same docstring with ``Parameters`` and ``Examples`` sections,
        plain code for roles and one colon before literal blocks.

    Example
    -------
    >>> print(rewrite("Arguments\\n---------\\nx : int\\n    A :class:`~a.B`."))
    Parameters
    ----------
    x : int
        A ``B``.
    >>> rewrite("Run it::\\n\\n    mtmm demo")
    'Run it:\\n\\n    mtmm demo'
    """
    lines = ROLE.sub(_role_as_code, text).split("\n")
    for i, line in enumerate(lines):
        if line.endswith("::") and not line.strip().strip(":"):
            lines[i] = ""
        elif line.endswith("::"):
            lines[i] = line[:-1]
    for i, line in enumerate(lines[:-1]):
        title, underline = line.strip(), lines[i + 1].strip()
        if title in ALIASES and underline and set(underline) == {"-"}:
            indent = line[: len(line) - len(line.lstrip())]
            lines[i] = indent + ALIASES[title]
            lines[i + 1] = indent + "-" * len(ALIASES[title])
    return "\n".join(lines)


class SpeechBrainSections(griffe.Extension):
    """Applies :func:`rewrite` to every docstring griffe loads."""

    def on_instance(self, *, obj, **kwargs):
        """Rewrite ``obj``'s docstring before it is parsed."""
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
