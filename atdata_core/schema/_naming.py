"""How schemas name things in Python and in text: class names for schema and field names, dtype names."""

from __future__ import annotations

import keyword
import re

import numpy as np

__all__ = ["class_name_for", "dtype_text"]


def dtype_text(dtype: np.dtype) -> str:
    """How a schema names a dtype: numpy's name (``"float32"``) when it says it all,
    else the byte-order string (``">f4"``, ``"<U10"``)."""
    try:
        if np.dtype(dtype.name) == dtype:
            return dtype.name
    except TypeError:
        pass
    return dtype.str


def class_name_for(text: str, fallback: str = "Sample") -> str:
    """A Python class name for a schema or field name.

    >>> class_name_for("com.example.image"), class_name_for("Image sample"), class_name_for("point_2d")
    ('Image', 'ImageSample', 'Point2d')
    """
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z0-9-]+)+", text or ""):
        text = text.rsplit(".", 1)[1]  # NSID-shaped: its last segment names the type
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", text or "") if p]
    name = "".join(p[0].upper() + p[1:] for p in parts)
    if not name:
        return fallback
    if name[0].isdigit():
        name = fallback + name
    if keyword.iskeyword(name):  # "None", "True", "False"
        name += fallback
    return name
