"""The comparison's maths and the demo's live figures. Reads only; views, the socket consumer and the tests call these.

Everything a visitor compares is computed here, in `Decimal`, from the published exhibit content:

- cost at a price: chip-hours × hourly price (the DeepSeek-V3 report's own method), one price for every chip or
  each chip at its own record's price; every cost ratio the page shows is computed on one such basis for both
  systems, and reported costs (priced by different people at different rates) are flagged when compared;
- chip-hours from training compute, where a system disclosed no GPU-hours: compute ÷ (chip's peak FLOP/s in the
  run's precision × utilisation) ÷ 3600;
- utilisation implied by compute and chip-hours, against the peak of the precision the run was trained in (FP8
  for DeepSeek-V3, BF16 where stated or unknown);
- ratios of two systems' figures, ranges against ranges (low ÷ other's high … high ÷ other's low), each with a
  verdict: like with like, or why not;
- cost per unit of compute, in USD per 10²¹ FLOP;
- what serving the demo costs: the machines' hourly price ÷ the tokens they generate in an hour.

The browser recomputes costs as a visitor moves the price and utilisation controls; it multiplies figures that
this module prepared (chip-hours, chip-hours at full utilisation), so the maths stays here. The module knows the
Redis keys the chat's workers publish to (`demo_engine.reply_stream`), never the engine itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TypedDict

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from showcase.exhibits import selectors as exhibit_selectors
from showcase.exhibits.models import AISystem, Claim, Figure, Hardware, Precision
from showcase.exhibits.selectors import FigureRow, training_cost_at_price

SECONDS_PER_HOUR = Decimal(3600)
ZETTAFLOP = Decimal("1e21")
TERA = Decimal("1e12")
MILLION = Decimal(1_000_000)

PRICE_MIN, PRICE_MAX = Decimal("0.01"), Decimal("100")
UTILISATION_MIN, UTILISATION_MAX = 1, 100
DEFAULT_PRICE_USD = Decimal("2.00")
DEFAULT_UTILISATION_PERCENT = 40


class PriceMode:
    """How the calculator prices a chip-hour: one price for every chip, or each chip at its own record's price."""

    ONE = "one"
    PER_CHIP = "chip"


@dataclass(frozen=True)
class CostSettings:
    """The calculator's settings, as the URL carries them (`?price=2.00&util=40&hw=nvidia-h800-sxm&mode=chip`)."""

    hourly_price_usd: Decimal
    utilisation_percent: int
    hardware_slug: str = ""
    price_mode: str = PriceMode.ONE

    @property
    def utilisation(self) -> Decimal:
        return Decimal(self.utilisation_percent) / 100

    @property
    def per_chip(self) -> bool:
        return self.price_mode == PriceMode.PER_CHIP


Range = tuple[Decimal, Decimal]


# --- the maths ------------------------------------------------------------------------------------------------


def chip_hours_from_compute(*, training_compute_flop: float, peak_tflops: Decimal, utilisation: Decimal) -> Decimal:
    """Chip-hours a run of that much compute takes on chips of that peak throughput, used at that fraction."""
    if peak_tflops <= 0 or utilisation <= 0:
        raise ValueError("peak throughput and utilisation must be positive")
    return Decimal(repr(training_compute_flop)) / (peak_tflops * TERA * utilisation) / SECONDS_PER_HOUR


def implied_utilisation(*, training_compute_flop: float, gpu_hours: int, peak_tflops: Decimal) -> Decimal:
    """The fraction of the chips' peak the run used, from its compute and chip-hours (3.3e24 FLOP over 2.788M
    H800-hours: 16.6 % of the FP8 peak the run was trained in, 33.2 % of the BF16 peak)."""
    return Decimal(repr(training_compute_flop)) / (Decimal(gpu_hours) * SECONDS_PER_HOUR * peak_tflops * TERA)


