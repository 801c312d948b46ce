"""Hugging Face ``Features`` and atdata field types, both ways.

A Hugging Face feature becomes one atdata field:

==========================================  ==================================================
Hugging Face                                atdata
==========================================  ==================================================
``Value`` bool / int* / uint* / float*      ``bool`` / ``int`` / ``float``
``Value`` string / binary                   ``str`` / ``bytes``
``ClassLabel(names=...)``                   ``int``, the names kept in the field's description
``Array2D`` ... ``Array5D``                 ``NDArray`` with the feature's dtype and shape
``List`` / ``Sequence`` / ``LargeList`` of  ``NDArray`` (``shape=(length or None, *inner)``),
numbers (also nested, fixed inner lengths)  the element dtype kept
other ``List`` / ``LargeList``              ``list[T]``
a dict of features                          a nested ``@packable`` class
``Image`` / ``Audio``                       ``bytes``: the encoded file (PNG, JPEG, WAV, FLAC...)
==========================================  ==================================================

Where the plain mapping back would not give the same feature (``Value("int8")``
reads back as ``int``, ``ClassLabel`` as ``int``, ``Image`` as ``bytes``), and
for nested features (a published record does not keep their field order), the
field's description records the feature as ``Hugging Face feature {json}``,
so a class rebuilt from a published schema finds its way back to the same
Hugging Face feature. A class generated here also carries the exact features
(``__atdata_hf_features__``).
"""

from __future__ import annotations

import json
import keyword
import re
from typing import Any

import numpy as np

from atdata_core.errors import SampleTypeError
from atdata_core.plugins import (
    AnyValue,
    Array,
    DictOf,
    Field,
    FieldType,
    ListOf,
    Nested,
    Optional,
    Scalar,
    make_sample_type,
    sample_fields,
    set_rebuild_recipe,
)

__all__ = [
    "FEATURES_ATTR",
    "UnsupportedFeature",
    "describe_feature",
    "feature_from_description",
    "features_of",
    "sample_type_from_features",
]

#: The attribute of a generated class holding the Hugging Face features it came from (``Features.to_dict()``).
FEATURES_ATTR = "__atdata_hf_features__"

_DESCRIPTION = re.compile(r"Hugging Face feature (\{.*\})\s*\Z", re.DOTALL)

_INT_DTYPES = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_FLOAT_DTYPES = {"float16", "float32", "float64"}
_VALUE_ALIASES = {"float": "float32", "double": "float64", "halffloat": "float16", "boolean": "bool"}
_MEDIA = ("Image", "Audio")


class UnsupportedFeature(SampleTypeError):
    """A Hugging Face feature with no atdata field type; the message names it and says what to do."""


def _datasets() -> Any:
    import datasets

    return datasets


def _value_dtype(feature: Any) -> str:
    dtype = str(feature.dtype)
    return _VALUE_ALIASES.get(dtype, dtype)


def _kind(feature: Any) -> str:
    """The feature's class name (``Value``, ``List``, ``Array3D``...), or ``dict`` for nested features."""
    if isinstance(feature, dict):
        return "dict"
    return type(feature).__name__


def _is_number(dtype: str) -> bool:
    return dtype in _INT_DTYPES or dtype in _FLOAT_DTYPES or dtype == "bool"


def _array_of(feature: Any) -> tuple[np.dtype, tuple[int | None, ...]] | None:
    """``(dtype, shape)`` when ``feature`` is a dense numeric array, else None.

    Array2D-5D keep their shape (the first dimension may be None). A list of
    numbers is one dimension, ``length`` long or None; lists nest into more
    dimensions only while every inner list has a fixed length.
    """
    kind = _kind(feature)
    if kind in ("Array2D", "Array3D", "Array4D", "Array5D"):
        return np.dtype(feature.dtype), tuple(None if d is None else int(d) for d in feature.shape)
    if kind in ("List", "LargeList", "Sequence"):
        length = getattr(feature, "length", -1)
        outer = None if length is None or length < 0 else int(length)
        item = feature.feature
        if _kind(item) == "Value" and _is_number(_value_dtype(item)):
            return np.dtype(_value_dtype(item)), (outer,)
        inner = _array_of(item)
        if inner is not None and None not in inner[1] and _kind(item) in ("List", "Sequence"):
            return inner[0], (outer, *inner[1])
    return None


def _field_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise UnsupportedFeature(
            f"{where}: the column name {name!r} cannot be a field name (a Python identifier not starting "
            f"with '_' is needed); rename it first, e.g. hf_dataset.rename_column({name!r}, 'new_name')"
        )
    return name


def _class_name(base: str, field: str) -> str:
    return base + "".join(part[:1].upper() + part[1:] for part in field.split("_") if part)


