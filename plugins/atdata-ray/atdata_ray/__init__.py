"""atdata-ray: atdata datasets in Ray Data, for work that outgrows one machine.

- :func:`read_atdata` / :class:`AtdataDatasource`: a local pattern, a URL
  list or a published reference (``at://``, ``@handle/name``,
  ``@handle/name@label``) as a ``ray.data.Dataset``, one read task per shard,
  array fields as Arrow fixed-shape tensor columns, sha256 verified;
  ``Dataset.to_ray()`` in the core calls it.
- :func:`write_atdata` / :class:`AtdataDatasink`: a ``ray.data.Dataset``
  written as shards by every write task (keys unique across tasks) to any
  storage backend, optionally published as a dataset entry when done.
- ``atdata ray inspect`` and ``atdata ray copy`` on the command line.

This module holds the hook implementations and stays cheap to import: Ray
loads only when one of the names above is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from atdata_core.plugins import hookimpl

__all__ = ["AtdataDatasink", "AtdataDatasource", "Publication", "read_atdata", "write_atdata"]

_LAZY = {
    "AtdataDatasource": "atdata_ray.datasource",
    "read_atdata": "atdata_ray.datasource",
    "AtdataDatasink": "atdata_ray.datasink",
    "Publication": "atdata_ray.datasink",
    "write_atdata": "atdata_ray.datasink",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atdata_ray' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


@hookimpl
def atdata_cli_commands() -> list[Any]:
    from atdata_ray.cli import ray_group

    return [ray_group]