def ratio(*, numerator: Decimal | int | float, denominator: Decimal | int | float) -> Decimal | None:
    """numerator ÷ denominator (30.84M ÷ 2.788M GPU-hours = 11.06…), or None when either is unknown or zero."""
    if numerator is None or denominator is None:
        return None
    top, bottom = _decimal(numerator), _decimal(denominator)
    if bottom == 0:
        return None
    return top / bottom


def range_ratio(*, numerator: Range, denominator: Range) -> Range | None:
    """A range over a range: from the smallest quotient (low ÷ high) to the largest (high ÷ low)."""
    low = ratio(numerator=numerator[0], denominator=denominator[1])
    high = ratio(numerator=numerator[1], denominator=denominator[0])
    if low is None or high is None:
        return None
    return (low, high)


def cost_per_zettaflop(*, cost: Range, training_compute_flop: float) -> Range | None:
    """Training cost per 10²¹ FLOP of training compute (DeepSeek-V3: $5.576M over 3.3e24 FLOP, about $1,690)."""
    if not training_compute_flop:
        return None
    zettaflops = Decimal(repr(training_compute_flop)) / ZETTAFLOP
    return (cost[0] / zettaflops, cost[1] / zettaflops)


def serving_cost_per_million_tokens(
    *, hourly_price_usd: Decimal, tokens_per_second: float, machines: int = 1
) -> Decimal | None:
    """What a million generated tokens cost at the machines' hourly price and the measured rate; None while idle."""
    if tokens_per_second <= 0 or machines <= 0:
        return None
    tokens_per_hour = Decimal(repr(float(tokens_per_second))) * SECONDS_PER_HOUR
    return hourly_price_usd * machines * MILLION / tokens_per_hour


def _decimal(value: Decimal | int | float) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


# --- the calculator's settings --------------------------------------------------------------------------------


def cost_settings_from_query(
    *, query: Mapping[str, str], hardware: list[Hardware], default_price: Decimal
) -> CostSettings:
    """Read `price`, `util`, `hw` and `mode` from the URL; values out of range or malformed fall back to the defaults.

    A hardware record without an explicit price sets the price to that record's hourly price. `mode=chip` prices
    each system's chip-hours at its own chip's price (the one price then only serves systems without a chip).
    """
    by_slug = {record.slug: record for record in hardware}
    hardware_slug = query.get("hw", "") if query.get("hw", "") in by_slug else ""
    price = default_price
    if hardware_slug:
        price = by_slug[hardware_slug].hourly_price_usd
    try:
        asked = Decimal(query.get("price", "").strip()[:12])
        if asked.is_finite() and PRICE_MIN <= asked <= PRICE_MAX:
            price = asked.quantize(Decimal("0.01"))
    except InvalidOperation:
        pass
    try:
        utilisation = int(query.get("util", ""))
        if not UTILISATION_MIN <= utilisation <= UTILISATION_MAX:
            utilisation = DEFAULT_UTILISATION_PERCENT
    except ValueError:
        utilisation = DEFAULT_UTILISATION_PERCENT
    mode = PriceMode.PER_CHIP if query.get("mode") == PriceMode.PER_CHIP else PriceMode.ONE
    return CostSettings(hourly_price_usd=price, utilisation_percent=utilisation, hardware_slug=hardware_slug,
                        price_mode=mode)  # fmt: skip


# --- the comparison -------------------------------------------------------------------------------------------


