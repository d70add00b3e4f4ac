"""Systems metrics on closed forms: percentiles, validity, playback (offline, realtime and live models),
pre-buffer, control latency, and the summary's live (headline) and offline (throughput) columns."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from metrics.playback import (
    LIVE_NOT_MEASURED, control_latencies, min_prebuffer_s, min_start_delay_s, realtime_verdict, simulate_playback,
)
from metrics.systems import latency_percentiles, null_overhead, pairwise_ratios, percentile, rtf, summarize, x_realtime


def test_nearest_rank_percentiles_are_observed_samples():
    values = np.random.default_rng(0).permutation(np.arange(1, 101))  # 1..100, shuffled
    assert percentile(values, 50) == 50 and percentile(values, 90) == 90 and percentile(values, 99) == 99
    assert percentile(values, 100) == 100 and percentile([7.0], 99) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2  # smallest x with >= 50% of samples <= x
    assert np.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 0)


@pytest.mark.parametrize("q, need", [(90, 64), (99, 662)])
def test_validity_flags_follow_mlperf_minimums(q, need):
    assert not latency_percentiles(np.ones(need - 1), [q])[float(q)].valid
    est = latency_percentiles(np.ones(need), [q])[float(q)]
    assert est.valid and est.n == need and est.min_samples == need
    assert latency_percentiles(np.ones(3), [50])[50.0].valid


def test_rtf_and_x_realtime_are_inverses():
    assert rtf(2.0, 8.0) == 0.25 and x_realtime(2.0, 8.0) == 4.0
    with pytest.raises(ValueError):
        rtf(1.0, 0.0)


def test_offline_playback_faster_than_real_time_never_underruns():
    pb = simulate_playback([0.3] * 10, [1.0] * 10, prebuffer_s=1.0)
    assert pb.underruns == 0 and pb.total_stall_s == 0 and pb.realtime
    assert pb.playback_start_s == pytest.approx(0.3)
    np.testing.assert_allclose(pb.play_start_s, 0.3 + np.arange(10))  # continuous playback after f_0
    assert pb.end_s == pytest.approx(10.3)


def test_offline_playback_slower_than_real_time_stalls_by_the_deficit():
    d, a, n = 1.5, 1.0, 8
    pb = simulate_playback([d] * n, [a] * n, prebuffer_s=a)
    # Block k is ready at (k+1) d, needed at p_{k-1} + a = k d + a: every block after the first stalls d - a.
    assert pb.underruns == n - 1
    assert pb.total_stall_s == pytest.approx((n - 1) * (d - a))
    np.testing.assert_allclose(pb.play_start_s, d * (np.arange(n) + 1))
    assert realtime_verdict(pb.underruns) == "not real time (7 underruns)"


def test_prebuffer_delays_playback_until_enough_audio():
    pb = simulate_playback([0.5] * 6, [1.0] * 6, prebuffer_s=2.5)  # needs 3 blocks (A_2 = 3 >= 2.5)
    assert pb.playback_start_s == pytest.approx(1.5)
    huge = simulate_playback([0.5] * 3, [1.0] * 3, prebuffer_s=100.0)  # more than the stream: start at the end
    assert huge.playback_start_s == pytest.approx(1.5) and huge.underruns == 0


def test_start_offset_shifts_the_whole_timeline():
    a = simulate_playback([0.2, 0.4, 0.3], [1.0, 1.0, 1.0], 1.0)
    b = simulate_playback([0.2, 0.4, 0.3], [1.0, 1.0, 1.0], 1.0, start_s=0.25)
    np.testing.assert_allclose(b.gen_end_s, a.gen_end_s + 0.25)
    np.testing.assert_allclose(b.play_start_s, a.play_start_s + 0.25)


def _brute_force_min_prebuffer(d, a, scenario):  # noqa: ANN001
    cum = np.cumsum(a)
    for m in range(len(d)):
        if simulate_playback(d, a, cum[m], scenario).underruns == 0:
            return cum[m]
    raise AssertionError("unreachable")


@pytest.mark.parametrize("seed", range(6))
def test_min_prebuffer_closed_form_matches_simulation(seed):
    rng = np.random.default_rng(seed)
    n = 30
    d = rng.uniform(0.2, 1.6, n)  # sometimes slower than real time
    a = np.full(n, 1.0)
    best = min_prebuffer_s(d, a, "offline")
    assert best == pytest.approx(_brute_force_min_prebuffer(d, a, "offline"))
    assert simulate_playback(d, a, best).underruns == 0
    if best > a[0]:
        assert simulate_playback(d, a, best - a[0]).underruns > 0  # one block less is not enough
    # min start delay: starting exactly then plays without a stall; any earlier start stalls
    delay = min_start_delay_s(d, a)
    f = np.cumsum(d)
    needed = delay + np.concatenate([[0.0], np.cumsum(a)[:-1]])
    assert np.all(f <= needed + 1e-12) and np.any(np.isclose(f, needed))
    rt = min_prebuffer_s(d, a, "realtime")
    assert rt == pytest.approx(_brute_force_min_prebuffer(d, a, "realtime"))
    assert rt >= best - 1e-12  # pacing can only make it harder


def test_realtime_scenario_paces_generation_to_the_prebuffer():
    d, a = [0.25, 0.25, 0.25, 0.25], [1.0] * 4
    pb = simulate_playback(d, a, prebuffer_s=1.0, scenario="realtime")
    # P = f_0 = 0.25. Block 1 may start at once (1 s unplayed <= 1 s); block k >= 2 only when the playhead
    # reaches A_{k-1} - 1 = k - 1 s, i.e. at p_{k-1} = 0.25 + (k - 1).
    np.testing.assert_allclose(pb.gen_start_s, [0.0, 0.25, 1.25, 2.25])
    np.testing.assert_allclose(pb.play_start_s, [0.25, 1.25, 2.25, 3.25])
    assert pb.underruns == 0
    none = simulate_playback(d, a, prebuffer_s=0.0, scenario="realtime")
    # No look-ahead: block k starts only after block k-1 played out, so every later block stalls by d.
    assert none.underruns == 3 and none.total_stall_s == pytest.approx(0.75)


def test_control_latency_closed_form():
    d, a = [0.5, 0.5, 0.5, 0.5, 0.5], [1.0] * 5
    pb = simulate_playback(d, a, prebuffer_s=1.0)  # offline: s_k = 0.5 k, p_k = 0.5 + k
    (c,) = control_latencies(pb, [3])
    assert c.block_index == 3
    assert c.best_s == pytest.approx((0.5 + 3) - 1.5)  # p_3 - s_3
    assert c.worst_s == pytest.approx((0.5 + 3) - 1.0)  # p_3 - s_2
    rt = simulate_playback(d, a, prebuffer_s=1.0, scenario="realtime")  # paced: s_3 = p_2 = 2.5, p_3 = 3.5
    (c,) = control_latencies(rt, [3])
    assert c.best_s == pytest.approx(1.0) and c.worst_s == pytest.approx(3.5 - rt.gen_start_s[2])
    with pytest.raises(ValueError):
        control_latencies(pb, [0])


def test_bad_inputs_are_rejected_with_clear_errors():
    with pytest.raises(ValueError, match="equal-length"):
        simulate_playback([1.0], [1.0, 1.0], 0.0)
    with pytest.raises(ValueError, match="audio_s must be"):
        simulate_playback([1.0], [0.0], 0.0)
    with pytest.raises(ValueError, match="scenario"):
        simulate_playback([1.0], [1.0], 0.0, scenario="batch")
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="lookahead_s"):
            simulate_playback([1.0, 1.0], [1.0, 1.0], 0.0, scenario="live", lookahead_s=bad)


def _records(gen: str, latencies_ms: list[float], flops: float, prompts: list[int] | None = None,  # noqa: ANN202
             lookahead_s: float | None = 1.0):
    n = len(latencies_ms)
    prompts = prompts or [0] * n
    blocks = pd.DataFrame({
        "generator": gen, "workload": "w", "repeat": 0, "block_index": range(n),
        "latency_ns": [int(x * 1e6) for x in latencies_ms], "audio_s": 1.0, "prompt_index": prompts,
        "kv_cache_bytes": 10, "analytic_flops": flops,
    })
    streams = pd.DataFrame([{
        "generator": gen, "workload": "w", "repeat": 0, "scenario": "offline", "prebuffer_s": 1.0,
        "start_ns": 0, "peak_mem_bytes": 5, "peak_mem_kind": "x", "params": 3,
        **({} if lookahead_s is None else {"lookahead_s": lookahead_s}),
    }])
    flops_df = pd.DataFrame([
        {"generator": gen, "workload": "w", "block_kind": kind, "phase": "step", "measured_flops": flops * 1.1,
         "analytic_flops": flops, "audio_s": 1.0} for kind in ("first", "steady")
    ])
    return blocks, streams, flops_df


def test_summary_pairs_and_null_overhead():
    parts = [_records("a", [400, 200, 200, 200], 8e9, [0, 0, 1, 1]), _records("b", [100, 50, 50, 50], 1e9),
             _records("noise", [0.1] * 4, 0.0)]
    blocks, streams, flops = (pd.concat([p[i] for p in parts], ignore_index=True) for i in range(3))
    s = summarize(blocks, streams, flops, peak_flops_per_s=1e11).set_index("generator")
    a = s.loc["a"]
    assert a.ttfa_ms == pytest.approx(400) and a.p50_ms == 200 and not a.p90_valid
    assert a.rtf == pytest.approx(1.0 / 4.0) and a.x_realtime == pytest.approx(4.0)
    assert a.underruns == 0 and a.verdict == "real time" and a.offline_verdict == "real time"
    # offline: s_k = 0.4, 0.6, 0.8 (k >= 1), p_k = 0.4 + k; live (1 s look-ahead): s_2 waits for p_0 + 1 = 1.4
    assert a.prompt_changes == 1 and a.offline_control_latency_best_ms == pytest.approx((0.4 + 2) * 1e3 - 600)
    assert a.control_latency_best_ms == pytest.approx(1000) and a.control_latency_worst_ms == pytest.approx(2000)
    assert a.lookahead_s == 1.0
    assert a.steady_flop_ratio == pytest.approx(1.1) and a.measured_flops_per_audio_s == pytest.approx(8.8e9)
    assert a.analytic_flops_per_audio_s == pytest.approx(8e9) and a.first_analytic_flops == pytest.approx(8e9)
    assert a.achieved_flops_per_s == pytest.approx(32e9 / 1.0) and a.peak_fraction == pytest.approx(0.32)
    pairs = pairwise_ratios(s.reset_index())
    assert len(pairs) == 1  # the null generator (no FLOPs) is left out
    row = pairs.iloc[0]
    assert (row.a, row.b) == ("a", "b")
    assert row.latency_ratio == pytest.approx(4.0) and row.analytic_flop_ratio == pytest.approx(8.0)
    assert row.latency_over_flop_ratio == pytest.approx(0.5)
    over = null_overhead(s.reset_index(), null="noise", reference="a").iloc[0]
    assert over.null_median_ms == pytest.approx(0.1) and over.overhead_fraction == pytest.approx(0.1 / 200)
    assert np.isnan(over.per_phase_entry_us)  # no phased null generator in this run: not measured
    assert np.isnan(over.null_work_ms) and np.isnan(over.harness_ms)  # no phase table given: not split


def test_a_cell_with_its_own_node_peak_uses_it_and_the_others_the_runs():
    parts = [_records("a", [400, 200, 200, 200], 8e9), _records("b", [100, 50, 50, 50], 1e9)]
    blocks, streams, flops = (pd.concat([p[i] for p in parts], ignore_index=True) for i in range(3))
    s = summarize(blocks, streams, flops, peak_flops_per_s=1e11, cell_peaks={("a", "w"): 4e10}).set_index("generator")
    assert s.loc["a"].peak_flops_per_s == 4e10 and s.loc["a"].peak_fraction == pytest.approx(32e9 / 4e10)
    assert s.loc["b"].peak_flops_per_s == 1e11  # no entry of its own: the run's peak
    assert s.loc["b"].peak_fraction == pytest.approx(s.loc["b"].achieved_flops_per_s / 1e11)
    alone = summarize(blocks, streams, flops, cell_peaks={("a", "w"): 4e10}).set_index("generator")
    assert alone.loc["a"].peak_fraction == pytest.approx(0.8) and np.isnan(alone.loc["b"].peak_fraction)


def test_cost_per_phase_entry_from_the_phased_null_generator():
    summary = pd.DataFrame([{"workload": "w", "generator": g, "p50_ms": ms}
                            for g, ms in [("noise", 0.06), ("noise-phased", 0.83), ("lmm", 39.0)]])
    phases = pd.DataFrame([{"workload": "w", "generator": g, "phase": p, "block_kind": k, "calls": c, "median_ms": ms}
                           for g, p, k, c, ms in [("noise", "decode", "steady", 1, 0.045),
                                                  ("noise", "decode", "first", 1, 0.5),  # not a steady block
                                                  ("noise-phased", "encode", "steady", 1, 0.001),
                                                  ("noise-phased", "temporal", "steady", 25, 0.01),
                                                  ("noise-phased", "depth", "steady", 50, 0.02),
                                                  ("noise-phased", "decode", "steady", 1, 0.045)]])
    over = null_overhead(summary, phases, reference="lmm").iloc[0]
    assert over.extra_phase_entries == 76 and over.phased_null_median_ms == pytest.approx(0.83)
    assert over.per_phase_entry_us == pytest.approx(1000 * (0.83 - 0.06) / 76)
    # the null block: its own work inside its one steady phase, the harness around it
    assert over.null_work_ms == pytest.approx(0.045) and over.harness_ms == pytest.approx(0.06 - 0.045)
    assert over.harness_fraction == pytest.approx((0.06 - 0.045) / 39.0)


def test_pairs_cover_every_combination():
    rows = [{"generator": g, "workload": "w", "steady_analytic_flops": f, "steady_median_ms": t}
            for g, f, t in [("x", 1.0, 1.0), ("y", 2.0, 2.0), ("z", 4.0, 2.0)]]
    pairs = pairwise_ratios(pd.DataFrame(rows))
    assert {(r.a, r.b) for r in pairs.itertuples()} == set(itertools.combinations("xyz", 2))


# --------------------------------------------------------------------------------------------
# The live model: bounded look-ahead (docs/harness.md, worked example)

STALL_D = [0.25] * 4 + [3.0] + [0.25] * 3  # 1 s blocks in 0.25 s, block 4 stalls for three blocks' time


def test_live_model_worked_example_a_stall_underruns_live_but_not_offline():
    a = [1.0] * 8
    live = simulate_playback(STALL_D, a, prebuffer_s=1.0, scenario="live", lookahead_s=1.0)
    # s_k = max(f_{k-1}, time the playhead reaches A_{k-1} - 1): block k >= 2 waits for p_{k-1}.
    np.testing.assert_allclose(live.gen_start_s, [0, 0.25, 1.25, 2.25, 3.25, 6.25, 7.25, 8.25])
    np.testing.assert_allclose(live.play_start_s, [0.25, 1.25, 2.25, 3.25, 6.25, 7.25, 8.25, 9.25])
    assert live.underruns == 1 and live.total_stall_s == pytest.approx(2.0)  # f_4 = 6.25, due p_3 + 1 = 4.25
    np.testing.assert_allclose(live.stall_s, [0, 0, 0, 0, 2.0, 0, 0, 0])
    need = min_prebuffer_s(STALL_D, a, "live", lookahead_s=1.0)
    assert need == 3.0  # with 3 s buffered (H = 3) block 4 starts at p_0 + 1 = 1.75 and lands at 4.75, just in time
    assert realtime_verdict(live.underruns, need) == "not real time (1 underrun; needs a 3.00 s pre-buffer)"
    offline = simulate_playback(STALL_D, a, prebuffer_s=1.0)
    # offline: 4 blocks of lead (f_3 = 1.0) absorb the stall: f_4 = 4.0 <= p_4 = 4.25
    assert offline.underruns == 0 and realtime_verdict(offline.underruns) == "real time"
    np.testing.assert_allclose(offline.gen_start_s, [0, 0.25, 0.5, 0.75, 1.0, 4.0, 4.25, 4.5])


@pytest.mark.parametrize("blocks_ahead", [1, 2, 3])
def test_live_control_latency_is_bounded_while_offline_grows_with_the_lead(blocks_ahead):
    d, a, n = 0.25, 1.0, 24
    look = blocks_ahead * a
    changes = [8, 12, 16]  # after the lead is built (the first blocks are not paced yet)
    live = control_latencies(simulate_playback([d] * n, [a] * n, 1.0, "live", lookahead_s=look), changes)
    off = control_latencies(simulate_playback([d] * n, [a] * n, 1.0), changes)
    for c in live:  # paced: block k starts when the playhead is exactly `look` before A_{k-1}
        assert c.best_s == pytest.approx(look) and c.best_s <= look + d
        assert c.worst_s == pytest.approx(look + a)  # plus one block period between starts
    for c in off:  # offline: s_k = k d, p_k = d + k a, so p_k - s_k = d + k (a - d): grows with the lead
        assert c.best_s == pytest.approx(d + c.block_index * (a - d))
        assert c.worst_s == pytest.approx(d + c.block_index * a - (c.block_index - 1) * d)
    assert off[-1].best_s > 10 * live[-1].best_s / blocks_ahead


def _played_s(pb, a, t):  # noqa: ANN001, ANN202
    """Audio seconds played by time t."""
    return float(np.clip(t - pb.play_start_s, 0.0, np.asarray(a)).sum())


@pytest.mark.parametrize("seed", range(5))
def test_live_generator_never_starts_a_block_more_than_the_lookahead_ahead(seed):
    rng = np.random.default_rng(seed)
    n = 40
    d, a = rng.uniform(0.1, 1.5, n), rng.choice([0.5, 1.0], n)
    for look, pre in ((1.0, 1.0), (2.0, 0.5), (0.4, 0.0)):
        pb = simulate_playback(d, a, pre, "live", lookahead_s=look)
        horizon = max(look, pre)
        cum = np.cumsum(a)
        for k in range(1, n):
            unplayed = cum[k - 1] - _played_s(pb, a, pb.gen_start_s[k])
            assert unplayed <= horizon + 1e-9, (k, unplayed)
            # and it never idles without reason: it started as soon as block k-1 ended or exactly at the bound
            assert (np.isclose(pb.gen_start_s[k], pb.gen_end_s[k - 1])
                    or np.isclose(unplayed, horizon)), k


@pytest.mark.parametrize("seed", range(4))
def test_live_generalises_realtime_and_offline(seed):
    rng = np.random.default_rng(seed)
    d, a = rng.uniform(0.1, 1.5, 30), np.full(30, 1.0)
    for pre in (1.0, 2.0, 3.0):  # look-ahead = pre-buffer: exactly the realtime scenario's pacing
        rt = simulate_playback(d, a, pre, "realtime")
        live = simulate_playback(d, a, pre, "live", lookahead_s=pre)
        np.testing.assert_allclose(live.gen_start_s, rt.gen_start_s)
        np.testing.assert_allclose(live.play_start_s, rt.play_start_s)
        assert min_prebuffer_s(d, a, "live", lookahead_s=1.0) == min_prebuffer_s(d, a, "realtime")
    # a look-ahead longer than the stream never binds: the offline schedule
    off, unbounded = simulate_playback(d, a, 1.0), simulate_playback(d, a, 1.0, "live", lookahead_s=1e6)
    np.testing.assert_allclose(unbounded.gen_start_s, off.gen_start_s)
    assert unbounded.underruns == off.underruns
    # pacing can only delay generation: the live view never needs less pre-buffer than the offline one
    assert min_prebuffer_s(d, a, "live", lookahead_s=1.0) >= min_prebuffer_s(d, a, "offline")


def test_live_lookahead_shorter_than_a_block_is_the_compute_budget():
    a = [1.0] * 5
    fast = simulate_playback([0.4] * 5, a, 0.0, "live", lookahead_s=0.5)
    # playback at f_0 = 0.4; block k >= 1 starts when 0.5 s of block k-1 is left: s_k = p_{k-1} + 0.5
    np.testing.assert_allclose(fast.gen_start_s[1:], fast.play_start_s[:-1] + 0.5)
    assert fast.underruns == 0
    slow = simulate_playback([0.6] * 5, a, 0.0, "live", lookahead_s=0.5)
    assert slow.underruns == 4 and slow.total_stall_s == pytest.approx(4 * 0.1)  # 0.1 s over the budget each


def test_summary_headline_is_live_and_offline_is_named():
    blocks, streams, flops = _records("g", [250] * 4 + [3000] + [250] * 3, 1e9, [0] * 6 + [1] * 2)
    s = summarize(blocks, streams, flops).iloc[0]
    assert s.verdict == "not real time (1 underrun; needs a 3.00 s pre-buffer)" and s.underruns == 1
    assert s.stall_s == pytest.approx(2.0) and s.min_prebuffer_s == 3.0
    assert s.offline_verdict == "real time" and s.offline_underruns == 0 and s.offline_stall_s == 0
    assert s.offline_min_prebuffer_s == 1.0
    assert s.control_latency_best_ms == pytest.approx(1000) and s.control_latency_worst_ms == pytest.approx(2000)
    assert s.offline_control_latency_best_ms == pytest.approx(1e3 * (6.25 - 4.25))  # p_6 - s_6 offline
    assert s.offline_control_latency_worst_ms == pytest.approx(1e3 * (6.25 - 4.0))


def test_summary_of_streams_without_a_lookahead_reads_live_as_not_measured():
    blocks, streams, flops = _records("old", [250] * 4 + [3000] + [250] * 3, 1e9, lookahead_s=None)
    s = summarize(blocks, streams, flops).iloc[0]
    assert s.verdict == LIVE_NOT_MEASURED and s.verdict.startswith("not measured")
    for key in ("lookahead_s", "underruns", "stall_s", "min_prebuffer_s", "control_latency_worst_ms"):
        assert np.isnan(s[key]), key
    assert s.offline_verdict == "real time" and s.offline_underruns == 0  # the offline view is still computed