def _unsupported(feature: Any, where: str, column: str) -> UnsupportedFeature:
    kind = _kind(feature)
    if kind == "Value":
        return UnsupportedFeature(
            f"{where}: Value({_value_dtype(feature)!r}) has no atdata field type (supported: bool, int8-64, "
            f"uint8-64, float16/32/64, string, binary). Cast the column first, e.g. "
            f"hf_dataset.cast_column({column!r}, datasets.Value('string')), or drop it with "
            f"hf_dataset.remove_columns([{column!r}])"
        )
    return UnsupportedFeature(
        f"{where}: the feature {kind} is not supported (supported: Value, ClassLabel, Array2D-5D, List, "
        f"Sequence, LargeList, nested dicts, Image and Audio as encoded bytes). Cast the column to one of "
        f"these (hf_dataset.cast_column) or drop it with hf_dataset.remove_columns([{column!r}])"
    )


def _field_type(feature: Any, *, where: str, column: str, class_base: str, optional: frozenset[str],
                path: str, root: tuple[Any, ...]) -> FieldType:
    """The atdata field type of one Hugging Face feature (nested classes are built on the way)."""
    kind = _kind(feature)
    if kind == "Value":
        dtype = _value_dtype(feature)
        if dtype == "bool":
            return Scalar(bool)
        if dtype in _INT_DTYPES:
            return Scalar(int)
        if dtype in _FLOAT_DTYPES:
            return Scalar(float)
        if dtype in ("string", "large_string"):
            return Scalar(str)
        if dtype in ("binary", "large_binary"):
            return Scalar(bytes)
        raise _unsupported(feature, where, column)
    if kind == "ClassLabel":
        return Scalar(int)
    if kind in _MEDIA:
        return Scalar(bytes)
    array = _array_of(feature)
    if array is not None:
        return Array(array[0], array[1])
    if kind in ("List", "LargeList", "Sequence"):
        item = _field_type(feature.feature, where=f"{where}[]", column=column, class_base=class_base,
                           optional=optional, path=f"{path}[]", root=root)
        if f"{path}[]" in optional and not isinstance(item, Optional):
            item = Optional(item)
        return ListOf(item)
    if kind == "dict":
        return Nested(_build_class(feature, name=class_base, where=where, optional=optional, path=path, root=root))
    raise _unsupported(feature, where, column)


def describe_feature(feature: Any) -> str:
    """The field description that records a Hugging Face feature: ``Hugging Face feature {json}``."""
    encoded = _datasets().Features({"f": feature}).to_dict()["f"]
    return "Hugging Face feature " + json.dumps(encoded, ensure_ascii=False)


def feature_from_description(description: str | None) -> Any:
    """The Hugging Face feature a field description records, or None when it records none."""
    if not description:
        return None
    found = _DESCRIPTION.search(description)
    if found is None:
        return None
    try:
        return _datasets().Features.from_dict({"f": json.loads(found.group(1))})["f"]
    except Exception:  # noqa: BLE001 - text someone wrote: a description that does not parse records nothing
        return None


def _build_class(features: Any, *, name: str, where: str, optional: frozenset[str], path: str,
                 root: tuple[Any, ...]) -> type:
    fields = []
    for column, feature in features.items():
        field_name = _field_name(column, where)
        field_path = f"{path}.{column}" if path else column
        ft = _field_type(feature, where=f"{where}.{column}" if where else column, column=column,
                         class_base=_class_name(name, field_name), optional=optional, path=field_path,
                         root=root)
        description = None if _maps_back(ft, feature) else describe_feature(feature)
        if field_path in optional:
            fields.append(Field(field_name, ft if isinstance(ft, Optional) else Optional(ft), False, None, description))
        else:
            fields.append(Field(field_name, ft, True, None, description))
    cls = make_sample_type(name, fields, module="atdata_hf.generated",
                           doc=f"{name}: samples imported from a Hugging Face dataset")
    if not path:
        setattr(cls, FEATURES_ATTR, root[0])
    # Pickled into another process (a spawned DataLoader worker), the class is built again from the features.
    set_rebuild_recipe(cls, _rebuild, *root, path)
    return cls


def _rebuild(encoded: dict[str, Any], name: str, optional: tuple[str, ...], path: str = "") -> type:
    """A generated class built again: the top-level class, or the nested class at ``path`` (``n.inner``, ``items[]``)."""
    cls: Any = sample_type_from_features(_datasets().Features.from_dict(encoded), name=name, optional=optional)
    ft: Any = None
    for step in re.findall(r"[^.\[\]]+|\[\]", path):
        ft = ft.item if step == "[]" else next(f.type for f in sample_fields(cls) if f.name == step)
        if isinstance(ft, Optional):
            ft = ft.inner
        if isinstance(ft, Nested):
            cls = ft.cls
    return cls