@dataclass
class SystemComparison:
    """One published AI system with its sourced figures and what the comparison derives from them."""

    system: AISystem
    hardware: Hardware | None
    rows: dict[str, FigureRow]
    highlighted: bool
    cost: Range | None
    cost_per_zettaflop: Range | None
    implied_utilisation: Decimal | None
    # Chip-hours the calculator prices: the disclosed/estimated GPU-hours, else derived from compute at 100 %.
    chip_hours: Decimal | None
    chip_hours_at_full_utilisation: Decimal | None
    # The precision whose peak the utilisation and the chip-hours from compute use ("fp8", "bf16", "fp16", or
    # "16bit" when the developer did not state it: the chip's 16-bit peak is then assumed).
    peak_precision: str = ""
    precision_stated: bool = False
    peak_tflops: Decimal | None = None
    cost_at_price: Decimal | None = None
    cost_basis: str = ""
    price_usd: Decimal | None = None
    price_is_chips_own: bool = False
    cost_per_zettaflop_at_price: Decimal | None = None

    @property
    def slug(self) -> str:
        return self.system.slug

    @property
    def parameters_active(self) -> Decimal | None:
        """The parameters a token uses: the active ones of a mixture of experts, all of a dense model's."""
        if self.system.parameters_active_billions is not None:
            return self.system.parameters_active_billions
        return self.system.parameters_billions

    @property
    def is_mixture_of_experts(self) -> bool:
        return self.system.parameters_active_billions is not None

    @property
    def reported_cost_per_compute_overstated(self) -> bool:
        """The reported cost covers more than the compute (BLOOM's preliminary experiments): its ratio overstates."""
        return self.system.cost_covers_more_than_compute and self.cost_per_zettaflop is not None


@dataclass
class ClaimComparison:
    """A press claim set against what the sources say about the same system and about its bigger rivals."""

    claim: Claim
    subject: SystemComparison
    rivals: list[SystemComparison]
    rivals_cost: Range | None
    rivals_chips: tuple[int, int] | None
    claimed_over_sourced_cost: Decimal | None
    # The rivals and the subject priced at the calculator's one basis: like with like, unlike the reported range.
    rivals_cost_at_price: Range | None = None
    rivals_reported_bases: list[str] = field(default_factory=list)

    @property
    def claim_hardware(self) -> Hardware | None:
        return self.claim.hardware


class Verdict:
    """Whether a head-to-head ratio compares like with like; the page shows it beside every ratio."""

    LIKE = "like"  # the same figure on the same basis
    BASES_DIFFER = "bases_differ"  # two reported costs priced by different people at different rates
    TOTAL_VS_DENSE = "total_vs_dense"  # a mixture of experts' total parameters against a dense model's
    SCOPE_DIFFERS = "scope_differs"  # a cost that covers more than the compute it is divided by
    ASSUMED_UTILISATION = "assumed_utilisation"  # one side's chip-hours come from compute at the assumed utilisation


VERDICT_LABELS = {
    Verdict.LIKE: _("like with like"),
    Verdict.BASES_DIFFER: _("bases differ"),
    Verdict.TOTAL_VS_DENSE: _("total against dense: see active parameters"),
    Verdict.SCOPE_DIFFERS: _("scopes differ: overstated"),
    Verdict.ASSUMED_UTILISATION: _("hours from compute at the assumed utilisation"),
}


@dataclass
class RatioRow:
    key: str
    label: str
    ratio: Range | None
    verdict: str = Verdict.LIKE
    a_value: object = None
    b_value: object = None
    a_basis: str = ""
    b_basis: str = ""

    @property
    def verdict_label(self) -> str:
        return str(VERDICT_LABELS[self.verdict])

    @property
    def like_with_like(self) -> bool:
        return self.verdict == Verdict.LIKE


@dataclass
class HeadToHead:
    """System b's figures as multiples of system a's: "b used 11.06× the GPU-hours of a"."""

    a: SystemComparison
    b: SystemComparison
    rows: list[RatioRow]

    def row(self, key: str) -> RatioRow | None:
        return next((row for row in self.rows if row.key == key), None)


@dataclass
class ComparisonPage:
    systems: list[SystemComparison]
    hardware: list[Hardware]
    claims: list[ClaimComparison]
    head_to_head: HeadToHead | None
    settings: CostSettings
    pair: tuple[str, str]
    browser_data: dict = field(default_factory=dict)


