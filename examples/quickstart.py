"""The main job on the embedded default: write a typed dataset, read it back, transform it.

Run with ``make demo``. Everything happens locally: shards in a temporary
folder, samples read back as typed objects, batched, and viewed through a lens.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

import atdata_core
from atdata_core import Dataset, ShardWriter, lens, packable
from atdata_core.lenses import check_lens_laws


@packable
class ImageSample:
    image: NDArray[np.uint8]  # 3 x 32 x 32 RGB
    label: str
    confidence: float


@packable
class GrayImage:
    pixels: NDArray[np.uint8]  # 32 x 32
    label: str


@packable
class Labelled:
    image: NDArray[np.uint8]
    label: str


@lens
def labelled(sample: ImageSample) -> Labelled:
    return Labelled(sample.image, sample.label)


@labelled.putter
def labelled_put(view: Labelled, source: ImageSample) -> ImageSample:
    return ImageSample(view.image, view.label, source.confidence)


@lens
def to_gray(sample: ImageSample) -> GrayImage:
    return GrayImage(sample.image.mean(axis=0).astype(np.uint8), sample.label)


@to_gray.putter
def from_gray(view: GrayImage, source: ImageSample) -> ImageSample:
    return ImageSample(np.repeat(view.pixels[None], 3, axis=0), view.label, source.confidence)


def main() -> None:
    rng = np.random.default_rng(7)
    labels = ["cat", "dog", "bird", "fish"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        with ShardWriter(folder / "images-%06d.tar", maxcount=1_000) as sink:
            for i in range(5_000):
                image = rng.integers(0, 255, (3, 32, 32), dtype=np.uint8)
                sink.write(ImageSample(image, labels[i % 4], float(rng.random())))
        elapsed = time.perf_counter() - started
        print(f"wrote {sum(s.count for s in sink.shards)} samples in {len(sink.shards)} shards "
              f"({5_000 / elapsed:,.0f} samples/s)")
        for shard in sink.shards[:2]:
            print(f"  {Path(shard.url).name}  {shard.count} samples  {shard.size:,} bytes  sha256 {shard.sha256[:16]}...")

        # Typed, checksum-verified reading with counts known up front.
        dataset = Dataset[ImageSample](str(folder / "images-{000000..000004}.tar"), shards=sink.shards)
        print(f"\n{dataset!r}: len={len(dataset)}")
        first = next(iter(dataset.ordered()))
        print(f"first sample: label={first.label!r} image={first.image.dtype}{first.image.shape}")

        # Batches stack arrays into one ndarray.
        batch = next(iter(dataset.shuffled(seed=0, batch_size=128)))
        print(f"a shuffled batch: images {batch.image.shape}, {len(batch.label)} labels")

        # Pipelines compose: filter, map and view through a lens.
        cats = dataset.filter(lambda s: s.label == "cat").as_type(GrayImage).head(3)
        print(f"three cats as gray images: {[g.pixels.shape for g in cats.ordered()]}")

        some = list(dataset.head(20).ordered())
        print(f"lens laws of 'labelled' on 20 samples: {check_lens_laws(labelled, some)}")
        try:
            check_lens_laws(to_gray, some)
        except atdata_core.errors.LensLawViolation as err:
            print(f"lens laws of 'to_gray' (lossy): {str(err).splitlines()[0]}")

        # A reader without the class still gets arrays back.
        untyped = next(iter(Dataset(sink.shards[0].url).ordered()))
        print(f"read without a class: {untyped!r}")


if __name__ == "__main__":
    main()
