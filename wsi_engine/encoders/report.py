"""The outcome of an embedding run: one :class:`StoreResult` per store and the run's telemetry."""

from __future__ import annotations

from dataclasses import dataclass, field

from wsi_engine.stage import StageResult, per_second

STAGE = "embed"


@dataclass
class StoreResult:
    """Outcome for one store. ``status``: done, skipped (already complete) or failed."""

    store: str
    slide_id: str
    n_patches: int
    status: str = "done"
    reason: str = ""
    exit_code: int = 0
    """of the failure's category (errors.py), 0 unless failed"""
    embedded: int = 0
    """patches encoded in this run (less than ``n_patches`` when resuming)"""
    seconds: float = 0.0
    """wall time from the store's first block read to its completion"""

    def outcome(self) -> StageResult:
        """The store's result in the shape every stage shares."""
        empty = self.status == "done" and self.n_patches == 0
        return StageResult(
            STAGE,
            self.slide_id,
            "empty" if empty else self.status,  # type: ignore[arg-type]
            self.reason,
            seconds=self.seconds,
            counts={"patches": self.n_patches, "processed": self.embedded},
        )


@dataclass
class EmbedReport:
    """A run's results and telemetry (seconds summed over the run).

    ``read_seconds`` is worker time spent reading and decoding (in parallel
    with the model), ``wait_seconds`` the time the model loop stalled waiting
    for data, ``model_seconds`` device time of copies + preprocessing + forward.
    """

    encoder_id: str
    device: str
    """``cpu``, ``cuda``, ``cuda:N`` (``cuda x2`` for sharded runs)"""
    device_name: str
    """the GPU's model, or the CPU and its threads"""
    precision: str
    """``fp32``, ``fp16`` or ``bf16``: the autocast precision used"""
    batch_size: int
    """patches per forward pass"""
    workers: int
    """decode worker processes"""
    results: list[StoreResult] = field(default_factory=list)
    load_seconds: float = 0.0
    """loading the encoder (not part of ``wall_seconds``)"""
    wall_seconds: float = 0.0
    """planning, reading, encoding and writing"""
    read_seconds: float = 0.0
    wait_seconds: float = 0.0
    model_seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def embedded(self) -> int:
        return sum(r.embedded for r in self.results)

    @property
    def patches_per_second(self) -> float:
        return per_second(self.embedded, self.wall_seconds)

    @property
    def failed(self) -> list[StoreResult]:
        return [r for r in self.results if r.status == "failed"]