def _cost_range(system: AISystem) -> Range | None:
    low, high = system.training_cost_low_usd, system.training_cost_high_usd
    if low is None and high is None:
        return None
    return (low if low is not None else high, high if high is not None else low)


SIXTEEN_BIT = "16bit"


def _peak(hardware: Hardware | None, precision: str) -> tuple[str, Decimal | None]:
    """The peak a run in `precision` is measured against, and that peak's precision. A run without a stated
    precision, or in FP8 on a chip without FP8, is measured against the chip's 16-bit peak."""
    if hardware is None:
        return "", None
    if precision == Precision.FP8 and hardware.fp8_tflops:
        return Precision.FP8, hardware.fp8_tflops
    # The chip's 16-bit peak is BF16, or FP16 on a chip without BF16 (the V100): say which only when the run's
    # precision was stated.
    sixteen_bit = precision if precision in (Precision.BF16, Precision.FP16) else SIXTEEN_BIT
    return sixteen_bit, hardware.bf16_tflops or None


def system_comparison(*, system: AISystem, highlighted: bool) -> SystemComparison:
    """The derived figures of one system (`system` comes from exhibits' `ai_system_list`, with `figure_rows`)."""
    hardware = system.hardware if system.hardware is not None and system.hardware.is_published else None
    peak_precision, peak = _peak(hardware, system.training_precision)
    cost = _cost_range(system)
    compute = system.training_compute_flop
    full_utilisation_hours = None
    if compute and peak:
        full_utilisation_hours = chip_hours_from_compute(training_compute_flop=compute, peak_tflops=peak,
                                                         utilisation=Decimal(1))  # fmt: skip
    return SystemComparison(
        system=system,
        hardware=hardware,
        rows={row.key: row for row in system.figure_rows},
        highlighted=highlighted,
        cost=cost,
        cost_per_zettaflop=cost_per_zettaflop(cost=cost, training_compute_flop=compute) if cost and compute else None,
        implied_utilisation=(
            implied_utilisation(training_compute_flop=compute, gpu_hours=system.gpu_hours, peak_tflops=peak)
            if compute and system.gpu_hours and peak
            else None
        ),
        chip_hours=Decimal(system.gpu_hours) if system.gpu_hours else None,
        chip_hours_at_full_utilisation=full_utilisation_hours,
        peak_precision=peak_precision,
        precision_stated=bool(system.training_precision),
        peak_tflops=peak,
    )


def cost_at_price_apply(*, comparison: SystemComparison, cost_settings: CostSettings) -> SystemComparison:
    """Price the run at the calculator's settings: its chip-hours if known, else derived from compute. In per-chip
    mode each chip-hour costs that chip's own hourly price; a system without a chip record takes the one price."""
    price = cost_settings.hourly_price_usd
    comparison.price_is_chips_own = False
    if cost_settings.per_chip and comparison.hardware is not None:
        price, comparison.price_is_chips_own = comparison.hardware.hourly_price_usd, True
    comparison.price_usd = price
    if comparison.chip_hours is not None:
        comparison.cost_at_price = training_cost_at_price(gpu_hours=int(comparison.chip_hours),
                                                          hourly_price_usd=price)  # fmt: skip
        comparison.cost_basis = "gpu_hours"
    elif comparison.chip_hours_at_full_utilisation is not None:
        hours = comparison.chip_hours_at_full_utilisation / cost_settings.utilisation
        comparison.cost_at_price = hours * price
        comparison.cost_basis = "compute"
    else:
        comparison.cost_at_price, comparison.cost_basis = None, ""
    compute = comparison.system.training_compute_flop if comparison.system is not None else None
    comparison.cost_per_zettaflop_at_price = (
        comparison.cost_at_price / (Decimal(repr(compute)) / ZETTAFLOP)
        if comparison.cost_at_price is not None and compute
        else None
    )
    return comparison


