"""The comparison's maths, with exact values from the demo content's sources."""

from decimal import Decimal

import pytest

from showcase.live import selectors


def test_cost_is_hours_times_price():
    """2.788M H800-hours at $2 an hour cost exactly $5,576,000, the DeepSeek-V3 report's own figure."""
    settings = selectors.CostSettings(hourly_price_usd=Decimal("2.00"), utilisation_percent=40)
    comparison = selectors.SystemComparison(
        system=None, hardware=None, rows={}, highlighted=False, cost=None, cost_per_zettaflop=None,
        implied_utilisation=None, chip_hours=Decimal(2_788_000), chip_hours_at_full_utilisation=None,
    )  # fmt: skip
    selectors.cost_at_price_apply(comparison=comparison, cost_settings=settings)
    assert comparison.cost_at_price == Decimal("5576000.00")
    assert comparison.cost_basis == "gpu_hours"


def test_chip_hours_from_compute_divide_by_utilisation():
    """Without GPU-hours, chip-hours are compute ÷ (peak × utilisation) ÷ 3600: 3.6e21 FLOP on a 1,000 TFLOP/s chip at
    50 % is exactly 2 hours."""
    hours = selectors.chip_hours_from_compute(training_compute_flop=3.6e21, peak_tflops=Decimal(1000),
                                              utilisation=Decimal("0.5"))  # fmt: skip
    assert hours == Decimal(2000)
    with pytest.raises(ValueError):
        selectors.chip_hours_from_compute(training_compute_flop=1e20, peak_tflops=Decimal(0), utilisation=Decimal(1))


def test_ratio_of_gpu_hours():
    """Llama 3.1 405B's 30.84M GPU-hours are 11.06× DeepSeek-V3's 2.788M; unknown or zero figures give no ratio."""
    value = selectors.ratio(numerator=30_840_000, denominator=2_788_000)
    assert value == Decimal(30_840_000) / Decimal(2_788_000)
    assert round(value, 2) == Decimal("11.06")
    assert selectors.ratio(numerator=None, denominator=5) is None
    assert selectors.ratio(numerator=5, denominator=0) is None


def test_range_ratio_spans_the_extremes():
    """A range over a range goes from low ÷ high to high ÷ low: $80–100M over $5–6M is 13.33× to 20×."""
    low, high = selectors.range_ratio(numerator=(Decimal(80), Decimal(100)), denominator=(Decimal(5), Decimal(6)))
    assert (round(low, 2), high) == (Decimal("13.33"), Decimal(20))


def test_cost_per_zettaflop_and_implied_utilisation():
    """DeepSeek-V3: $5.576M over 3.3e24 FLOP is $1,689.70 per 10²¹ FLOP; 3.3e24 FLOP in 2.788M hours of a 989 TFLOP/s
    chip is 33.2 % of its peak."""
    cost = (Decimal(5_576_000), Decimal(5_576_000))
    low, high = selectors.cost_per_zettaflop(cost=cost, training_compute_flop=3.3e24)
    assert low == high and round(low, 2) == Decimal("1689.70")
    used = selectors.implied_utilisation(training_compute_flop=3.3e24, gpu_hours=2_788_000, peak_tflops=Decimal(989))
    assert round(used, 4) == Decimal("0.3324")


def test_serving_cost_per_million_tokens():
    """At $0.10 an hour and 50 tokens/s (180,000 tokens an hour) a million tokens cost $0.5556; idle has no cost."""
    cost = selectors.serving_cost_per_million_tokens(hourly_price_usd=Decimal("0.10"), tokens_per_second=50.0)
    assert round(cost, 4) == Decimal("0.5556")
    two = selectors.serving_cost_per_million_tokens(hourly_price_usd=Decimal("0.10"), tokens_per_second=50.0,
                                                    machines=2)  # fmt: skip
    assert two == cost * 2
    assert selectors.serving_cost_per_million_tokens(hourly_price_usd=Decimal("0.10"), tokens_per_second=0) is None


