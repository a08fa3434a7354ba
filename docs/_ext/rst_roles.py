r"""Griffe extension for the docs build: reST roles in torchvae's docstrings -> Markdown.

torchvae's docstrings are Google style, but write maths and cross-references with the
reST roles that read well in ``help()`` and IDEs: ``:math:`\mu```, a ``.. math::`` block,
``:class:`~torchvae.VAE```, ``:meth:`VAE.forward```. mkdocstrings renders Markdown, so
this extension rewrites them once the package is loaded:

- ``:math:`x``` -> ``$x$`` and ``.. math::`` blocks -> ``$$ ... $$``, which
  ``pymdownx.arithmatex`` hands to MathJax; ``.. code-block:: lang`` -> a fenced block,
  and ``text::`` before a literal block -> ``text:``;
- ``Example:`` -> ``Examples:``, the header Griffe reads as a section of doctests;
- ``:class:``, ``:meth:``, ``:func:``, ``:attr:``... -> an *optional* autorefs link when
  the target is an object of torchvae (plain code when it is not rendered anywhere, or
  lives outside torchvae, e.g. ``torch.nn.Module``).

It is configured in ``mkdocs.yml`` (``plugins.mkdocstrings...extensions``) and is not part
of the package.
"""

from __future__ import annotations

import html
import re
from typing import Any

from griffe import Extension, GriffeLoader, Module, Object

_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|obj|data|exc|const):`(~?)([^`]+)`")
_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\. (?P<name>math|code-block|code|sourcecode)::[ \t]*(?P<rest>.*)$"
)
# "text::" before an indented block is reST for "text:" and a literal block, which
# Markdown's indented code already is.
_LITERAL_MARKER = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)
# Griffe reads "Examples:" as a section of doctests; "Example:" would be an admonition.
_EXAMPLE_HEADER = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def convert_directives(text: str) -> str:
    """Replace ``.. math::`` with a ``$$`` block, ``.. code-block:: lang`` with a fence."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent, is_math = match["indent"], match["name"] == "math"
        body = [match["rest"]] if is_math and match["rest"].strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent_of(lines[i]) > len(indent)):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        depth = min((_indent_of(b) for b in body if b.strip()), default=0)
        if out and out[-1].strip():
            out.append("")
        out.append(f"{indent}$$" if is_math else f"{indent}```{match['rest'].strip()}")
        out.extend(f"{indent}{b[depth:]}" if b.strip() else "" for b in body)
        out.append(f"{indent}$$" if is_math else f"{indent}```")
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out)


def _lookup(pkg: Module, path: str) -> Object | None:
    if path != pkg.path and not path.startswith(pkg.path + "."):
        return None
    current: Any = pkg
    for part in path.split(".")[1:]:
        try:
            members = current.members
        except Exception:  # an alias to something outside the package
            return None
        if part not in members:
            return None
        current = members[part]
    return current  # type: ignore[no-any-return]


class _Resolver:
    def __init__(self, pkg: Module) -> None:
        self.pkg = pkg

    def resolve(self, target: str, owner: Object) -> str | None:
        target = target.lstrip(".")
        scopes: list[str] = []
        scope: Object | None = owner
        while scope is not None:
            scopes.append(scope.path)
            scope = scope.parent
        candidates = [target, f"{self.pkg.path}.{target}"]
        candidates += [f"{s}.{target}" for s in scopes]
        for candidate in candidates:
            found = _lookup(self.pkg, candidate)
            if found is not None:
                # mkdocstrings registers every rendered object under its canonical path
                # too, whichever path the page renders it by.
                try:
                    return str(found.canonical_path)
                except Exception:  # an alias that does not resolve
                    return None
        return None

    def role(self, match: re.Match[str], owner: Object) -> str:
        tilde, target = match[1], match[2].strip()
        if "<" in target and target.endswith(">"):  # :class:`title <target>`
            title, target = (s.strip() for s in target[:-1].split("<", 1))
        else:
            title = target.rsplit(".", 1)[-1] if tilde else target.lstrip(".")
        code = f"<code>{html.escape(title)}</code>"
        identifier = self.resolve(target, owner)
        if identifier is None:
            return code
        return f'<autoref identifier="{identifier}" optional>{code}</autoref>'

    def convert(self, text: str, owner: Object) -> str:
        text = convert_directives(text)
        text = _LITERAL_MARKER.sub(":", text)
        text = _EXAMPLE_HEADER.sub(r"\g<indent>Examples:", text)
        text = _INLINE_MATH.sub(lambda m: f"${m[1].strip()}$", text)
        return _ROLE.sub(lambda m: self.role(m, owner), text)


def _walk(obj: Object) -> list[Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found += _walk(member)  # type: ignore[arg-type]
    return found


class RstRoles(Extension):
    """Rewrite the reST roles of every docstring in the package once it is loaded."""

    def on_package(self, *, pkg: Module, loader: GriffeLoader, **kwargs: Any) -> None:
        resolver = _Resolver(pkg)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = resolver.convert(obj.docstring.value, obj)
