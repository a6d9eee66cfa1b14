"""Reads for the public pages. Every selector returns published content only, and each runs a fixed number of
queries whatever the amount of content (related rows come through select_related/prefetch_related).
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.core.paginator import Page, Paginator
from django.db.models import Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

from showcase.exhibits.models import (
    AISystem,
    Category,
    Claim,
    Conference,
    Exhibitor,
    Figure,
    FigureKind,
    Hardware,
    Investor,
    Pitch,
    Product,
    Publisher,
    Source,
    Startup,
    Status,
)

EXHIBITORS_PER_PAGE = 24
FEATURED_ON_HOME = 6


def conference_current() -> Conference | None:
    """The published conference the site is about (the latest one)."""
    return Conference.objects.published().first()


def product_featured_list(*, limit: int = FEATURED_ON_HOME) -> list[Product]:
    return list(
        Product.objects.published()
        .filter(featured=True, exhibitor__status=Status.PUBLISHED)
        .select_related("exhibitor")
        .order_by("position", "-updated_at")[:limit]
    )


@dataclass
class DirectoryFilters:
    query: str = ""
    country: str = ""
    category: str = ""

    @property
    def active(self) -> bool:
        return bool(self.query or self.country or self.category)


def exhibitor_directory(*, filters: DirectoryFilters, page_number: str | int | None) -> Page:
    """One page of published exhibitors matching the search and filters, with their categories."""
    exhibitors: QuerySet[Exhibitor] = Exhibitor.objects.published()
    if filters.query:
        exhibitors = exhibitors.filter(
            Q(name__icontains=filters.query) | Q(description__icontains=filters.query) | Q(booth__iexact=filters.query)
        )
    if filters.country:
        exhibitors = exhibitors.filter(country=filters.country)
    if filters.category:
        exhibitors = exhibitors.filter(categories__slug=filters.category)
    exhibitors = exhibitors.prefetch_related("categories").order_by("name", "id")
    return Paginator(exhibitors, EXHIBITORS_PER_PAGE).get_page(page_number)


def exhibitor_country_list() -> list[str]:
    """Countries that have at least one published exhibitor, for the directory's filter."""
    return list(Exhibitor.objects.published().order_by("country").values_list("country", flat=True).distinct())


def category_list() -> list[Category]:
    """Categories that have at least one published exhibitor."""
    return list(Category.objects.filter(exhibitors__status=Status.PUBLISHED).distinct().order_by("name"))


def exhibitor_detail(*, slug: str) -> Exhibitor:
    """A published exhibitor with its published products and AI systems; 404 for drafts and unknown slugs."""
    exhibitor = get_object_or_404(
        Exhibitor.objects.published().prefetch_related(
            "categories",
            Prefetch("products", queryset=Product.objects.published().order_by("position", "name")),
            Prefetch("ai_systems", queryset=AISystem.objects.published().select_related("hardware")),
        ),
        slug=slug,
    )
    for system in exhibitor.ai_systems.all():
        _drop_draft_relations(system)
    return exhibitor


@dataclass
class FigureRow:
    """One figure of an AI system as a visitor reads it: value, disclosed/estimated, note and its sources."""

    key: str
    label: str
    value: object
    kind: str
    kind_label: str
    note: str
    sources: list[Source] = field(default_factory=list)
    # For a derived figure: the formula on published inputs ("6 × 37B active parameters × 14.8T tokens").
    derivation: str = ""


def _figure_rows(system: AISystem) -> list[FigureRow]:
    sources = list(system.sources.all())
    cost: object = None
    if system.training_cost_low_usd is not None:
        cost = (system.training_cost_low_usd, system.training_cost_high_usd or system.training_cost_low_usd)
    rows = [
        (Figure.PARAMETERS, system.parameters_label or None, system.parameters_kind, "", ""),
        (Figure.CHIPS, system.chip_count, system.chip_count_kind, system.chip_count_note, ""),
        (Figure.GPU_HOURS, system.gpu_hours, system.gpu_hours_kind, system.gpu_hours_note,
         system.gpu_hours_derivation),
        (Figure.TRAINING_COMPUTE, system.training_compute_flop, system.training_compute_kind,
         system.training_compute_note, system.training_compute_derivation),
        (Figure.TRAINING_COST, cost, system.training_cost_kind, system.training_cost_note,
         system.training_cost_derivation),
    ]  # fmt: skip
    kind_labels = dict(FigureKind.choices)
    return [
        FigureRow(
            key=figure.value,
            label=figure.label,
            value=value,
            kind=kind,
            kind_label=kind_labels[kind],
            note=note,
            sources=[source for source in sources if source.backs(figure.value)],
            derivation=derivation,
        )
        for figure, value, kind, note, derivation in rows
    ]