def test_demo_figures_add_up_the_workers():
    """The panel's figures are the sum over live workers, with the Celery queue's depth and the backends named."""
    workers = [
        {"worker": "a", "engine_loaded": True, "tokens_per_s": 30.0, "in_flight": 2, "queued": 1,
         "backend": "CPU · int4 bf16"},
        {"worker": "b", "engine_loaded": True, "tokens_per_s": 20.0, "in_flight": 1, "queued": 0,
         "backend": "CPU · int4 bf16"},
    ]  # fmt: skip
    figures = selectors.demo_figures_combine(workers=workers, queue_depth=3, hourly_price_usd=Decimal("0.10"),
                                             measured_at=1.0)  # fmt: skip
    assert figures["tokens_per_s"] == 50.0
    assert (figures["in_flight"], figures["queued_in_engine"], figures["queue_depth"]) == (3, 1, 3)
    assert figures["backend"] == "CPU · int4 bf16"
    assert figures["cost_per_million_tokens_usd"] == pytest.approx(2 * 0.10 * 1e6 / (50 * 3600))


def test_cost_settings_from_the_url():
    """The calculator's URL settings are read back; nonsense falls back to defaults, a chip sets its own price."""
    from showcase.exhibits.models import Hardware

    h800 = Hardware(slug="h800", hourly_price_usd=Decimal("2.00"))
    read = selectors.cost_settings_from_query(query={"price": "3.456", "util": "55"}, hardware=[h800],
                                              default_price=Decimal("2"))  # fmt: skip
    assert (read.hourly_price_usd, read.utilisation_percent) == (Decimal("3.46"), 55)
    bad = selectors.cost_settings_from_query(query={"price": "NaN", "util": "400"}, hardware=[h800],
                                             default_price=Decimal("2"))  # fmt: skip
    assert (bad.hourly_price_usd, bad.utilisation_percent) == (Decimal("2"), 40)
    chip = selectors.cost_settings_from_query(query={"hw": "h800"}, hardware=[h800], default_price=Decimal("9"))
    assert (chip.hourly_price_usd, chip.hardware_slug) == (Decimal("2.00"), "h800")


def test_comparison_page_on_demo_content(demo_content, django_assert_max_num_queries):
    """The page compares every published system: DeepSeek highlighted, the default pair's ratios exact, the claim
    set against the sourced figures and against the systems trained with at least as much compute."""
    with django_assert_max_num_queries(6):
        page = selectors.comparison_page(query={})
    by_slug = {item.slug: item for item in page.systems}
    assert len(page.systems) == 10
    assert {item.slug for item in page.systems if item.highlighted} == {"deepseek-v3", "deepseek-r1"}
    assert page.settings.hourly_price_usd == Decimal("2.00")
    assert by_slug["deepseek-v3"].cost_at_price == Decimal("5576000.00")
    assert by_slug["llama-3-1-405b"].cost_at_price == Decimal("61680000.00")
    assert by_slug["gpt-4"].cost_basis == "compute"
    ratios = {row.key: row.ratio for row in page.head_to_head.rows}
    assert round(ratios["gpu_hours"][0], 2) == Decimal("11.06")
    assert ratios["chips"] == (Decimal(8), Decimal(8))
    assert round(ratios["training_cost"][0], 2) == Decimal("30.49")  # as reported: flagged, see the next tests
    (claim,) = page.claims
    assert {rival.slug for rival in claim.rivals} == {"llama-3-1-405b", "gpt-4", "gemini-1-0-ultra"}
    assert claim.rivals_cost == (Decimal(78_000_000), Decimal(191_000_000))
    assert claim.rivals_chips == (16384, 25000)
    assert round(claim.claimed_over_sourced_cost, 3) == Decimal("1.076")