def _single(value) -> Range | None:
    return None if value is None else (value, value)


def _ratio_row(key: str, label, a_value, b_value, *, verdict: str = Verdict.LIKE, a_basis: str = "",
               b_basis: str = "") -> RatioRow:  # fmt: skip
    if isinstance(a_value, tuple) or isinstance(b_value, tuple):
        a_range = a_value if isinstance(a_value, tuple) else _single(a_value)
        b_range = b_value if isinstance(b_value, tuple) else _single(b_value)
        value = range_ratio(numerator=b_range, denominator=a_range) if a_range and b_range else None
    else:
        single = ratio(numerator=b_value, denominator=a_value)
        value = _single(single)
    return RatioRow(key=key, label=str(label), ratio=value, verdict=verdict, a_value=a_value, b_value=b_value,
                    a_basis=a_basis, b_basis=b_basis)  # fmt: skip


def head_to_head(*, a: SystemComparison, b: SystemComparison) -> HeadToHead:
    """The ratios of two systems, each with its verdict. Costs come twice: at the calculator's one price basis
    (like with like: the 11.06× of DeepSeek-V3 against Llama 3.1 405B), and as reported, where the two figures
    were priced by different people at different rates (30.49×, flagged "bases differ")."""
    mixture = a.is_mixture_of_experts or b.is_mixture_of_experts
    rows = [
        _ratio_row("parameters", _("Parameters (total)"), a.system.parameters_billions, b.system.parameters_billions,
                   verdict=Verdict.TOTAL_VS_DENSE if mixture and not (a.is_mixture_of_experts and
                                                                     b.is_mixture_of_experts) else Verdict.LIKE),
    ]  # fmt: skip
    if mixture:
        rows.append(_ratio_row("parameters_active", _("Parameters active per token"), a.parameters_active,
                               b.parameters_active))  # fmt: skip
    rows += [
        _ratio_row(Figure.CHIPS.value, _("Chips"), a.system.chip_count, b.system.chip_count),
        _ratio_row(Figure.GPU_HOURS.value, _("GPU-hours"), a.system.gpu_hours, b.system.gpu_hours),
        _ratio_row(Figure.TRAINING_COMPUTE.value, _("Training compute"), a.system.training_compute_flop,
                   b.system.training_compute_flop),
    ]  # fmt: skip
    at_price_verdict = Verdict.ASSUMED_UTILISATION if "compute" in (a.cost_basis, b.cost_basis) else Verdict.LIKE
    rows.append(_ratio_row("cost_at_price", _("Training cost at your price"), a.cost_at_price, b.cost_at_price,
                           verdict=at_price_verdict))  # fmt: skip
    rows.append(_ratio_row("cost_per_zettaflop_at_price", _("Cost per 10²¹ FLOP at your price"),
                           a.cost_per_zettaflop_at_price, b.cost_per_zettaflop_at_price,
                           verdict=at_price_verdict))  # fmt: skip
    same_basis = bool(a.system.training_cost_basis) and a.system.training_cost_basis == b.system.training_cost_basis
    reported_verdict = Verdict.LIKE if same_basis else Verdict.BASES_DIFFER
    rows.append(_ratio_row(Figure.TRAINING_COST.value, _("Training cost as reported"), a.cost, b.cost,
                           verdict=reported_verdict, a_basis=a.system.training_cost_basis,
                           b_basis=b.system.training_cost_basis))  # fmt: skip
    overstated = a.reported_cost_per_compute_overstated or b.reported_cost_per_compute_overstated
    rows.append(_ratio_row("cost_per_zettaflop", _("Cost per 10²¹ FLOP as reported"), a.cost_per_zettaflop,
                           b.cost_per_zettaflop,
                           verdict=Verdict.SCOPE_DIFFERS if overstated else reported_verdict,
                           a_basis=a.system.training_cost_basis, b_basis=b.system.training_cost_basis))  # fmt: skip
    return HeadToHead(a=a, b=b, rows=rows)