def sample_type_from_features(features: Any, *, name: str = "HfSample", optional: Any = ()) -> type:
    """A packable sample class with one field per Hugging Face feature.

    ``optional`` names the fields that may be missing (None): top-level column
    names, nested ones as ``outer.inner``, list items as ``column[]``. A
    feature with no atdata type raises :class:`UnsupportedFeature` naming it.

    >>> cls = sample_type_from_features(hf_dataset.features, name="Digit")   # doctest: +SKIP
    >>> [f.name for f in sample_fields(cls)]                                  # doctest: +SKIP
    ['image', 'label']
    """
    if not name.isidentifier():
        raise ValueError(f"the class name {name!r} must be a Python identifier")
    features = _datasets().Features(dict(features))
    wanted = frozenset(optional)
    root = (features.to_dict(), name, tuple(sorted(wanted)))
    return _build_class(features, name=name, where="", optional=wanted, path="", root=root)


# --------------------------------------------------------------------------- atdata -> Hugging Face


def _maps_back(ft: FieldType, feature: Any) -> bool:
    """True when ``ft`` maps back to ``feature`` without a description.

    Nested features are always described: a schema record's maps come back
    from a PDS with their keys in canonical (DAG-CBOR) order, so a nested
    class rebuilt from it may list its fields in another order than the
    struct had; the description keeps the order.
    """
    return not _has_nested(ft) and _same_feature(_default_feature(ft), feature)


def _has_nested(ft: FieldType) -> bool:
    if isinstance(ft, Nested):
        return True
    if isinstance(ft, (ListOf, Optional)):
        return _has_nested(ft.item if isinstance(ft, ListOf) else ft.inner)
    return False


def _same_feature(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    datasets = _datasets()
    try:
        return datasets.Features({"f": a}).to_dict() == datasets.Features({"f": b}).to_dict()
    except Exception:  # noqa: BLE001
        return False


def _default_feature(ft: FieldType) -> Any:
    """The Hugging Face feature an atdata field type maps to without a description; None if there is none."""
    datasets = _datasets()
    if isinstance(ft, Optional):
        return _default_feature(ft.inner)
    if isinstance(ft, Scalar):
        return datasets.Value({bool: "bool", int: "int64", float: "float64", str: "string", bytes: "binary"}[ft.type])
    if isinstance(ft, Array):
        if ft.dtype is None or ft.shape is None or None in ft.shape[1:] or not ft.shape or len(ft.shape) > 5:
            return None
        dtype = ft.dtype.name
        if len(ft.shape) == 1:
            return datasets.List(datasets.Value(dtype), length=-1 if ft.shape[0] is None else ft.shape[0])
        kinds = {2: datasets.Array2D, 3: datasets.Array3D, 4: datasets.Array4D, 5: datasets.Array5D}
        return kinds[len(ft.shape)](shape=ft.shape, dtype=dtype)
    if isinstance(ft, ListOf):
        item = _default_feature(ft.item)
        return None if item is None else datasets.List(item)
    if isinstance(ft, Nested):
        return None  # built from the nested class's own fields
    return None


def _feature_of_field(field: Field, *, owner: str) -> Any:
    recorded = feature_from_description(field.description)
    if recorded is not None:
        return recorded
    ft = field.type.inner if isinstance(field.type, Optional) else field.type
    if isinstance(ft, Nested):
        return _features_of_class(ft.cls)
    if isinstance(ft, ListOf):
        item = ft.item.inner if isinstance(ft.item, Optional) else ft.item
        if isinstance(item, Nested):
            return _datasets().List(_features_of_class(item.cls))
    feature = _default_feature(ft)
    if feature is not None:
        return feature
    where = f"{owner}.{field.name}"
    if isinstance(ft, Array):
        raise UnsupportedFeature(
            f"{where}: an NDArray field needs a dtype and a shape (only the first dimension may be None, at most "
            f"5 dimensions) to become a Hugging Face feature; annotate it, e.g. "
            f"Annotated[NDArray[np.float32], {{'shape': (None, 3)}}], or pass features= explicitly"
        )
    if isinstance(ft, DictOf):
        raise UnsupportedFeature(
            f"{where}: dict[str, T] fields have no Hugging Face feature (its features have fixed keys); "
            "use a nested @packable class, or pass features= explicitly"
        )
    if isinstance(ft, AnyValue):
        raise UnsupportedFeature(f"{where}: a typing.Any field has no Hugging Face feature; give it a type, or pass features=")
    raise UnsupportedFeature(f"{where}: {ft!r} has no Hugging Face feature; pass features= explicitly")


def _features_of_class(cls: type) -> dict[str, Any]:
    return {field.name: _feature_of_field(field, owner=cls.__name__) for field in sample_fields(cls)}


def features_of(sample_type: type) -> Any:
    """The Hugging Face ``Features`` of an atdata sample class.

    A class generated by :func:`sample_type_from_features` gives back exactly
    the features it came from. Any other class is mapped field by field (see
    the module docstring); a description ``Hugging Face feature {json}``
    names the feature outright.
    """
    datasets = _datasets()
    encoded = getattr(sample_type, FEATURES_ATTR, None)
    if encoded is not None and set(encoded) == {f.name for f in sample_fields(sample_type)}:
        return datasets.Features.from_dict(encoded)
    return datasets.Features(_features_of_class(sample_type))
