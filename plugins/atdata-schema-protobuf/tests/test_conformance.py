"""The core's schema-format conformance suite, run against the protobuf format."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_core import packable
from atdata_core.plugins.conformance import SchemaFormatConformance

from atdata_schema_protobuf import UNION_TYPE
from protobuf_samples import everything


@packable
class V1:
    name: str
    size: int
    pixels: NDArray[np.float32]
    note: Optional[str] = None


@packable
class DocsChanged:
    name: str = dataclasses.field(metadata={"description": "who"})
    size: int
    pixels: NDArray[np.float32]
    note: Optional[str] = None


@packable
class OptionalAdded:
    name: str
    size: int
    pixels: NDArray[np.float32]
    note: Optional[str] = None
    caption: Optional[str] = None


@packable
class RequiredAdded:
    name: str
    size: int
    pixels: NDArray[np.float32]
    extra: int
    note: Optional[str] = None


@packable
class Retyped:
    name: str
    size: float
    pixels: NDArray[np.float32]
    note: Optional[str] = None


@packable
class DtypeChanged:
    name: str
    size: int
    pixels: NDArray[np.float64]
    note: Optional[str] = None


@packable
class Swapped:
    size: int
    name: str
    pixels: NDArray[np.float32]
    note: Optional[str] = None


@packable
class NoteRemovedCaptionAdded:
    name: str
    size: int
    pixels: NDArray[np.float32]
    caption: Optional[str] = None


class TestProtobufFormat(SchemaFormatConformance):
    union_type = UNION_TYPE

    @pytest.fixture
    def schema_format(self, fmt):
        return fmt

    @pytest.fixture
    def sample(self):
        return everything()

    @pytest.fixture
    def changes(self):
        return [
            (V1, DocsChanged, "patch"),
            (V1, OptionalAdded, "minor"),
            (V1, RequiredAdded, "major"),
            (V1, Retyped, "major"),
            (V1, DtypeChanged, "major"),
            # The same fields, numbered in another order: protobuf readers would swap them.
            (V1, Swapped, "major"),
            # Field number 4 named 'note', now 'caption'.
            (V1, NoteRemovedCaptionAdded, "major"),
        ]
