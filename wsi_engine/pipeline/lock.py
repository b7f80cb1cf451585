"""The output-folder lock (kept here for existing imports; it lives in :mod:`wsi_engine.locks`)."""

from wsi_engine.locks import LOCK_NAME, RunLock

__all__ = ["LOCK_NAME", "RunLock"]