def claim_comparison(*, claim: Claim, subject: SystemComparison, systems: list[SystemComparison]) -> ClaimComparison:
    """The claim beside the sources. Rivals are the other systems in the table trained with at least as much
    compute as the claim's system: the "frontier" the claim compares itself with. Their costs come at the
    calculator's price basis (like with like with the subject's) and as reported (different bases)."""
    compute = subject.system.training_compute_flop
    rivals = [
        other for other in systems
        if other is not subject and compute and (other.system.training_compute_flop or 0) >= compute
    ]  # fmt: skip
    costs = [other.cost for other in rivals if other.cost]
    at_price = [other.cost_at_price for other in rivals if other.cost_at_price is not None]
    chips = [other.system.chip_count for other in rivals if other.system.chip_count]
    sourced = subject.cost
    bases = sorted({other.system.training_cost_basis for other in rivals if other.cost and
                    other.system.training_cost_basis})  # fmt: skip
    return ClaimComparison(
        claim=claim,
        subject=subject,
        rivals=rivals,
        rivals_cost=(min(low for low, _high in costs), max(high for _low, high in costs)) if costs else None,
        rivals_chips=(min(chips), max(chips)) if chips else None,
        claimed_over_sourced_cost=(
            ratio(numerator=claim.cost_usd, denominator=(sourced[0] + sourced[1]) / 2)
            if claim.cost_usd is not None and sourced
            else None
        ),
        rivals_cost_at_price=(min(at_price), max(at_price)) if at_price else None,
        rivals_reported_bases=bases,
    )


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _range_floats(value: Range | None) -> list[float] | None:
    return None if value is None else [float(value[0]), float(value[1])]


def _browser_data(page: ComparisonPage) -> dict:
    """What compare.js needs to recompute costs without a round trip: per-system chip-hours, chip prices and sourced
    ranges, the hardware prices and the settings. Plain numbers; the browser formats them for the visitor's
    language."""
    systems = page.systems
    return {
        "settings": {
            "price": float(page.settings.hourly_price_usd),
            "util": page.settings.utilisation_percent,
            "hw": page.settings.hardware_slug,
            "mode": page.settings.price_mode,
            "a": page.pair[0],
            "b": page.pair[1],
        },
        "hardware": [
            {"slug": h.slug, "name": f"{h.vendor} {h.name}", "price": float(h.hourly_price_usd)} for h in page.hardware
        ],  # fmt: skip
        "systems": [
            {
                "slug": s.slug,
                "name": s.system.name,
                "highlighted": s.highlighted,
                "cost": _range_floats(s.cost),
                "chip_hours": _float(s.chip_hours),
                "chip_hours_at_full_utilisation": _float(s.chip_hours_at_full_utilisation),
                "chip_price": _float(s.hardware.hourly_price_usd) if s.hardware is not None else None,
                "chip_name": s.hardware.name if s.hardware is not None else "",
                "compute": s.system.training_compute_flop,
            }
            for s in systems
        ],
    }


def _without_drafts(claim: Claim) -> Claim:
    """A claim's chip type may be a draft hardware record: the public page must not name it."""
    if claim.hardware is not None and not claim.hardware.is_published:
        claim.hardware = None
    return claim


