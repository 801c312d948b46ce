"""What the ``atdata`` command prints of text that others wrote (DESIGN D8).

Record names, descriptions, versions, URIs, sample keys and error messages
quoting them come from strangers. Printed raw, an ``ESC [`` sequence can
rewrite the screen, retitle the window or hide text, ``\\r`` and ``\\b``
can overwrite what was printed before, and bidi overrides can make a name read
differently from what it is. Every such character is shown as an escape
instead: ``\\x1b``, ``\\r``, ``\\u202e``.

:func:`safe_text` is the one place record text passes through on its way to
the terminal; :func:`echo` is ``click.echo`` after it. JSON output
(``--json``) does not need it: ``json.dumps`` escapes controls already.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import click

__all__ = ["echo", "safe_text"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Categories a terminal would not show as one visible character: controls (C0, DEL, C1),
# format characters (bidi overrides and isolates, zero-width characters), surrogates,
# private use, unassigned code points, and line / paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# The zero-width joiner builds emoji sequences and some scripts' ligatures: harmless, kept.
_KEPT = frozenset({"\u200d"})


def safe_text(value: Any, *, keep_newlines: bool = False) -> str:
    """``value`` as text fit for a terminal: every control or invisible formatting character escaped.

    >>> safe_text("dataset\\x1b]0;owned\\x07 \\u202eevil")
    'dataset\\\\x1b]0;owned\\\\x07 \\\\u202eevil'

    Printable text, accents and scripts of every language included, is unchanged.
    ``keep_newlines`` leaves ``\\n`` as a line break (for messages of several
    lines); by default it is escaped too, so one record stays on one line.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join("\n" if keep_newlines and ch == "\n" else _visible(ch) for ch in text)


def _visible(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    if ch in _KEPT or unicodedata.category(ch) not in _HIDDEN:
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def echo(text: Any = "", *, err: bool = False) -> None:
    """``click.echo`` of :func:`safe_text`: for lines that carry text from records."""
    click.echo(safe_text(text), err=err)
