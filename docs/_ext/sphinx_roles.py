"""A griffe extension for the API reference: Sphinx cross-reference roles as Markdown.

oddkit's docstrings follow numpydoc, whose cross-references are Sphinx roles
(``:class:`~oddkit.exceptions.DataError```, ``:func:`choose_threshold```). mkdocstrings renders
docstrings as Markdown, where those would show as ``:class:`` followed by code. Once the package
is loaded, each role becomes a link when its target names a public object of oddkit that one of
the API pages shows (looked up as written, then beside the docstring's object, in its module and
in its package); otherwise inline code. ``~a.b.Name`` shows ``Name`` (Sphinx's meaning of the tilde). The
source files are not changed, so ``help()`` and IDEs keep showing the numpydoc text.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")


def _lookup(pkg: griffe.Module, path: str):
    """The object at ``path`` (dotted, from the package's name) or None."""
    if path != pkg.path and not path.startswith(pkg.path + "."):
        return None
    obj: Any = pkg
    for part in path.split(".")[1:]:
        try:
            obj = obj.members[part]
        except Exception:  # missing, or an alias to a module outside oddkit (torch, numpy)
            return None
    return obj


def _public(path: str) -> bool:
    return not any(part.startswith("_") for part in path.split("."))


def _resolve(pkg: griffe.Module, obj: griffe.Object, target: str) -> str | None:
    """The canonical path of ``target`` as seen from ``obj``'s docstring, if it is public."""
    scopes = [obj, obj.parent, obj.module, obj.package]
    candidates = [target] + [f"{scope.path}.{target}" for scope in scopes if scope is not None]
    for candidate in candidates:
        found = _lookup(pkg, candidate)
        if found is None:
            continue
        try:
            path = found.final_target.path if found.is_alias else found.path
        except Exception:  # an alias griffe cannot resolve
            return None
        return path if _public(path) else None
    return None


def _rewrite(pkg: griffe.Module, obj: griffe.Object) -> None:
    def replace(match: re.Match) -> str:
        tilde, target = match.groups()
        shown = target.rsplit(".", 1)[-1] if tilde else target
        path = _resolve(pkg, obj, target)
        if path is None:
            return f"`{shown}`"
        # autorefs' optional form: a link where the target is on a page, plain code where not.
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'

    if obj.docstring is not None:
        obj.docstring.value = ROLE.sub(replace, obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            _rewrite(pkg, member)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _rewrite(pkg, pkg)
