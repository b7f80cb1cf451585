"""The CONCH vision-language model, built so that its official checkpoint loads by name.

CONCH (Lu et al., Nature Medicine 2024) is a CoCa-style model: a ViT-B/16
image trunk at 448 px, an attentional pooler with one query followed by a
LayerNorm and a 512×512 projection for the contrastive (joint) embedding, a
causal text transformer (context 128 = 127 text tokens + an appended CLS
embedding, vocabulary 32007, width 768) projected to 512-d, and a captioning
decoder. The official ``pytorch_model.bin`` (hub repo ``MahmoodLab/CONCH``,
gated) names its tensors:

========================================  =========================================
``visual.trunk.*``                        timm ``VisionTransformer`` (``cls_token``,
                                          ``pos_embed``, ``patch_embed.proj``,
                                          ``blocks.N.{norm1,attn.qkv,attn.proj,
                                          norm2,mlp.fc1,mlp.fc2}``, ``norm``)
``visual.attn_pool_contrast.*``           attentional pooler (``query``, ``attn``
                                          with separate q/k/v projections,
                                          ``ln_q``, ``ln_k``), 1 query
``visual.ln_contrast.*``                  LayerNorm after the pooler
``visual.proj_contrast``                  (512, 512) projection to the joint space
``text.*``                                open_clip-style ``TextTransformer`` with
                                          ``cls_emb`` (``token_embedding``,
                                          ``positional_embedding`` (128, 768),
                                          ``transformer.resblocks.N.*``,
                                          ``ln_final``, ``text_projection``)
``logit_scale``                           scalar
``visual.attn_pool_caption.*``,           captioning only: not built here, listed in
``visual.ln_caption.*``, ``text_decoder.*``  the preset's ``weights.ignore_prefixes``
========================================  =========================================

The modules below reuse timm's ViT and open_clip's ``AttentionalPooler`` and
``TextTransformer`` under exactly these names, so loading is a strict
by-name match after dropping the ignored prefixes. open_clip's own ``CoCa``
class cannot hold these weights: its contrastive pooler has no LayerNorm
after it and its captioning pooler's width is tied to ``embed_dim``.

The text tower appends the CLS embedding after 127 tokens and, like the
original, masks padding with the CLS position counted first (open_clip's
``correct_cls_mask=False``), which leaves the pooled CLS output unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ConchVisual(nn.Module):
    """Image tower: ViT trunk → attentional pooling (1 query) → LayerNorm → optional projection."""

    def __init__(self, embed_dim: int, vision_cfg: dict[str, Any]):
        super().__init__()
        from open_clip.transformer import AttentionalPooler
        from timm.models.vision_transformer import VisionTransformer

        width = int(vision_cfg.get("width", 768))
        self.trunk = VisionTransformer(
            img_size=vision_cfg.get("image_size", 448),
            patch_size=vision_cfg.get("patch_size", 16),
            embed_dim=width,
            depth=vision_cfg.get("layers", 12),
            num_heads=vision_cfg.get("heads", 12),
            mlp_ratio=vision_cfg.get("mlp_ratio", 4.0),
            num_classes=0,
        )
        self.attn_pool_contrast = AttentionalPooler(
            d_model=embed_dim,
            context_dim=width,
            n_head=vision_cfg.get("attn_pooler_heads", 8),
            n_queries=vision_cfg.get("n_queries_contrast", 1),
        )
        self.ln_contrast = nn.LayerNorm(embed_dim)
        self.proj_contrast = nn.Parameter(width**-0.5 * torch.randn(embed_dim, embed_dim))

    def forward(self, images: torch.Tensor, project: bool = True) -> torch.Tensor:
        """(B, 3, H, W) normalised images → (B, embed_dim) pooled features (projected if ``project``)."""
        tokens = self.trunk.forward_features(images)
        pooled = self.ln_contrast(self.attn_pool_contrast(tokens)[:, 0])
        return pooled @ self.proj_contrast if project else pooled


class ConchModel(nn.Module):
    """CONCH's image and text towers (no captioning decoder)."""

    def __init__(self, embed_dim: int, vision_cfg: dict[str, Any], text_cfg: dict[str, Any]):
        super().__init__()
        from open_clip.model import CLIPTextCfg, _build_text_tower

        self.visual = ConchVisual(embed_dim, vision_cfg)
        positions = int(text_cfg.get("context_length", 128))
        self.text = _build_text_tower(
            embed_dim,
            CLIPTextCfg(
                context_length=positions - 1,  # the CLS embedding takes the last position
                vocab_size=text_cfg.get("vocab_size", 32007),
                width=text_cfg.get("width", 768),
                heads=text_cfg.get("heads", 12),
                layers=text_cfg.get("layers", 12),
                embed_cls=True,
                pad_id=text_cfg.get("pad_id", 0),
            ),
        )
        self.logit_scale = nn.Parameter(torch.ones([]) * 2.6592)

    @classmethod
    def from_json(cls, path: str | Path) -> ConchModel:
        """Build from a model-config JSON: ``embed_dim``, ``vision_cfg``, ``text_cfg`` (open_clip's layout)."""
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(cfg["embed_dim"], cfg.get("vision_cfg", {}), cfg.get("text_cfg", {}))

    def encode_image(
        self, images: torch.Tensor, normalize: bool = False, project: bool = True
    ) -> torch.Tensor:
        """(B, 3, H, W) → (B, D): the joint embedding (``project``) or the pooled pre-projection features."""
        features = self.visual(images, project=project)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(T, 127) token ids → (T, D) text embeddings."""
        features = self.text(tokens)
        return F.normalize(features, dim=-1) if normalize else features
