"""The engine benchmark's summary: ratios against the peers, and no crash when a peer is missing or silent."""

import pytest

from demo_engine import bench

OURS = {"decode_tok_s_batch1": 100.0, "aggregate_tok_s_1": 90.0, "aggregate_tok_s_8": 400.0,
        "aggregate_tok_s_16": 540.0, "threads": 2}  # fmt: skip


def test_ratios_compare_ours_with_each_peer_in_the_same_run():
    """Batch 1 against llama.cpp and transformers, 8 and 16 concurrent against transformers' batch 8, 16 against 1."""
    llama = {"decode_tok_s_batch1": 125.0, "decode_tok_s_batch1_c_side": 200.0}
    transformers = {"decode_tok_s_batch1": 20.0, "decode_tok_s_batch8": 100.0}
    summary = bench.summarize(OURS, {"cold_start_to_first_token_s": 2.5}, transformers, llama)
    assert summary["ratio_batch1_vs_llama_cpp"] == 0.8 and summary["ratio_batch1_vs_llama_cpp_c_side"] == 0.5
    assert summary["ratio_batch1_vs_transformers"] == 5.0
    assert summary["ratio_8_concurrent_vs_transformers_batch8"] == 4.0
    assert summary["ratio_16_concurrent_vs_own_batch1"] == 6.0
    assert summary["engine_threads"] == 2 and summary["llama_cpp_decode_tok_s_batch1"] == 125.0


def test_a_missing_or_silent_peer_leaves_its_ratio_empty():
    """A peer that is not installed, failed, or generated nothing gives no ratio, never a ZeroDivisionError."""
    summary = bench.summarize(OURS, {}, {"error": "no transformers"}, {"decode_tok_s_batch1": 0.0})
    assert summary["ratio_batch1_vs_llama_cpp"] is None
    assert summary["ratio_batch1_vs_transformers"] is None
    assert summary["transformers_error"] == "no transformers"


def test_gpu_targets_say_whether_each_is_met():
    """The GPU table's targets: batch-1 decode against 1,500 tok/s and against 3x the bf16 PyTorch baseline, each
    with its value and verdict; every batch gets its speedup over the baseline."""
    rows = [
        {"engine": "triton", "batch": 1, "decode_tok_s": 1600.0, "aggregate_tok_s": 1500.0},
        {"engine": "bf16_torch", "batch": 1, "decode_tok_s": 800.0, "aggregate_tok_s": 700.0},
        {"engine": "triton", "batch": 8, "decode_tok_s": 1000.0, "aggregate_tok_s": 8000.0},
        {"engine": "bf16_torch", "batch": 8, "decode_tok_s": 500.0, "aggregate_tok_s": 4000.0},
    ]
    targets = {t["name"]: t for t in bench.cuda_targets(rows)}
    assert targets["batch-1 decode tok/s"]["met"] is True
    assert targets["batch-1 decode vs bf16 PyTorch"]["value"] == 2.0
    assert targets["batch-1 decode vs bf16 PyTorch"]["met"] is False
    assert rows[2]["aggregate_vs_bf16_torch"] == 2.0


def test_gpu_table_without_cuda_exits_with_its_own_status(capsys):
    """`python -m demo_engine.bench --cuda --json` on a machine without CUDA exits 2 and says why."""
    import json

    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the answer a machine without CUDA gets")
    assert bench.main(["--cuda", "--json"]) == bench.NO_CUDA == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert "No CUDA device" in lines[0] and json.loads(lines[-1]) == {"cuda": False}


@pytest.mark.slow
def test_the_gpu_table_code_runs_end_to_end_on_the_cpu_engine():
    """The GPU table's code (three engines loaded one after the other, the bf16 baseline under PyTorch's ops, the
    graphs switched off and restored, every request checked) runs on the CPU engine, so its first GPU run fails only
    on what is GPU-specific."""
    import os

    before = os.environ.get("ENGINE_CUDA_GRAPHS")
    rows = bench.cuda_engine_rows(new_tokens=3, runs=1, device="cpu", batches=(1,))
    assert [row["engine"] for row in rows] == ["triton", "bf16_torch", "triton_no_graphs"]
    assert all(row["aggregate_tok_s"] > 0 and row["decode_tok_s"] > 0 for row in rows)
    assert rows[1]["backend_label"] == "CPU · bf16 dense PyTorch"
    assert rows[0]["backend_label"].startswith(("CPU · q4_1×q16 ", "CPU · int4 bf16"))  # the CPU's default path
    assert [t["name"] for t in bench.cuda_targets(rows)] == ["batch-1 decode tok/s", "batch-1 decode vs bf16 PyTorch"]
    assert os.environ.get("ENGINE_CUDA_GRAPHS") == before


