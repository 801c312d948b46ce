"""Shards in S3, or any S3-compatible store: written straight to a bucket, found by glob, read typed.

Run with ``python examples/s3_storage.py`` (needs ``atdata-storage-s3``). With
``ATDATA_S3_ENDPOINT`` set (and AWS credentials in the usual places) it uses
that store and the bucket ``S3_EXAMPLE_BUCKET`` names; otherwise it starts an
S3-compatible server on loopback (moto, from the test tools) with a bucket of
its own. The same code reads ``s3://`` shards on AWS S3, MinIO, Ceph or R2:
only ``[s3] endpoint`` (and credentials) change.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

import atdata_core
from atdata_core.plugins import reset_plugins


@atdata_core.packable
class Frame:
    """One video frame, downscaled, and where it came from."""

    image: NDArray[np.uint8]
    video: str
    index: int


@contextlib.contextmanager
def s3_endpoint() -> Iterator[str]:
    """The bucket to write into: a configured store's, or one on a loopback moto server started here."""
    if os.environ.get("ATDATA_S3_ENDPOINT"):
        yield os.environ.get("S3_EXAMPLE_BUCKET", "atdata-example")
        return
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's request log

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto accepts any credentials; a real store takes yours from the AWS chain, never from atdata's settings.
    os.environ.update(AWS_ACCESS_KEY_ID="example", AWS_SECRET_ACCESS_KEY="example", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")
    os.environ["ATDATA_S3_ENDPOINT"] = endpoint
    os.environ["ATDATA_S3_REGION"] = "us-east-1"
    reset_plugins()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="atdata-example")
    print(f"S3-compatible server on {endpoint}, bucket atdata-example")
    try:
        yield "atdata-example"
    finally:
        server.stop()


def main() -> None:
    with s3_endpoint() as bucket:
        rng = np.random.default_rng(11)
        prefix = f"s3://{bucket}/frames"
        # ShardWriter uploads each finished shard (multipart above [s3] part_size) and records its sha256.
        with atdata_core.ShardWriter(f"{prefix}/frames-%06d.tar", maxcount=100) as sink:
            for i in range(300):
                sink.write(Frame(rng.integers(0, 255, (3, 24, 32), dtype=np.uint8), f"video-{i // 60}", i % 60))
        for shard in sink.shards:
            print(f"  {shard.url}  {shard.count} samples  {shard.size:,} bytes  sha256 {shard.sha256[:12]}...")

        # Anyone with read access finds the shards by pattern, or by brace range, and reads them typed.
        dataset = atdata_core.Dataset[Frame](f"{prefix}/frames-*.tar")
        print(f"glob found {len(dataset.urls)} shards")
        frames = list(atdata_core.Dataset[Frame](f"{prefix}/frames-{{000000..000002}}.tar").ordered())
        print(f"read {len(frames)} frames; first from {frames[0].video}, image {frames[0].image.shape}")

        # Batches for training: arrays stacked, checksums verified against what the writer recorded.
        verified = atdata_core.Dataset[Frame](shards=sink.shards)
        batch = next(iter(verified.shuffled(seed=0, batch_size=64)))
        print(f"a verified, shuffled batch: images {batch.image.shape}, {len(set(batch.video))} videos")


if __name__ == "__main__":
    main()