def comparison_page(*, query: Mapping[str, str]) -> ComparisonPage:
    """Every published AI system side by side, the press claims against the sources, the head-to-head of the pair
    in the URL (`a`, `b`; default DeepSeek-V3 against Llama 3.1 405B) and costs at the calculator's settings.
    A fixed number of queries whatever the number of systems."""
    systems = exhibit_selectors.ai_system_list()
    hardware = exhibit_selectors.hardware_list()
    slugs = [system.slug for system in systems]
    default_a, default_b = settings.COMPARE_DEFAULT_PAIR
    a_slug = query.get("a") if query.get("a") in slugs else default_a
    b_slug = query.get("b") if query.get("b") in slugs else default_b
    highlight = next((s.organisation for s in systems if s.slug == default_a), None)
    comparisons = [system_comparison(system=s, highlighted=s.organisation == highlight) for s in systems]
    by_slug = {c.slug: c for c in comparisons}
    a_hardware = by_slug[a_slug].hardware if a_slug in by_slug else None
    default_price = a_hardware.hourly_price_usd if a_hardware is not None else DEFAULT_PRICE_USD
    cost_settings = cost_settings_from_query(query=query, hardware=hardware, default_price=default_price)
    for comparison in comparisons:
        cost_at_price_apply(comparison=comparison, cost_settings=cost_settings)
    claims = [
        claim_comparison(claim=_without_drafts(claim), subject=by_slug[claim.ai_system.slug], systems=comparisons)
        for claim in Claim.objects.published().filter(ai_system__slug__in=slugs).select_related("ai_system", "hardware")
    ]
    for item in claims:
        # The table's copy of the claim's system, whose draft chip or exhibitor the selector already dropped: the
        # copy select_related loaded would still reach them.
        item.claim.ai_system = item.subject.system
    pair_ready = a_slug in by_slug and b_slug in by_slug and a_slug != b_slug
    page = ComparisonPage(
        systems=comparisons,
        hardware=hardware,
        claims=claims,
        head_to_head=head_to_head(a=by_slug[a_slug], b=by_slug[b_slug]) if pair_ready else None,
        settings=cost_settings,
        pair=(a_slug, b_slug),
    )
    page.browser_data = _browser_data(page)
    return page


# --- the demo's live figures -----------------------------------------------------------------------------------


class DemoFigures(TypedDict):
    """The live panel's payload (`/ws/live/`, topic "demo"), about once a second."""

    available: bool
    measured_at: float
    workers: int
    engine_loaded: bool
    tokens_per_s: float
    in_flight: int
    queued_in_engine: int
    queue_depth: int
    backend: str
    hourly_price_usd: float
    cost_per_million_tokens_usd: float | None


def demo_figures_combine(
    *, workers: list[dict], queue_depth: int, hourly_price_usd: Decimal, measured_at: float
) -> DemoFigures:
    """Add up what each live worker reported; the cost counts one machine at the hourly price per worker."""
    tokens_per_s = sum(float(w.get("tokens_per_s") or 0) for w in workers)
    backends = sorted({str(w["backend"]) for w in workers if w.get("backend")})
    cost = serving_cost_per_million_tokens(hourly_price_usd=hourly_price_usd, tokens_per_second=tokens_per_s,
                                           machines=len(workers))  # fmt: skip
    return {
        "available": True,
        "measured_at": measured_at,
        "workers": len(workers),
        "engine_loaded": any(w.get("engine_loaded") for w in workers),
        "tokens_per_s": tokens_per_s,
        "in_flight": sum(int(w.get("in_flight") or 0) for w in workers),
        "queued_in_engine": sum(int(w.get("queued") or 0) for w in workers),
        "queue_depth": int(queue_depth),
        "backend": ", ".join(backends),
        "hourly_price_usd": float(hourly_price_usd),
        "cost_per_million_tokens_usd": _float(cost),
    }


async def demo_figures_read(*, hourly_price_usd: Decimal) -> DemoFigures:
    """Read this site's workers' latest figures and its Celery queue's length from Redis (no database query)."""
    from demo_engine import reply_stream

    workers = await reply_stream.worker_figures_read()
    queue_depth = await reply_stream.celery_queue_depth(settings.COMPARE_INFERENCE_QUEUE)
    return demo_figures_combine(workers=workers, queue_depth=queue_depth, hourly_price_usd=hourly_price_usd,
                                measured_at=time.time())  # fmt: skip
