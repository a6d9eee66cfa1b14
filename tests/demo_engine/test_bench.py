"""The engine benchmark's summary: ratios against the peers, and no crash when a peer is missing or silent."""

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