def test_drafts_stay_out_of_the_comparison(demo_content):
    """A system returned to draft leaves the comparison, and a pair naming it falls back to the default."""
    from showcase.exhibits.models import AISystem, Status

    AISystem.objects.filter(slug="gpt-4").update(status=Status.DRAFT)
    page = selectors.comparison_page(query={"a": "gpt-4", "b": "gpt-3"})
    assert "gpt-4" not in {item.slug for item in page.systems}
    assert page.pair == ("deepseek-v3", "gpt-3")


def _h2h_rows(query: dict) -> dict[str, selectors.RatioRow]:
    page = selectors.comparison_page(query=query)
    return {row.key: row for row in page.head_to_head.rows}


def test_default_head_to_head_prices_both_systems_at_one_basis(demo_content):
    """At $2 per chip-hour for both, Llama 3.1 405B cost 11.06× DeepSeek-V3 (as its GPU-hours), and 0.96× per unit
    of compute; only the reported costs' 30.49× is flagged as comparing different bases."""
    rows = _h2h_rows({})
    cost = rows["cost_at_price"]
    assert (cost.a_value, cost.b_value) == (Decimal("5576000.00"), Decimal("61680000.00"))
    assert cost.ratio[0] == cost.ratio[1] == Decimal(30_840_000) / Decimal(2_788_000)
    assert round(cost.ratio[0], 2) == Decimal("11.06") and cost.verdict == selectors.Verdict.LIKE
    per_compute = rows["cost_per_zettaflop_at_price"]
    assert round(per_compute.ratio[0], 2) == Decimal("0.96") and per_compute.verdict == selectors.Verdict.LIKE
    reported = rows["training_cost"]
    assert round(reported.ratio[0], 2) == Decimal("30.49")
    assert reported.verdict == selectors.Verdict.BASES_DIFFER
    assert (reported.a_basis, reported.b_basis) == (
        "DeepSeek's own GPU-hours × $2 per H800-hour",
        "Epoch AI, cloud rates",
    )
    assert all(row.like_with_like for key, row in rows.items() if key in ("gpu_hours", "chips", "parameters_active"))


def test_a_mixture_of_experts_is_compared_by_its_active_parameters(demo_content):
    """405B dense against 671B total is 0.60×, flagged; against the 37B active per token it is 10.95×."""
    rows = _h2h_rows({})
    assert round(rows["parameters"].ratio[0], 2) == Decimal("0.60")
    assert rows["parameters"].verdict == selectors.Verdict.TOTAL_VS_DENSE
    assert rows["parameters_active"].ratio[0] == Decimal(405) / Decimal(37)
    assert round(rows["parameters_active"].ratio[0], 2) == Decimal("10.95")
    assert "parameters_active" not in _h2h_rows({"a": "gpt-3", "b": "llama-3-1-405b"})  # two dense models


def test_two_reported_costs_on_the_same_basis_compare_like_with_like(demo_content):
    """GPT-4 and Gemini 1.0 Ultra were both priced by the AI Index: their reported costs compare without a flag."""
    rows = _h2h_rows({"a": "gpt-4", "b": "gemini-1-0-ultra"})
    assert rows["training_cost"].verdict == selectors.Verdict.LIKE
    assert round(rows["training_cost"].ratio[0], 2) == Decimal("2.45")  # $191M ÷ $78M
    assert rows["cost_at_price"].verdict == selectors.Verdict.ASSUMED_UTILISATION  # neither disclosed hours


