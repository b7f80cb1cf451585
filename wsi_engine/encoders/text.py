"""Text embeddings of prompts: tokenise, report prompts that do not fit, encode, cache on disk.

``encode_text`` returns (T, D) float32 L2-normalised rows in the encoder's
joint space. A prompt longer than the text tower's context is never cut
silently: it is listed in a :class:`PromptTooLongWarning` (or, with
``strict=True``, a ConfigError) before the tokenizer truncates it. Embeddings
are cached one file per prompt under
``$WSI_ENGINE_CACHE/text/<encoder_id>/<sha256>.npy`` (default cache
``~/.cache/wsi-engine``); the key hashes the checkpoint's sha256, the
tokenizer, the context and the prompt, so new weights never reuse old entries.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wsi_engine.encoders.config import WEIGHTS_DIR_ENV, weights_dir
from wsi_engine.encoders.encoder import Encoder
from wsi_engine.errors import ConfigError, EncoderError

CACHE_ENV = "WSI_ENGINE_CACHE"
log = logging.getLogger(__name__)


class PromptTooLongWarning(UserWarning):
    """Some prompts have more tokens than the text tower reads; they were truncated."""


@dataclass(frozen=True)
class TooLongPrompt:
    """A prompt that does not fit: its position, text, token count and the limit (special tokens included)."""

    index: int
    text: str
    tokens: int
    limit: int


def _require_text(encoder: Encoder) -> None:
    if not encoder.config.has_text:
        raise EncoderError(
            f"encoder '{encoder.encoder_id}' has no text tower (image-only)",
            hint="text-guided heads run in their text-free form with this encoder",
        )


def prompt_token_limit(encoder: Encoder) -> int:
    """Tokens the text tower reads per prompt, special tokens included (a CoCa CLS slot excluded)."""
    _require_text(encoder)
    tower = getattr(encoder.model, "text", encoder.model)
    limit = getattr(tower, "context_length", None)
    return int(limit) if isinstance(limit, int) else encoder.config.text.context_length


class _Tokenizer:
    """Counts and encodes prompts with one of the supported tokenizer kinds."""

    def __init__(self, kind: str, source: str):
        self.kind = kind
        self.source = source
        if kind == "clip-bpe":
            from open_clip.tokenizer import SimpleTokenizer

            self._impl = SimpleTokenizer()
        elif kind == "hf-file":
            try:
                from tokenizers import Tokenizer
            except ImportError as error:
                raise EncoderError(
                    "this encoder's tokenizer needs the 'tokenizers' package",
                    hint="pip install tokenizers",
                ) from error
            self._impl = Tokenizer.from_file(source)
        else:
            try:
                from transformers import AutoTokenizer

                self._impl = AutoTokenizer.from_pretrained(source, local_files_only=True)
            except ImportError as error:
                raise EncoderError(
                    "this encoder's tokenizer needs 'transformers'", hint="pip install transformers"
                ) from error
            except OSError as error:
                raise EncoderError(
                    f"tokenizer '{source}' is not in the local Hugging Face cache",
                    hint="download it once with network access (nothing is downloaded at run time)",
                ) from error

    def count(self, text: str) -> int:
        """Number of tokens of ``text``, special tokens included."""
        if self.kind == "clip-bpe":
            return len(self._impl.encode(text)) + 2  # start and end of text
        if self.kind == "hf-file":
            return len(self._impl.encode(text).ids)
        return len(self._impl(text)["input_ids"])

    def encode(self, texts: list[str], length: int) -> torch.Tensor:
        """(T, length) int64 token ids, truncated (end token kept) and padded."""
        if self.kind == "clip-bpe":
            return self._impl(texts, context_length=length)
        if self.kind == "hf-file":
            pad_id = self._impl.token_to_id("<pad>") or 0
            self._impl.enable_truncation(max_length=length)
            self._impl.enable_padding(length=length, pad_id=pad_id, pad_token="<pad>")
            return torch.tensor([e.ids for e in self._impl.encode_batch(texts)], dtype=torch.long)
        batch = self._impl(
            texts, max_length=length, padding="max_length", truncation=True, return_tensors="pt"
        )
        return batch["input_ids"]


@lru_cache(maxsize=8)
def _cached_tokenizer(kind: str, source: str) -> _Tokenizer:
    return _Tokenizer(kind, source)


def _tokenizer(encoder: Encoder) -> _Tokenizer:
    _require_text(encoder)
    text = encoder.config.text
    if text.tokenizer == "clip-bpe":
        return _cached_tokenizer("clip-bpe", "")
    if text.tokenizer == "hf":
        return _cached_tokenizer("hf", text.hf_tokenizer)
    return _cached_tokenizer("hf-file", str(_tokenizer_file(encoder)))


def _tokenizer_file(encoder: Encoder) -> Path:
    """The tokenizer JSON: an absolute path, beside the checkpoint, or under the weights dir."""
    name = encoder.config.text.tokenizer_file
    candidates = [Path(name).expanduser(), encoder.checkpoint_path.parent / name]
    root = weights_dir()
    if root is not None:
        candidates.append(root / name)
        if encoder.config.weights.file:
            candidates.append(root / Path(encoder.config.weights.file).parent / name)
    for path in candidates:
        if path.is_file():
            return path
    raise EncoderError(
        f"tokenizer file {name} of encoder '{encoder.encoder_id}' not found",
        hint=f"put it beside the checkpoint ({encoder.checkpoint_path.parent}) or under ${WEIGHTS_DIR_ENV}",
    )


def token_lengths(encoder: Encoder, texts: list[str]) -> list[int]:
    """Token count of each prompt, special tokens included (compare with :func:`prompt_token_limit`)."""
    tokenizer = _tokenizer(encoder)
    return [tokenizer.count(t) for t in texts]


def too_long_prompts(encoder: Encoder, texts: list[str]) -> list[TooLongPrompt]:
    """The prompts with more tokens than the text tower reads."""
    limit = prompt_token_limit(encoder)
    return [
        TooLongPrompt(i, t, n, limit)
        for i, (t, n) in enumerate(zip(texts, token_lengths(encoder, texts), strict=True))
        if n > limit
    ]


def cache_root() -> Path:
    """``$WSI_ENGINE_CACHE``, else ``~/.cache/wsi-engine``."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "wsi-engine"


