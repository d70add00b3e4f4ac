"""Prompt conditioning through a real T5 encoder read from a local directory (``dit.text_encoder``).

Stable Audio Open (and the LMDM checkpoints fine-tuned from it) read T5-base's last hidden states
of the prompt (64 tokens, padded, padding rows zeroed) through cross-attention. Given a directory
saved by ``transformers`` (``T5EncoderModel`` or a full T5 with its tokenizer files), the diffusion
regimes use those states instead of the offline hashing featuriser (baselines/conditioning.py):
``cond_tokens - 1`` T5 rows, then the pooled token (the mean over the prompt's real tokens), in
the same layout as the featuriser. The empty prompt (the CFG negative) is all zeros, as
stable-audio-tools' classifier-free guidance uses a zero null embedding. Never downloads: the
directory is opened with ``local_files_only=True``.

Not reproduced: Stable Audio's ``seconds_total`` number conditioner (its learned embedding lives in
the checkpoint's conditioner, which the suite does not load); the pooled token stands in its place.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from bench.core.errors import ConfigError

log = logging.getLogger(__name__)


class T5PromptEncoder:
    """Prompt -> (n_tokens, dim) float32 conditioning rows from a local T5 directory."""

    def __init__(self, directory: str, n_tokens: int, dim: int, device: torch.device | str = "cpu") -> None:
        path = Path(directory).expanduser()
        if not path.is_dir():
            raise ConfigError(f"dit.text_encoder: {directory!r} is not a directory; give a T5 encoder saved with "
                              "transformers' save_pretrained (model + tokenizer), or '' for the offline featuriser")
        try:
            from transformers import AutoTokenizer, T5EncoderModel  # heavy: imported only when asked for

            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = T5EncoderModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        except Exception as exc:  # noqa: BLE001 - whatever transformers raises, the directory is the problem
            raise ConfigError(f"dit.text_encoder: cannot load a T5 encoder and tokenizer from {directory!r} ({exc}); "
                              "save both there with save_pretrained, or set dit.text_encoder='' ") from exc
        width = int(self.model.config.d_model)
        if width != dim:
            raise ConfigError(f"dit.text_encoder: {directory!r} gives {width}-d states but the DiT reads "
                              f"{dim}-d conditioning tokens (dit.cond_dim, or cond_token_dim of dit.config)")
        if n_tokens < 2:
            raise ConfigError("dit.cond_tokens must be >= 2 with a text encoder (T5 rows + the pooled token)")
        self.n_tokens, self.dim, self.device = n_tokens, dim, torch.device(device)
        self.source = str(path)

    @torch.no_grad()
    def __call__(self, prompt: str) -> torch.Tensor:
        """(n_tokens, dim) float32 rows for ``prompt`` (zeros for the empty prompt)."""
        out = torch.zeros(self.n_tokens, self.dim)
        if not prompt.strip():
            return out
        batch = self.tokenizer([prompt], max_length=self.n_tokens - 1, padding="max_length", truncation=True,
                               return_tensors="pt")
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        states = self.model(input_ids=ids, attention_mask=mask).last_hidden_state[0].float().cpu()  # (n-1, dim)
        keep = mask[0].cpu().float()[:, None]
        out[:-1] = states * keep  # padding rows zeroed, as stable-audio-tools' T5 conditioner does
        out[-1] = (states * keep).sum(0) / keep.sum().clamp(min=1.0)
        return out


__all__ = ["T5PromptEncoder"]
