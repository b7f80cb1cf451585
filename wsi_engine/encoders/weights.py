"""Find checkpoint files offline and read them safely.

Nothing here touches the network. A checkpoint is looked for, in order, at
the ``--checkpoint`` path, the preset's ``weights.checkpoint``,
``$WSI_ENGINE_WEIGHTS_DIR/<weights.file>``, and the local Hugging Face cache
(``weights.hf_hub`` or an open_clip ``weights.pretrained`` tag). When none
exists the error names the file, where to get it, the ``--checkpoint`` flag
and the environment variable.

Files are read with ``torch.load(weights_only=True)`` or from safetensors; a
file holding arbitrary pickled Python objects is refused, never executed.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import torch

from wsi_engine.encoders.config import WEIGHTS_DIR_ENV, EncoderConfig, weights_dir
from wsi_engine.errors import EncoderError

_WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict")
_SAFE_ALTERNATIVES = {
    "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
    "pytorch_model.bin": "model.safetensors",
}


def _expand(path: str | Path) -> Path:
    return Path(os.path.expandvars(str(path))).expanduser()


def _hub_source(config: EncoderConfig) -> tuple[str, str] | None:
    """(hub repo id, file name) of the preset's weights, from ``hf_hub`` or an open_clip pretrained tag."""
    weights = config.weights
    if weights.hf_hub:
        return weights.hf_hub, weights.hf_file
    if weights.pretrained and config.architecture:
        import open_clip

        tag = open_clip.get_pretrained_cfg(config.architecture, weights.pretrained)
        if tag.get("hf_hub"):
            return tag["hf_hub"].rstrip("/"), weights.hf_file
    return None


def _in_hf_cache(repo_id: str, filename: str) -> Path | None:
    """Path of ``filename`` of hub repo ``repo_id`` in the local HF cache (no network), or ``None``."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in (_SAFE_ALTERNATIVES.get(filename), filename):
        if name is None:
            continue
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def resolve_checkpoint(config: EncoderConfig, checkpoint: str | Path | None = None) -> Path:
    """The local checkpoint file of ``config`` (``checkpoint`` overrides the preset); raises EncoderError if absent."""
    if checkpoint is not None:
        path = _expand(checkpoint)
        if not path.is_file():
            raise EncoderError(
                "checkpoint file not found", path=path, hint="check the --checkpoint path"
            )
        return path
    weights = config.weights
    if weights.checkpoint:
        path = _expand(weights.checkpoint)
        if not path.is_absolute() and weights_dir() is not None:
            path = weights_dir() / path
        if path.is_file():
            return path
        raise EncoderError(
            f"checkpoint of encoder '{config.name}' not found",
            path=path,
            hint="fix weights.checkpoint in the preset or pass --checkpoint PATH",
        )
    root = weights_dir()
    if weights.file and root is not None and (root / weights.file).is_file():
        return root / weights.file
    hub = _hub_source(config)
    if hub is not None:
        cached = _in_hf_cache(*hub)
        if cached is not None:
            return cached
    raise _missing_weights_error(config, hub)


def _missing_weights_error(config: EncoderConfig, hub: tuple[str, str] | None) -> EncoderError:
    weights = config.weights
    wanted = weights.file or (hub[1] if hub else None)
    if wanted is None:
        return EncoderError(
            f"encoder '{config.name}' names no weights",
            hint="pass --checkpoint PATH to a checkpoint file",
        )
    where = []
    if weights.source:
        where.append(f"get it from {weights.source}")
    elif hub is not None:
        where.append(f"get it from the Hugging Face hub repo {hub[0]} (file {hub[1]})")
    root = weights_dir()
    now = f"now {root}" if root else "unset now"
    place = (
        f"or set {WEIGHTS_DIR_ENV} to a folder holding {weights.file} ({now})"
        if weights.file
        else ""
    )
    return EncoderError(
        f"weights of encoder '{config.name}' not found: need the file {wanted} (nothing is downloaded at run time)",
        hint="; ".join([*where, f"then pass --checkpoint PATH {place}".rstrip()]),
    )


def sha256_file(path: str | Path, chunk_bytes: int = 8 << 20) -> str:
    """Hex sha256 of a file, read in ``chunk_bytes`` pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """{name: tensor} of a checkpoint file (safetensors, or torch.load with ``weights_only=True``).

    A ``{"state_dict": ...}``-style wrapper and a ``module.`` prefix (DataParallel) are removed.
    Raises :class:`EncoderError` for unreadable or corrupt files and for files holding pickled objects.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            loaded = load_file(str(path), device="cpu")
        except Exception as error:
            raise EncoderError(
                f"corrupt or unreadable safetensors checkpoint ({type(error).__name__}: {error})",
                path=path,
                hint="download the file again",
            ) from error
    else:
        loaded = _torch_load(path)
    return _as_state_dict(loaded, path)


def _torch_load(path: Path) -> object:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        text = str(error)
        if "Unsupported global" in text:
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = f" (e.g. {found.group(1)})" if found else ""
            raise EncoderError(
                f"refused: the checkpoint holds pickled Python objects{what}, which could run code when loaded",
                path=path,
                hint="save only the model's state_dict (tensors) with torch.save or safetensors",
            ) from None
        if "TorchScript" in text:
            raise EncoderError(
                "refused: this is a TorchScript archive, not a state dict",
                path=path,
                hint="use the open_clip / safetensors release of these weights",
            ) from None
        raise EncoderError(
            f"corrupt or unreadable checkpoint ({type(error).__name__}: {text.splitlines()[0][:200]})",
            path=path,
            hint="the file may be truncated: download it again",
        ) from None


def _as_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(
        2
    ):  # a training checkpoint {"state_dict": {...}, "epoch": ...}, maybe nested once
        if isinstance(loaded, dict):
            inner = next(
                (loaded[k] for k in _WRAPPER_KEYS if isinstance(loaded.get(k), dict)), None
            )
            if inner is not None:  # in a state dict every value is a tensor, never a dict
                loaded = inner
    if not isinstance(loaded, dict) or not loaded:
        raise EncoderError(
            f"not a state dict (a mapping of names to tensors) but {type(loaded).__name__}",
            path=path,
        )
    bad = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise EncoderError(f"not a state dict: entry '{bad[0]}' is not a tensor", path=path)
    if all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module.") :]: v for k, v in loaded.items()}
    return dict(loaded)


def verify_sha256(config: EncoderConfig, path: Path, actual: str) -> None:
    """Raise EncoderError when the preset pins a sha256 and ``actual`` differs."""
    expected = config.weights.sha256
    if expected and expected.lower() != actual:
        raise EncoderError(
            f"checksum mismatch for encoder '{config.name}': sha256 {actual[:12]}…, expected {expected[:12]}…",
            path=path,
            hint="the file is damaged or another release: download it again",
        )
