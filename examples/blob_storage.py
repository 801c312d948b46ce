"""Shards as blobs of the publisher's own repository: no server of your own.

Run with ``python examples/blob_storage.py`` (needs ``atdata-storage-blob``).
Alice writes shards locally and publishes them with ``storage="blob"``: each
shard is uploaded as a blob of her repository before the entry record, a
``storageBlobs`` member naming the blobs' CIDs and sha256, is written. Bob
loads the dataset by name; the blobs come from alice's PDS, checked against
their sha256 as they stream. A PDS takes blobs up to its upload limit (5 MiB
on the reference PDS), so the writer cuts shards below it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

import atdata_core
from atdata_core import ShardWriter, packable
from atdata_core.atproto import login

from _local_federation import local_federation


@packable
class Tile:
    """A 16x16 RGB map tile and its grid cell."""

    pixels: NDArray[np.uint8]
    cell: str


def main() -> None:
    with local_federation() as federation:
        alice_handle, alice_password = federation.account("alice")
        bob_handle, bob_password = federation.account("bob")

        federation.become("alice")
        alice = login(alice_handle, alice_password)
        rng = np.random.default_rng(5)
        with ShardWriter(federation.folder / "tiles-%06d.tar", maxcount=200, maxsize=4 * 1024 * 1024) as sink:
            for i in range(500):
                sink.write(Tile(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), f"cell-{i // 50}-{i % 50}"))
        schema = atdata_core.publish_schema(alice, Tile, schema_id="test.example.tile", version="1.0.0")
        entry = atdata_core.publish_dataset(alice, "map-tiles", sink.shards, schema=schema, storage="blob",
                                            description="500 synthetic map tiles", tags=["maps"])
        storage = entry.record["storage"]
        print(f"alice published {entry.uri}")
        print(f"  storage {storage['$type']}: {len(storage['blobs'])} blobs, "
              f"first {storage['blobs'][0]['blob']['ref']['$link']}")

        federation.become("bob")
        login(bob_handle, bob_password)
        dataset = atdata_core.load(f"@{alice_handle}/map-tiles")
        tiles = list(dataset.ordered())
        print(f"bob loaded {len(tiles)} tiles of class {dataset.sample_type.__name__}, "
              f"pixels {tiles[0].pixels.dtype}{tiles[0].pixels.shape}")
        same = all(np.array_equal(a.pixels, b.pixels) for a, b in zip(tiles, _tiles(), strict=True))
        print(f"  identical to what alice wrote: {same}")


def _tiles() -> list[Tile]:
    rng = np.random.default_rng(5)
    return [Tile(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), f"cell-{i // 50}-{i % 50}") for i in range(500)]


if __name__ == "__main__":
    main()