def ai_system_figures_present(*, system: AISystem) -> list[str]:
    """The figures of a system that have a value (a parameters label such as "not disclosed" is not a value)."""
    values = {
        Figure.PARAMETERS: system.parameters_billions,
        Figure.CHIPS: system.chip_count,
        Figure.GPU_HOURS: system.gpu_hours,
        Figure.TRAINING_COMPUTE: system.training_compute_flop,
        Figure.TRAINING_COST: system.training_cost_low_usd if system.training_cost_low_usd is not None
        else system.training_cost_high_usd,
    }  # fmt: skip
    return [figure.value for figure, value in values.items() if value is not None]


def ai_system_label_problems(*, system: AISystem, sources: list[Source]) -> list[str]:
    """Figures whose label breaks the one rule: "derived" exactly when we computed it (a formula is given),
    "disclosed" only with a source the developer published, "estimated" only with a third party's."""
    figures = {
        Figure.PARAMETERS: (system.parameters_kind, ""),
        Figure.CHIPS: (system.chip_count_kind, ""),
        Figure.GPU_HOURS: (system.gpu_hours_kind, system.gpu_hours_derivation),
        Figure.TRAINING_COMPUTE: (system.training_compute_kind, system.training_compute_derivation),
        Figure.TRAINING_COST: (system.training_cost_kind, system.training_cost_derivation),
    }
    problems = []
    for figure in ai_system_figures_present(system=system):
        kind, derivation = figures[figure]
        publishers = {source.publisher for source in sources if source.backs(figure)}
        needed = {FigureKind.DISCLOSED: Publisher.DEVELOPER, FigureKind.ESTIMATED: Publisher.THIRD_PARTY}.get(kind)
        formula_agrees = bool(derivation) == (kind == FigureKind.DERIVED)
        if not formula_agrees or (needed is not None and needed not in publishers):
            problems.append(figure)
    return problems


def ai_system_unsourced_figures(*, system: AISystem, sources: list[Source]) -> list[str]:
    """Figures with a value that no source backs: while there is one, the system cannot be published."""
    return [figure for figure in ai_system_figures_present(system=system) if not any(s.backs(figure) for s in sources)]


def ai_system_list() -> list[AISystem]:
    """Published AI systems with their hardware and sources, each with `figure_rows` for the table."""
    systems = list(
        AISystem.objects.published()
        .select_related("hardware", "exhibitor")
        .prefetch_related(Prefetch("sources", queryset=Source.objects.order_by("position", "id")))
    )
    for system in systems:
        _drop_draft_relations(system)
        system.figure_rows = _figure_rows(system)
    return systems


def _drop_draft_relations(system: AISystem) -> AISystem:
    """A published system may point at a draft chip or exhibitor: the public pages must not reach either."""
    if system.exhibitor is not None and not system.exhibitor.is_published:
        system.exhibitor = None
    if system.hardware is not None and not system.hardware.is_published:
        system.hardware = None
    return system


def hardware_list() -> list[Hardware]:
    return list(Hardware.objects.published())


def ai_system_detail(*, slug: str) -> AISystem:
    """A published AI system with hardware, sources, claims and the exhibitor (if published); 404 otherwise."""
    system = get_object_or_404(
        AISystem.objects.published()
        .select_related("hardware", "exhibitor")
        .prefetch_related(
            Prefetch("sources", queryset=Source.objects.order_by("position", "id")),
            Prefetch("claims", queryset=Claim.objects.published().select_related("hardware")),
        ),
        slug=slug,
    )
    system.figure_rows = _figure_rows(system)
    _drop_draft_relations(system)
    for claim in system.claims.all():
        if claim.hardware is not None and not claim.hardware.is_published:
            claim.hardware = None
    return system


def training_cost_at_price(*, gpu_hours: int, hourly_price_usd: Decimal) -> Decimal:
    """Rental cost of a run: chip-hours × the hourly price (the DeepSeek-V3 report's own method)."""
    return Decimal(gpu_hours) * hourly_price_usd


def startup_list() -> list[Startup]:
    return list(Startup.objects.published())


def investor_list() -> list[Investor]:
    return list(Investor.objects.published())


def pitch_schedule() -> list[Pitch]:
    """Published pitch slots of published start-ups, in time order, with the published investors attending."""
    return list(
        Pitch.objects.published()
        .filter(startup__status=Status.PUBLISHED)
        .select_related("startup")
        .prefetch_related(Prefetch("investors", queryset=Investor.objects.published()))
        .order_by("starts_at", "room")
    )
