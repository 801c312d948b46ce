"""Built-in lens executors, and the trust policy every lens executor can decide with.

:class:`PythonLensExecutor` runs Python lens code that is installed locally,
matches the record's code reference and is trusted (:class:`TrustPolicy`:
passed explicitly, a trusted author, a pinned commit, or a ``lensVerification``
by a trusted DID covering the code's hash, :func:`lens_code_hash`); it refuses
everything else (DESIGN D3).
It is registered through the ``atdata_lens_executors`` hook under the name
``python``, built from :class:`PythonExecutorSettings` (the ``[lens]``
configuration section).
"""

from __future__ import annotations

from atdata_core.executors._python import PythonLensExecutor
from atdata_core.executors._settings import PythonExecutorSettings
from atdata_core.executors._trust import TrustDecision, TrustPolicy, lens_code_hash

__all__ = ["PythonExecutorSettings", "PythonLensExecutor", "TrustDecision", "TrustPolicy", "lens_code_hash"]
