import torch
import torch.nn.functional as F
from torch.utils import flop_counter

from bench.app.flops import FlopRecorder, count_flops


def test_cpu_attention_is_counted_dense_with_and_without_mask():
    q, k, v = torch.randn(1, 4, 50, 32), torch.randn(1, 4, 80, 32), torch.randn(1, 4, 80, 32)
    expected = 2 * (2 * 4 * 50 * 80 * 32)  # QK^T and AV
    mask = torch.rand(50, 80) > 0.3
    assert count_flops(F.scaled_dot_product_attention, q, k, v) == expected
    assert count_flops(F.scaled_dot_product_attention, q, k, v, attn_mask=mask) == expected


def test_counting_leaves_torch_registry_untouched():
    before = dict(flop_counter.flop_registry)
    count_flops(torch.mm, torch.randn(3, 4), torch.randn(4, 5))
    assert flop_counter.flop_registry == before


def test_recorder_accumulates_per_phase():
    rec = FlopRecorder()
    a = torch.randn(8, 16)
    for _ in range(3):
        with rec.phase("depth"):
            a @ a.T
    with rec.phase("decode"):
        a @ torch.randn(16, 2)
    assert rec.flops["depth"] == 3 * 2 * 8 * 16 * 8
    assert rec.calls["depth"] == 3 and rec.calls["decode"] == 1
    assert rec.total() == rec.flops["depth"] + 2 * 8 * 16 * 2


def test_lstm_layers_are_counted_as_their_weight_matmuls():
    # (steps, batch, input) through 2 layers of hidden 12: layer 0 maps 8 -> 4*12 and 12 -> 4*12, layer 1 12 -> 4*12 twice
    lstm = torch.nn.LSTM(8, 12, num_layers=2)
    x = torch.randn(5, 3, 8)
    per_step = (4 * 12 * 8 + 4 * 12 * 12) + (4 * 12 * 12 + 4 * 12 * 12)
    with torch.no_grad():
        assert count_flops(lstm, x) == 2 * 5 * 3 * per_step
    batch_first = torch.nn.LSTM(8, 12, num_layers=1, batch_first=True)
    with torch.no_grad():
        assert count_flops(batch_first, torch.randn(3, 5, 8)) == 2 * 5 * 3 * (4 * 12 * 8 + 4 * 12 * 12)
