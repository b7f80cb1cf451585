"""Where MIL heads train and predict: ``--device auto|cuda|cpu`` of ``fit`` and ``predict``.

Bags stay on the host (:class:`~wsi_engine.mil.data.BagReader` and its cache);
:class:`DeviceBags` moves each bag to the device when a step asks for it, and
models are moved there once. Everything runs in float32, the Sinkhorn
iterations included (no mixed precision: the transport plans of Libra-MIL
underflow in half precision, and MIL heads are small enough that float32 on a
GPU is not the bottleneck). Checkpoints are always saved from the CPU, so a run
fitted on a GPU predicts anywhere.
"""

from __future__ import annotations

from typing import Any

import torch

from wsi_engine.encoders.embed import resolve_device

__all__ = ["DeviceBags", "resolve_device"]


class DeviceBags:
    """A bag reader whose :meth:`get` returns the bag on ``device``; everything else is the reader's."""

    def __init__(self, reader: Any, device: torch.device):
        self._reader = reader
        self.device = device

    def get(self, slide_id: str) -> torch.Tensor:
        """(N, D) float32 features of ``slide_id`` on :attr:`device`."""
        return self._reader.get(slide_id).to(self.device, non_blocking=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)
