"""Classes built from schema records pickle as "rebuild from this record", so spawned workers can use them."""

import pickle
import subprocess
import sys

import numpy as np
from numpy.typing import NDArray

import atdata_core
from atdata_core.sample import sample_fields
from atdata_core.schema import sample_type_from_record, schema_record


@atdata_core.packable
class Part:
    weight: float


@atdata_core.packable
class Whole:
    image: NDArray[np.int16]
    part: Part
    parts: list[Part]


def built():
    record = schema_record(Whole, name="com.example.whole", version="1.0.0")
    cls = sample_type_from_record(record)
    part_cls = {f.name: f for f in sample_fields(cls)}["part"].type.cls
    return cls, part_cls


def test_samples_of_generated_classes_unpickle_in_a_fresh_process():
    cls, part_cls = built()
    sample = cls(image=np.arange(4, dtype=np.int16), part=part_cls(0.5), parts=[part_cls(1.5)])
    code = (
        "import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); "
        "print(type(s).__name__, s.image.dtype, s.image.tolist(), s.part.weight, [p.weight for p in s.parts])"
    )
    result = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(sample), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["Whole", "int16", "[0,", "1,", "2,", "3]", "0.5", "[1.5]"]


def test_in_process_round_trip_gives_the_same_classes():
    cls, part_cls = built()
    assert pickle.loads(pickle.dumps(cls)) is cls
    assert pickle.loads(pickle.dumps(part_cls)) is part_cls
