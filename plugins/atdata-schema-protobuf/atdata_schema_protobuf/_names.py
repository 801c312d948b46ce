"""Names in .proto files: what this format accepts, and the names protoc derives from field names.

Everything a schema record names ends up in a .proto file and in Python (a
class, an attribute), so names are plain ASCII identifiers: no escaping can
be forgotten when there is nothing to escape.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from atdata_core.errors import SchemaError

__all__ = [
    "DEFAULT_PACKAGE",
    "FIELD_NUMBER_MAX",
    "check_field_name",
    "check_file_name",
    "check_message_name",
    "check_package",
    "check_number",
    "json_name",
    "map_entry_name",
    "shown",
]

#: The package of the files this format writes.
DEFAULT_PACKAGE = "atdata.samples"
FIELD_NUMBER_MAX = (1 << 29) - 1
#: Numbers protobuf keeps for itself.
RESERVED_NUMBERS = range(19000, 20000)

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*\.proto\Z")
_MAX_NAME = 100


def _identifier(name: Any, what: str, where: str) -> str:
    if not isinstance(name, str) or len(name) > _MAX_NAME or not _IDENTIFIER.match(name):
        raise SchemaError(
            f"{where}: {what} {name!r} is not a plain identifier (ASCII letters, digits and '_', starting with a "
            f"letter, at most {_MAX_NAME} characters), which this format requires of every name it writes "
            "into a .proto file or a Python class"
        )
    return name


def check_field_name(name: Any, where: str) -> str:
    """``name`` if it can be a protobuf field and a sample attribute; else :class:`SchemaError`."""
    _identifier(name, "field name", where)
    if keyword.iskeyword(name):
        raise SchemaError(f"{where}: field name {name!r} is a Python keyword, so no sample class can hold it")
    return name


def check_message_name(name: Any, where: str) -> str:
    """``name`` if it can be a protobuf message and a Python class name; else :class:`SchemaError`."""
    _identifier(name, "message name", where)
    if keyword.iskeyword(name):
        raise SchemaError(f"{where}: message name {name!r} is a Python keyword, so no class can carry it")
    return name


def check_package(package: Any, where: str) -> str:
    """A dotted package of identifiers (``atdata.samples``), not one of the packages this format imports."""
    if not isinstance(package, str) or not package:
        raise SchemaError(f"{where}: the file declares no package; schema files have one, e.g. {DEFAULT_PACKAGE!r}")
    for part in package.split("."):
        _identifier(part, "package part", where)
    if package == "google" or package.startswith(("google.", "atdata.v1")):
        raise SchemaError(f"{where}: package {package!r} belongs to files this format imports; choose another")
    return package


def check_file_name(name: Any, where: str) -> str:
    """A relative path ending in ``.proto`` of plain characters, without ``..``."""
    if (
        not isinstance(name, str)
        or len(name) > 200
        or not _FILE.match(name)
        or any(part in (".", "..") for part in name.split("/"))
    ):
        raise SchemaError(f"{where}: file name {name!r} is not a plain relative path ending in '.proto'")
    if name.startswith(("google/", "atdata/v1/")):
        raise SchemaError(f"{where}: file name {name!r} is taken by a file this format imports")
    return name


def check_number(number: Any, where: str) -> int:
    """A field number protobuf allows: 1 to 2**29-1, outside 19000-19999."""
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= FIELD_NUMBER_MAX:
        raise SchemaError(f"{where}: field number {number!r} is not between 1 and {FIELD_NUMBER_MAX}")
    if number in RESERVED_NUMBERS:
        raise SchemaError(f"{where}: field numbers 19000-19999 are reserved by protobuf; got {number}")
    return number


def json_name(name: str) -> str:
    """protoc's default JSON name: ``foo_bar`` -> ``fooBar``. proto3 refuses two fields with the same one."""
    out = []
    upper = False
    for char in name:
        if char == "_":
            upper = True
        elif upper:
            out.append(char.upper())
            upper = False
        else:
            out.append(char)
    return "".join(out)


def map_entry_name(field_name: str) -> str:
    """The message protoc declares for a map field: ``pixel_counts`` -> ``PixelCountsEntry``."""
    out = []
    upper = True
    for char in field_name:
        if char == "_":
            upper = True
        elif upper:
            out.append(char.upper())
            upper = False
        else:
            out.append(char)
    return "".join(out) + "Entry"


def shown(name: Any) -> str:
    """A name as error messages show it: bare when it is a plain identifier, else quoted and cut short
    (a stranger's name may hold terminal control characters)."""
    if isinstance(name, str) and len(name) <= _MAX_NAME and _IDENTIFIER.match(name):
        return name
    text = repr(name)
    return text if len(text) <= 60 else text[:57] + "..."
