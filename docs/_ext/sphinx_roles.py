"""A griffe extension for the API reference: Sphinx cross-reference roles as Markdown code.

oddkit's docstrings follow numpydoc, whose cross-references are Sphinx roles
(``:class:`~oddkit.AutoEncoderDetector```, ``:func:`choose_threshold```). mkdocstrings renders
docstrings as Markdown, where those would show as ``:class:`` followed by code. This rewrites each
role into inline code before the docstring is parsed: ``~a.b.Name`` becomes ``Name`` (Sphinx's
meaning of the tilde), any other target stays as written. The source files are not changed, so
``help()`` and IDEs keep showing the numpydoc text.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    tilde, target = match.groups()
    if tilde:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