def test_variants_are_prefixed_and_compared_with_the_default():
    """PyTorch's int4 kernel and the AVX2-only pair appear under their prefixes, with the default's ratio against the
    former and the native AVX2 build's against PyTorch's kernel held to AVX2."""
    variants = {
        "torch": {"decode_tok_s_batch1": 80.0, "aggregate_tok_s_16": 450.0},
        "avx2": {"decode_tok_s_batch1": 90.0, "aggregate_tok_s_16": 400.0},
        "torch_avx2": {"decode_tok_s_batch1": 60.0, "aggregate_tok_s_16": 500.0},
    }
    summary = bench.summarize(OURS, {}, {}, {}, variants)
    assert summary["torch_decode_tok_s_batch1"] == 80.0 and summary["torch_avx2_aggregate_tok_s_16"] == 500.0
    assert summary["ratio_batch1_vs_torch_int4"] == 1.25 and summary["ratio_16_concurrent_vs_torch_int4"] == 1.2
    assert summary["avx2_ratio_batch1_vs_torch_avx2"] == 1.5
    assert summary["avx2_ratio_16_concurrent_vs_torch_avx2"] == 0.8


def test_the_batch1_duel_alternates_who_goes_first_and_compares_like_with_like():
    """Ours and llama.cpp are timed one after the other, the order swapped every round, so a slow or fast minute of a
    shared machine falls on both; the ratio is of the bests, and the median pair's ratio is given beside it."""
    calls = []
    speed = iter([100.0, 50.0, 60.0, 150.0, 110.0, 55.0])

    def decode(name):
        calls.append(name)
        return next(speed)

    rates = bench.duel_rounds(("ours", "llama_cpp"), 3, decode)
    assert calls == ["ours", "llama_cpp", "llama_cpp", "ours", "ours", "llama_cpp"]
    assert rates == {"ours": [100.0, 150.0, 110.0], "llama_cpp": [50.0, 60.0, 55.0]}
    figures = bench.duel_figures(rates)
    assert figures["ratio_batch1_vs_llama_cpp_interleaved"] == 2.5  # 150 / 60
    assert figures["ratio_batch1_vs_llama_cpp_interleaved_median_pair"] == 2.0  # of 2.0, 2.5, 2.0
    assert figures["duel_llama_cpp_decode_tok_s_batch1"] == 60.0
    assert bench.duel_figures({"ours": [], "llama_cpp": []})["ratio_batch1_vs_llama_cpp_interleaved"] is None


def test_aggregates_are_rounds_of_every_level_in_turn_and_the_best_round_counts():
    """Each round runs 1, 4, 8 and 16 concurrent in turn (a slow minute hits every level); the best round of each
    level counts, and the median of the rounds' own 16-over-1 ratios differs from the ratio of the bests."""
    calls, rates = [], iter([100, 200, 300, 400, 50, 150, 250, 450, 80, 160, 240, 240])

    def aggregate(concurrency):
        calls.append(concurrency)
        return float(next(rates))

    figures = bench.aggregate_rounds(aggregate, runs=3)
    assert calls == [1, 4, 8, 16] * 3
    assert figures["aggregate_tok_s_1"] == 100.0 and figures["aggregate_tok_s_16"] == 450.0
    assert figures["aggregate_tok_s_16_runs"] == [400.0, 450.0, 240.0]
    assert figures["ratio_16_over_1_median_round"] == 4.0  # rounds: 4.0, 9.0, 3.0
    summary = bench.summarize(figures | {"decode_tok_s_batch1": 100.0, "threads": 2}, {}, {}, {})
    assert summary["ratio_16_concurrent_vs_own_batch1"] == 4.5
    assert summary["ratio_16_concurrent_vs_own_batch1_median_round"] == 4.0
    assert "ratio_16_over_1_median_round" not in summary  # printed once, under the summary's name