def test_per_chip_mode_prices_each_chip_at_its_own_record(demo_content):
    """In per-chip mode a V100-hour costs the V100 record's $0.80 (GPT-3: 1,744,444 V100-hours from its compute at
    40 %), an H800-hour the H800's $2, and the ratio changes with the prices."""
    page = selectors.comparison_page(query={"mode": "chip", "price": "5", "a": "deepseek-v3", "b": "bloom"})
    by_slug = {item.slug: item for item in page.systems}
    gpt3 = by_slug["gpt-3"]
    assert page.settings.per_chip and gpt3.price_is_chips_own and gpt3.price_usd == Decimal("0.80")
    hours = Decimal(repr(3.14e23)) / (Decimal(125) * Decimal("1e12") * Decimal("0.4")) / 3600
    assert gpt3.cost_at_price == hours * Decimal("0.80")
    assert round(gpt3.cost_at_price) == Decimal(1_395_556)
    assert by_slug["deepseek-v3"].cost_at_price == Decimal("5576000.00")
    assert by_slug["bloom"].cost_at_price == Decimal("1620000.00")  # 1.08M A100-hours × $1.50
    cost = page.head_to_head.row("cost_at_price")
    assert cost.ratio[0] == Decimal("1620000.00") / Decimal("5576000.00")
    one_price = _h2h_rows({"price": "5", "a": "deepseek-v3", "b": "bloom"})["cost_at_price"]
    assert one_price.ratio[0] == Decimal(1_080_000) / Decimal(2_788_000)


def test_price_mode_is_read_from_the_url(demo_content):
    """`mode=chip` is kept; anything else is the one-price mode."""
    assert selectors.comparison_page(query={"mode": "chip"}).settings.price_mode == selectors.PriceMode.PER_CHIP
    assert selectors.comparison_page(query={"mode": "bogus"}).settings.price_mode == selectors.PriceMode.ONE


def test_utilisation_is_measured_against_the_peak_of_the_training_precision(demo_content):
    """DeepSeek-V3 trained in FP8: 3.3e24 FLOP in 2.788M H800-hours is 16.6 % of the H800's 1,979 TFLOP/s FP8 peak
    (not 33 % of its BF16 peak); Llama 3.1 405B, trained in BF16, 34.6 % of the H100's 989."""
    by_slug = {item.slug: item for item in selectors.comparison_page(query={}).systems}
    deepseek, llama = by_slug["deepseek-v3"], by_slug["llama-3-1-405b"]
    assert (deepseek.peak_precision, deepseek.peak_tflops, deepseek.precision_stated) == ("fp8", Decimal(1979), True)
    assert deepseek.implied_utilisation == selectors.implied_utilisation(
        training_compute_flop=3.3e24, gpu_hours=2_788_000, peak_tflops=Decimal(1979)
    )
    assert round(deepseek.implied_utilisation, 4) == Decimal("0.1661")
    assert (llama.peak_precision, llama.peak_tflops) == ("bf16", Decimal(989))
    assert round(llama.implied_utilisation, 4) == Decimal("0.3461")
    assert by_slug["bloom"].precision_stated is False  # measured against the 16-bit peak, and the page says so


def test_bloom_cost_per_compute_is_flagged_as_overstated(demo_content):
    """BLOOM's reported cost includes preliminary experiments while its compute is the final run: the reported
    cost per unit of compute is flagged; at your price (final-run hours) the scopes match."""
    rows = _h2h_rows({"a": "bloom", "b": "llama-2-70b"})
    assert rows["cost_per_zettaflop"].verdict == selectors.Verdict.SCOPE_DIFFERS
    assert rows["cost_per_zettaflop_at_price"].verdict == selectors.Verdict.LIKE


def test_claim_box_prices_the_rivals_at_one_basis(demo_content):
    """The claim box's rivals cost $61.68M–$252.5M at $2 per chip-hour (Llama 3.1 from its hours, GPT-4 and Gemini
    from compute at 40 %), next to their reported $78M–$191M, whose bases it names."""
    (claim,) = selectors.comparison_page(query={}).claims
    low, high = claim.rivals_cost_at_price
    assert low == Decimal("61680000.00")
    gemini_hours = Decimal(repr(5.0e25)) / (Decimal(275) * Decimal("1e12") * Decimal("0.4")) / 3600
    assert high == gemini_hours * 2
    assert round(high / 1_000_000, 1) == Decimal("252.5")
    assert claim.rivals_reported_bases == ["Epoch AI, cloud rates", "Stanford AI Index 2024 estimate, cloud rates"]
