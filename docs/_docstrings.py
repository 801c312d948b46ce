"""A griffe extension: the code's reStructuredText docstrings read as Markdown in the API reference.

The docstrings are written for ``help()`` and Sphinx: ``:class:`~atdata_core.Dataset``` roles,
paragraphs ending in ``::`` before an indented block, and ``>>>`` examples. Markdown would show the
roles as text and run the examples into the paragraph before them, so each is rewritten: a role
becomes inline code of its last name, ``::`` a colon before a fenced block, and a run of ``>>>``
lines (with their output) a ``pycon`` block.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const)::?`~?([^`<]*?)(?:\s*<([^>]+)>)?`")
_DOUBLE = re.compile(r"``([^`]+)``")


def _role(match: re.Match[str]) -> str:
    title, target = match.group(1).strip(), match.group(2)
    if target:  # :class:`shown text <target>`
        return f"`{title}`"
    tilde = match.group(0).split("`", 1)[1].startswith("~")
    return f"`{title.rsplit('.', 1)[-1] if tilde else title}`"


_BORDER = re.compile(r"^(\s*)(=+)((?:\s+=+)+)\s*$")


def _simple_tables(text: str) -> str:
    """reStructuredText simple tables (``====  ====`` borders) as Markdown tables.

    Columns are where the border's runs of ``=`` are; a line whose first column is blank
    continues the row above it.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        border = _BORDER.match(lines[i])
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == lines[i].strip()), None)
        if not border or end is None:
            out.append(lines[i])
            i += 1
            continue
        starts = [m.start() for m in re.finditer(r"=+", lines[i])]
        rows: list[list[str]] = []
        for line in lines[i + 1:end]:
            cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])]
            if rows and not cells[0]:
                rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
            elif line.strip():
                rows.append(cells)
        indent = border.group(1)
        out += ["", indent + "| " + " | ".join(["&nbsp;"] * len(starts)) + " |",
                indent + "|" + "---|" * len(starts)]
        out += [indent + "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        out.append("")
        i = end + 1
    return "\n".join(out)


def to_markdown(text: str) -> str:
    """One docstring, reStructuredText conventions turned into Markdown."""
    text = _simple_tables(text)
    text = _ROLE.sub(_role, text)
    text = _DOUBLE.sub(r"`\1`", text)
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                block.append(lines[i][len(indent):])
                i += 1
            # doctest directives are for the test runner, not the reader
            block = [re.sub(r"\s*# doctest:.*$", "", b) for b in block]
            out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            out.append(line[: line.rstrip().rfind("::")].rstrip() + ("" if stripped == "::" else ":"))
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            base = len(line) - len(line.lstrip())
            block = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > base):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            indent = " " * base
            body = textwrap.dedent("\n".join(block)).split("\n")
            out += ["", f"{indent}```", *(indent + b if b else b for b in body), f"{indent}```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring griffe loads (see the module docstring)."""

    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and docstring.value:
            docstring.value = to_markdown(docstring.value)