def _cache_key(encoder: Encoder, text: str, limit: int) -> str:
    tokenizer = encoder.config.text
    ident = f"{encoder.checkpoint_sha256}\0{tokenizer.tokenizer}:{tokenizer.tokenizer_file or tokenizer.hf_tokenizer}"
    return hashlib.sha256(f"{ident}\0{limit}\0{text}".encode()).hexdigest()


def _write_atomic(path: Path, row: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, row)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_text(
    encoder: Encoder,
    texts: list[str],
    *,
    cache: bool = True,
    strict: bool = False,
    batch_size: int = 64,
) -> np.ndarray:
    """(T, D) float32 L2-normalised embeddings of ``texts`` in the encoder's joint space.

    Too-long prompts raise :class:`ConfigError` when ``strict``, else are listed
    in a :class:`PromptTooLongWarning` and truncated. ``cache`` reads and
    writes the per-prompt disk cache (see the module docstring).
    """
    texts = list(texts)
    limit = prompt_token_limit(encoder)
    long = too_long_prompts(encoder, texts)
    if long:
        listing = "; ".join(f"#{p.index} ({p.tokens} tokens): {p.text[:60]!r}" for p in long[:5])
        message = f"{len(long)} prompt(s) longer than the {limit}-token context of '{encoder.encoder_id}': {listing}"
        if strict:
            raise ConfigError(message, hint="shorten these prompts")
        log.warning("%s (truncated)", message)
        warnings.warn(PromptTooLongWarning(message + " (truncated)"), stacklevel=2)
    folder = cache_root() / "text" / encoder.encoder_id
    keys = [_cache_key(encoder, t, limit) for t in texts]
    rows: dict[int, np.ndarray] = {}
    if cache:
        for i, key in enumerate(keys):
            path = folder / f"{key}.npy"
            if path.is_file():
                rows[i] = np.load(path)
    todo = [i for i in range(len(texts)) if i not in rows]
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        for i, row in zip(chunk, _encode(encoder, [texts[i] for i in chunk], limit), strict=True):
            rows[i] = row
            if cache:
                _write_atomic(folder / f"{keys[i]}.npy", row)
    if not texts:
        return np.zeros((0, encoder.embed_dim), dtype=np.float32)
    return np.stack([rows[i] for i in range(len(texts))]).astype(np.float32)


def _encode(encoder: Encoder, texts: list[str], limit: int) -> np.ndarray:
    tokens = _tokenizer(encoder).encode(texts, limit).to(encoder.device)
    with torch.inference_mode():
        out = encoder.model.encode_text(tokens, normalize=False)
    return F.normalize(out.float(), dim=-1).cpu().numpy()
