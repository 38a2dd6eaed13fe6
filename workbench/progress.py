"""Progress bars: ``tqdm.auto`` in JupyterLab, plain text bars when a notebook runs headlessly.

Under ``workbench run`` (papermill) widget bars would be unreadable in the logs, so the runner sets
``WORKBENCH_HEADLESS=1`` for the kernel and every bar here becomes a text bar that updates at most
every few seconds.
"""

from __future__ import annotations

import os
from typing import Any


def headless() -> bool:
    return os.environ.get("WORKBENCH_HEADLESS", "") not in ("", "0")


def tqdm(*args: Any, **kwargs: Any):
    """A tqdm bar suited to where the code runs (same signature as ``tqdm.tqdm``)."""
    if headless():
        from tqdm.std import tqdm as text_tqdm

        kwargs.setdefault("mininterval", 10)
        kwargs.setdefault("ascii", True)
        return text_tqdm(*args, **kwargs)
    from tqdm.auto import tqdm as auto_tqdm

    return auto_tqdm(*args, **kwargs)
