"""Built-in lens executors.

:class:`PythonLensExecutor` runs Python lens code that is installed locally and
matches the record's code reference; it refuses everything else (DESIGN D3).
It is registered through the ``atdata_lens_executors`` hook under the name
``python``.
"""

from __future__ import annotations

from atdata_core.executors.python import PythonLensExecutor, TrustPolicy

__all__ = ["PythonLensExecutor", "TrustPolicy"]
