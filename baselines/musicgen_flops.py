"""Analytic FLOPs of the ``musicgen`` generator's phases, counted the way the harness's
``FlopCounterMode`` counts them (``bench.app.flops``): ``2 m n k`` per matmul (biases, norms,
activations, embeddings and softmax not counted), attention dense over the keys present (masked
keys included), convolutions ``2 * outputs * c_in * c_out * kernel`` (transposed: per input
position), LSTM layers ``2 * steps * (numel W_ih + numel W_hh)``.

Every function takes shapes only (configs, counts), except :func:`encodec_decode_flops`, which
walks the EnCodec decoder's modules so that it follows any checkpoint's SEANet layout.
"""

from __future__ import annotations

from typing import Any


def linear_flops(rows: int, d_in: int, d_out: int) -> float:
    """``rows`` vectors through a ``d_in x d_out`` matrix."""
    return 2.0 * rows * d_in * d_out


def attention_flops(batch: int, queries: int, keys: int, width: int) -> float:
    """QK^T and AV over all heads (``width`` = heads x head dim), dense."""
    return 4.0 * batch * queries * keys * width


def decoder_layers_flops(cfg: Any, batch: int, queries: int, keys: int, text_tokens: int) -> float:
    """MusicGen decoder layers (all of them) for ``queries`` new slots attending ``keys`` self keys
    and ``text_tokens`` cross keys whose K/V are precomputed; ``cfg`` a MusicgenDecoderConfig."""
    d, ffn, rows = cfg.hidden_size, cfg.ffn_dim, batch * queries
    self_attn = 4 * linear_flops(rows, d, d) + attention_flops(batch, queries, keys, d)
    cross_attn = 2 * linear_flops(rows, d, d) + attention_flops(batch, queries, text_tokens, d)
    mlp = linear_flops(rows, d, ffn) + linear_flops(rows, ffn, d)
    return cfg.num_hidden_layers * (self_attn + cross_attn + mlp)


def heads_flops(cfg: Any, batch: int) -> float:
    """One position's logits: ``K`` heads of ``d x V``."""
    return cfg.num_codebooks * linear_flops(batch, cfg.hidden_size, cfg.vocab_size)


def t5_encoder_flops(cfg: Any, tokens: int) -> float:
    """T5 encoder (one prompt of ``tokens`` ids): q/k/v/o projections, dense attention, ReLU or
    gated FF; ``cfg`` a T5Config."""
    d, inner, rows = cfg.d_model, cfg.num_heads * cfg.d_kv, tokens
    attn = 4 * linear_flops(rows, d, inner) + attention_flops(1, tokens, tokens, inner)
    ff_in = 2 if getattr(cfg, "is_gated_act", False) else 1  # gated FF: wi_0 and wi_1
    ff = ff_in * linear_flops(rows, d, cfg.d_ff) + linear_flops(rows, cfg.d_ff, d)
    return cfg.num_layers * (attn + ff)


def text_conditioning_flops(model_cfg: Any, tokens: int, batch: int) -> float:
    """The ``encode`` phase: T5 encoder, the text -> decoder projection (when widths differ), and
    every decoder layer's cross-attention K and V of the ``batch`` rows' text states."""
    text, dec = model_cfg.text_encoder, model_cfg.decoder
    flops = t5_encoder_flops(text, tokens)
    if text.d_model != dec.hidden_size and dec.cross_attention_hidden_size is None:
        flops += linear_flops(tokens, text.d_model, dec.hidden_size)
    return flops + dec.num_hidden_layers * 2 * linear_flops(batch * tokens, dec.hidden_size, dec.hidden_size)


def encodec_decode_flops(decoder: Any, frames: int) -> float:
    """transformers' ``EncodecDecoder`` on ``frames`` latent frames (batch 1): convolutions (all
    stride 1, length-preserving), transposed convolutions (length x stride) and the LSTM."""
    length, flops = frames, 0.0

    def conv(module: Any) -> float:  # EncodecConv1d: stride-1 convs keep the length
        out_ch, in_ch, kernel = module.conv.weight.shape
        return 2.0 * length * out_ch * in_ch * kernel

    for layer in decoder.layers:
        kind = type(layer).__name__
        if kind == "EncodecConv1d":
            flops += conv(layer)
        elif kind == "EncodecConvTranspose1d":
            in_ch, out_ch, kernel = layer.conv.weight.shape
            flops += 2.0 * length * in_ch * out_ch * kernel  # counted per input position
            length *= layer.conv.stride[0]
        elif kind == "EncodecLSTM":
            lstm = layer.lstm
            for index in range(lstm.num_layers):
                w_ih, w_hh = getattr(lstm, f"weight_ih_l{index}"), getattr(lstm, f"weight_hh_l{index}")
                flops += 2.0 * length * (w_ih.numel() + w_hh.numel())
        elif kind == "EncodecResnetBlock":
            flops += sum(conv(m) for m in layer.block if type(m).__name__ == "EncodecConv1d")
            if type(layer.shortcut).__name__ == "EncodecConv1d":
                flops += conv(layer.shortcut)
    return flops
