"""Generated rows of every Hugging Face feature kind atdata-hf maps (shared by the tests)."""

from __future__ import annotations

import io
import wave

import numpy as np


def png_bytes(rng: np.random.Generator, height: int, width: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def wav_bytes(rng: np.random.Generator, frames: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(rng.integers(-2000, 2000, frames, dtype=np.int16).tobytes())
    return buffer.getvalue()


def every_kind_features():
    from datasets import (
        Array2D, Array3D, Array4D, Array5D, Audio, ClassLabel, Features, Image, LargeList, List, Sequence, Value,
    )

    return Features({
        "flag": Value("bool"),
        "i8": Value("int8"), "i16": Value("int16"), "i32": Value("int32"), "i64": Value("int64"),
        "u8": Value("uint8"), "u16": Value("uint16"), "u32": Value("uint32"), "u64": Value("uint64"),
        "f16": Value("float16"), "f32": Value("float32"), "f64": Value("float64"),
        "text": Value("string"), "long_text": Value("large_string"), "blob": Value("binary"),
        "label": ClassLabel(names=["cat", "dog", "bird"]),
        "grid": Array2D(shape=(3, 4), dtype="uint8"),
        "frames": Array3D(shape=(None, 2, 3), dtype="float32"),
        "volume": Array4D(shape=(2, 2, 2, 2), dtype="int16"),
        "video": Array5D(shape=(1, 2, 2, 2, 3), dtype="float64"),
        "point": List(Value("float32"), length=3),
        "scores": List(Value("float64")),
        "matrix": List(List(Value("int32"), length=2), length=3),
        "rows": List(List(Value("uint16"), length=2)),
        "legacy": Sequence(Value("int8"), length=2),
        "big_list": LargeList(Value("int64")),
        "words": List(Value("string")),
        "ragged": List(List(Value("float32"))),
        "meta": {"source": Value("string"), "year": Value("int16"), "box": List(Value("float32"), length=4),
                 "inner": {"ok": Value("bool")}},
        "spans": List({"start": Value("int32"), "end": Value("int32"), "tag": ClassLabel(names=["PER", "LOC"])}),
        "image": Image(),
        "audio": Audio(),
        "maybe": Value("int32"),
    })


def every_kind_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append({
            "flag": bool(i % 2),
            "i8": int(rng.integers(-128, 128)), "i16": int(rng.integers(-30000, 30000)),
            "i32": int(rng.integers(-2**31, 2**31)), "i64": int(rng.integers(-2**62, 2**62)),
            "u8": int(rng.integers(0, 256)), "u16": int(rng.integers(0, 65536)),
            "u32": int(rng.integers(0, 2**32)), "u64": int(rng.integers(2**62, 2**63)),
            "f16": float(np.float16(rng.standard_normal())), "f32": float(np.float32(rng.standard_normal())),
            "f64": float(rng.standard_normal()),
            "text": f"row {i} \u00e9\u4e2d", "long_text": "x" * (i + 1), "blob": bytes(rng.integers(0, 256, i, dtype=np.uint8)),
            "label": i % 3,
            "grid": rng.integers(0, 256, (3, 4), dtype=np.uint8),
            "frames": rng.standard_normal((i % 3 + 1, 2, 3)).astype(np.float32),
            "volume": rng.integers(-1000, 1000, (2, 2, 2, 2), dtype=np.int16),
            "video": rng.standard_normal((1, 2, 2, 2, 3)),
            "point": rng.standard_normal(3).astype(np.float32),
            "scores": rng.standard_normal(i % 4),
            "matrix": rng.integers(-50, 50, (3, 2), dtype=np.int32),
            "rows": rng.integers(0, 60000, (i % 3, 2), dtype=np.uint16),
            "legacy": rng.integers(-100, 100, 2, dtype=np.int8),
            "big_list": list(range(i)),
            "words": ["a", "bb", "ccc"][: i % 4],
            "ragged": [rng.standard_normal(k).astype(np.float32).tolist() for k in range(i % 3)],
            "meta": {"source": f"s{i}", "year": 2000 + i, "box": rng.standard_normal(4).astype(np.float32),
                     "inner": {"ok": i % 2 == 0}},
            "spans": [{"start": k, "end": k + 2, "tag": k % 2} for k in range(i % 3)],
            "image": {"bytes": png_bytes(rng, 4 + i % 3, 5), "path": None},
            "audio": {"bytes": wav_bytes(rng, 40 + i), "path": None},
            "maybe": None if i % 3 == 1 else i,
        })
    return rows


def every_kind_dataset(n: int = 7, seed: int = 0):
    """A ``Dataset`` of ``n`` rows of every kind.

    The audio column is written as the struct Arrow stores and cast to
    ``Audio`` after: Hugging Face encodes Audio values through torchcodec,
    which is not needed to store an encoded file.
    """
    from datasets import Dataset, Value

    features = every_kind_features()
    plain = features.copy()
    plain["audio"] = {"bytes": Value("binary"), "path": Value("string")}
    return Dataset.from_list(every_kind_rows(n, seed), features=plain).cast(features)
