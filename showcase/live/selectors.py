"""The comparison's maths and the demo's live figures. Reads only; views, the socket consumer and the tests call these.

Everything a visitor compares is computed here, in `Decimal`, from the published exhibit content:

- cost at a price: chip-hours × hourly price (the DeepSeek-V3 report's own method);
- chip-hours from training compute, where a system disclosed no GPU-hours: compute ÷ (chip's peak BF16 FLOP/s ×
  utilisation) ÷ 3600;
- ratios of two systems' figures, ranges against ranges (low ÷ other's high … high ÷ other's low);
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
from showcase.exhibits.models import AISystem, Claim, Figure, Hardware
from showcase.exhibits.selectors import FigureRow, training_cost_at_price

SECONDS_PER_HOUR = Decimal(3600)
ZETTAFLOP = Decimal("1e21")
TERA = Decimal("1e12")
MILLION = Decimal(1_000_000)

PRICE_MIN, PRICE_MAX = Decimal("0.01"), Decimal("100")
UTILISATION_MIN, UTILISATION_MAX = 1, 100
DEFAULT_PRICE_USD = Decimal("2.00")
DEFAULT_UTILISATION_PERCENT = 40


@dataclass(frozen=True)
class CostSettings:
    """The calculator's settings, as the URL carries them (`?price=2.00&util=40&hw=nvidia-h800-sxm`)."""

    hourly_price_usd: Decimal
    utilisation_percent: int
    hardware_slug: str = ""

    @property
    def utilisation(self) -> Decimal:
        return Decimal(self.utilisation_percent) / 100


Range = tuple[Decimal, Decimal]


# --- the maths ------------------------------------------------------------------------------------------------


def chip_hours_from_compute(*, training_compute_flop: float, peak_tflops: Decimal, utilisation: Decimal) -> Decimal:
    """Chip-hours a run of that much compute takes on chips of that peak throughput, used at that fraction."""
    if peak_tflops <= 0 or utilisation <= 0:
        raise ValueError("peak throughput and utilisation must be positive")
    return Decimal(repr(training_compute_flop)) / (peak_tflops * TERA * utilisation) / SECONDS_PER_HOUR


def implied_utilisation(*, training_compute_flop: float, gpu_hours: int, peak_tflops: Decimal) -> Decimal:
    """The fraction of the chips' peak the run used, from its compute and chip-hours (3.3e24 over 2.788M H800-hours:
    about 33 %)."""
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
    """Read `price`, `util` and `hw` from the URL; values out of range or malformed fall back to the defaults.

    A hardware record without an explicit price sets the price to that record's hourly price.
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
    return CostSettings(hourly_price_usd=price, utilisation_percent=utilisation, hardware_slug=hardware_slug)


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
    cost_at_price: Decimal | None = None
    cost_basis: str = ""

    @property
    def slug(self) -> str:
        return self.system.slug


@dataclass
class ClaimComparison:
    """A press claim set against what the sources say about the same system and about its bigger rivals."""

    claim: Claim
    subject: SystemComparison
    rivals: list[SystemComparison]
    rivals_cost: Range | None
    rivals_chips: tuple[int, int] | None
    claimed_over_sourced_cost: Decimal | None


@dataclass
class RatioRow:
    key: str
    label: str
    ratio: Range | None


@dataclass
class HeadToHead:
    """System b's figures as multiples of system a's: "b used 11.06× the GPU-hours of a"."""

    a: SystemComparison
    b: SystemComparison
    rows: list[RatioRow]


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


def system_comparison(*, system: AISystem, highlighted: bool) -> SystemComparison:
    """The derived figures of one system (`system` comes from exhibits' `ai_system_list`, with `figure_rows`)."""
    hardware = system.hardware if system.hardware is not None and system.hardware.is_published else None
    peak = hardware.bf16_tflops if hardware is not None and hardware.bf16_tflops else None
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
    )


def cost_at_price_apply(*, comparison: SystemComparison, cost_settings: CostSettings) -> SystemComparison:
    """Price the run at the calculator's settings: its chip-hours if known, else derived from compute."""
    if comparison.chip_hours is not None:
        comparison.cost_at_price = training_cost_at_price(gpu_hours=int(comparison.chip_hours),
                                                          hourly_price_usd=cost_settings.hourly_price_usd)  # fmt: skip
        comparison.cost_basis = "gpu_hours"
    elif comparison.chip_hours_at_full_utilisation is not None:
        hours = comparison.chip_hours_at_full_utilisation / cost_settings.utilisation
        comparison.cost_at_price = hours * cost_settings.hourly_price_usd
        comparison.cost_basis = "compute"
    else:
        comparison.cost_at_price, comparison.cost_basis = None, ""
    return comparison


RATIO_FIGURES = [
    ("parameters", _("Parameters")),
    (Figure.CHIPS.value, _("Chips")),
    (Figure.GPU_HOURS.value, _("GPU-hours")),
    (Figure.TRAINING_COMPUTE.value, _("Training compute")),
    (Figure.TRAINING_COST.value, _("Training cost")),
    ("cost_per_zettaflop", _("Cost per unit of compute")),
]


def _ratio_range(key: str, a: SystemComparison, b: SystemComparison) -> Range | None:
    if key in ("training_cost", "cost_per_zettaflop"):
        a_range, b_range = (a.cost, b.cost) if key == "training_cost" else (a.cost_per_zettaflop, b.cost_per_zettaflop)
        return range_ratio(numerator=b_range, denominator=a_range) if a_range and b_range else None
    attribute = {"parameters": "parameters_billions", "chips": "chip_count", "gpu_hours": "gpu_hours",
                 "training_compute": "training_compute_flop"}[key]  # fmt: skip
    single = ratio(numerator=getattr(b.system, attribute), denominator=getattr(a.system, attribute))
    return None if single is None else (single, single)


def head_to_head(*, a: SystemComparison, b: SystemComparison) -> HeadToHead:
    return HeadToHead(
        a=a, b=b, rows=[RatioRow(key, str(label), _ratio_range(key, a, b)) for key, label in RATIO_FIGURES]
    )


def claim_comparison(*, claim: Claim, subject: SystemComparison, systems: list[SystemComparison]) -> ClaimComparison:
    """The claim beside the sources. Rivals are the other systems in the table trained with at least as much
    compute as the claim's system: the "frontier" the claim compares itself with."""
    compute = subject.system.training_compute_flop
    rivals = [
        other for other in systems
        if other is not subject and compute and (other.system.training_compute_flop or 0) >= compute
    ]  # fmt: skip
    costs = [other.cost for other in rivals if other.cost]
    chips = [other.system.chip_count for other in rivals if other.system.chip_count]
    sourced = subject.cost
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
    )


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _range_floats(value: Range | None) -> list[float] | None:
    return None if value is None else [float(value[0]), float(value[1])]


def _browser_data(page: ComparisonPage) -> dict:
    """What compare.js needs to recompute costs without a round trip: per-system chip-hours and sourced ranges, the
    hardware prices and the settings. Plain numbers; the browser formats them for the visitor's language."""
    systems = page.systems
    return {
        "settings": {
            "price": float(page.settings.hourly_price_usd),
            "util": page.settings.utilisation_percent,
            "hw": page.settings.hardware_slug,
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
            }
            for s in systems
        ],
    }


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
        claim_comparison(claim=claim, subject=by_slug[claim.ai_system.slug], systems=comparisons)
        for claim in Claim.objects.published().filter(ai_system__slug__in=slugs).select_related("ai_system", "hardware")
    ]
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
