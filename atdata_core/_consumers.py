"""Who is reading: the node rank and the DataLoader worker of this process.

A pipeline asks at iteration time, so the answer is the one in the process
that iterates (a DataLoader worker, one node of many). torch is consulted only
when something else has already imported it: importing it here would cost
seconds in programs that never use it.
"""

from __future__ import annotations

import os
import sys


def node_rank() -> tuple[int, int]:
    """``(rank, world_size)`` from ``torch.distributed`` when initialised, else ``RANK`` / ``WORLD_SIZE``.

    ``LOCAL_RANK`` / ``LOCAL_WORLD_SIZE`` are the fallback; one node of one without any of them.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return dist.get_rank(), dist.get_world_size()
        except Exception:  # torch.distributed half-configured: fall back to the environment
            pass
    env = os.environ
    for rank_var, world_var in (("RANK", "WORLD_SIZE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")):
        if world_var in env:
            try:
                return int(env.get(rank_var, "0")), int(env[world_var])
            except ValueError:
                raise ValueError(
                    f"environment variables {rank_var}={env.get(rank_var)!r} / {world_var}={env[world_var]!r} "
                    "must be integers"
                ) from None
    return 0, 1


def dataloader_worker() -> tuple[int, int]:
    """``(worker id, number of workers)`` inside a torch DataLoader worker, else ``(0, 1)``."""
    data = sys.modules.get("torch.utils.data")
    if data is not None:
        info = data.get_worker_info()
        if info is not None:
            return info.id, info.num_workers
    return 0, 1


def check_rank(rank: int, world: int, where: str) -> None:
    """Refuse a rank outside ``0 <= rank < world``, naming where the numbers came from."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} / world size {world} from {where}: need world_size >= 1 and 0 <= rank < world_size")
