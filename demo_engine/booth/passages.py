"""Passages: what the assistant may read about one published record, built from the showcase's content models.

One passage per record: a short text that leads with the record's name and the fact visitors ask for most (an
exhibitor's hall and booth, a pitch's time and room), then the rest, and a list of facts, one of which a source
card shows. A 135M model garbles what it is given in bulk (DESIGN.md, "The booth assistant"), so passages stay
short: descriptions are cut to DESCRIPTION_CHARS.

Content is data: a description is copied in as text, whatever it says; only what staff published is read (a draft,
or a product whose exhibitor is a draft, builds no passage). This module reads the database and knows nothing of
indexes or models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Model
from django.utils import timezone, translation

from showcase.exhibits import models as content
from showcase.exhibits.models import Status

DESCRIPTION_CHARS = 160


@dataclass
class PassageDraft:
    """A passage before it is indexed."""

    record_key: str
    kind: str
    title: str
    url: str
    text: str
    facts: list[str] = field(default_factory=list)


def record_key(instance: Model) -> str:
    return f"{instance._meta.model_name}:{instance.pk}"


def _clean(text: str, limit: int = DESCRIPTION_CHARS) -> str:
    """One line, at most `limit` characters, cut at a word."""
    text = re.sub(r"\s+", " ", text or "").strip()
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def money(amount: Decimal | int | float | None) -> str:
    """$5,576,000 (about $5.6M): the exact figure and the rounded one people say."""
    if amount is None:
        return ""
    value = float(amount)
    exact = f"${value:,.0f}"
    if value >= 1e9:
        return f"{exact} (about ${value / 1e9:.3g}B)"
    if value >= 1e6:
        return f"{exact} (about ${value / 1e6:.3g}M)"
    return exact


def day(value) -> str:
    return f"{value.day} {value:%B %Y}"


def _conference(conference: content.Conference) -> PassageDraft:
    dates = f"{conference.starts_on.day}–{day(conference.ends_on)}"
    counts = [
        ("guests", "guests"),
        ("countries", "countries"),
        ("companies", "companies exhibiting"),
        ("products", "products"),
        ("language_models", "large language models"),
        ("startups", "start-ups"),
        ("investment_institutions", "investment institutions"),
    ]
    # Each figure in the source's own wording: "more than" only where the source says it.
    figures = [
        f"{'more than ' if conference.is_minimum(field) else ''}{getattr(conference, field):,} {label}"
        for field, label in counts
        if getattr(conference, field)
    ]
    if conference.exhibition_area_m2:
        more = "more than " if conference.is_minimum("exhibition_area_m2") else ""
        figures.append(f"{more}{conference.exhibition_area_m2:,} m² of exhibition space")
    where = ", ".join(part for part in (conference.venue, conference.city) if part)
    name = f"{conference.short_name} ({conference.name})" if conference.short_name else conference.name
    facts = [f"{dates}, {where}", *figures]
    text = f"{name}: {dates}, {where}. {'; '.join(figures)}. {_clean(conference.summary, 240)}"
    title = f"{conference.short_name} · {conference.name}" if conference.short_name else conference.name
    return PassageDraft(record_key(conference), "conference", title, conference.get_absolute_url(), text.strip(), facts)


def _stand(exhibitor: content.Exhibitor) -> str:
    parts = [f"hall {exhibitor.hall}" if exhibitor.hall else "", f"booth {exhibitor.booth}" if exhibitor.booth else ""]
    return ", ".join(part for part in parts if part)


def _exhibitor(exhibitor: content.Exhibitor) -> PassageDraft:
    stand = _stand(exhibitor)
    categories = ", ".join(category.name for category in exhibitor.categories.all())
    products = [p.name for p in exhibitor.products.all() if p.status == Status.PUBLISHED]
    facts = [f"{exhibitor.name}: {stand}" if stand else exhibitor.name, f"From {exhibitor.country}"]
    if products:
        facts.append("Shows " + ", ".join(products[:5]))
    text = f"{exhibitor.name}: {stand}. Exhibitor from {exhibitor.country}" if stand else exhibitor.name
    if categories:
        text += f" ({categories})"
    text += ". " + _clean(exhibitor.description)
    if products:
        text += " Shows: " + ", ".join(products[:5]) + "."
    return PassageDraft(record_key(exhibitor), "exhibitor", exhibitor.name, exhibitor.get_absolute_url(),
                        text.strip(), facts)  # fmt: skip


def _product(product: content.Product) -> PassageDraft:
    exhibitor = product.exhibitor
    stand = _stand(exhibitor)
    where = f"{exhibitor.name}, {stand}" if stand else exhibitor.name
    text = f"{product.name} ({product.get_kind_display().lower()}) at {where}. {_clean(product.description)}"
    facts = [f"{product.name}: {where}"]
    title = f"{product.name} · {exhibitor.name}"
    return PassageDraft(record_key(product), "product", title, product.get_absolute_url(), text.strip(), facts)


def _slot(pitch: content.Pitch) -> str:
    starts = timezone.localtime(pitch.starts_at)
    return f"{day(starts)} at {starts:%H:%M}, {pitch.room}"


def _pitch(pitch: content.Pitch) -> PassageDraft:
    investors = [investor.name for investor in pitch.investors.all() if investor.status == Status.PUBLISHED]
    title = f' "{pitch.title}"' if pitch.title else ""
    slot = _slot(pitch)
    text = f"{pitch.startup.name} pitches{title} on {slot} ({pitch.duration_minutes} minutes)"
    if pitch.state == content.PitchState.CANCELLED:
        text += ", cancelled"
    text += "."
    if investors:
        text += " Investors attending: " + ", ".join(investors) + "."
    facts = [f"{pitch.startup.name} pitches on {slot}"]
    if investors:
        facts.append("Investors attending: " + ", ".join(investors))
    return PassageDraft(record_key(pitch), "pitch", f"Pitch: {pitch.startup.name}", pitch.get_absolute_url(),
                        text, facts)  # fmt: skip


def _startup(startup: content.Startup) -> PassageDraft:
    place = ", ".join(part for part in (startup.city, startup.country) if part)
    founded = f", founded {startup.founded_year}" if startup.founded_year else ""
    sector = f" ({startup.sector})" if startup.sector else ""
    slots = [_slot(pitch) for pitch in startup.pitches.all() if pitch.status == Status.PUBLISHED]
    text = f"{startup.name}: start-up from {place}{founded}{sector}. {_clean(startup.description)}"
    facts = [f"{startup.name}: {place}{founded}"]
    if slots:
        text += " Pitches on " + "; ".join(slots) + "."
        facts.insert(0, f"{startup.name} pitches on {slots[0]}")
    return PassageDraft(record_key(startup), "startup", startup.name, startup.get_absolute_url(), text.strip(), facts)


def _investor(investor: content.Investor) -> PassageDraft:
    place = f" from {investor.country}" if investor.country else ""
    text = f"{investor.name}: {investor.get_kind_display().lower()}{place}. {_clean(investor.description)}"
    attends = [p.startup.name for p in investor.pitches.all() if p.status == Status.PUBLISHED]
    facts = [f"{investor.name}: {investor.get_kind_display().lower()}{place}"]
    if attends:
        text += " Attends the pitches of " + ", ".join(attends) + "."
        facts.append("Attends the pitches of " + ", ".join(attends))
    return PassageDraft(record_key(investor), "investor", investor.name, investor.get_absolute_url(), text.strip(),
                        facts)  # fmt: skip


def _labelled(value: str, kind: str) -> str:
    return f"{value} ({kind})"


def _ai_system(system: content.AISystem) -> PassageDraft:
    facts: list[str] = []
    chip = system.hardware.name if system.hardware else "chips"
    if system.parameters_label:
        facts.append(_labelled(f"{system.parameters_label} parameters", system.parameters_kind))
    if system.chip_count:
        facts.append(_labelled(f"{system.chip_count:,} {chip} chips", system.chip_count_kind))
    elif system.hardware:
        facts.append(f"trained on {chip}")
    if system.gpu_hours:
        facts.append(_labelled(f"{system.gpu_hours:,} GPU-hours", system.gpu_hours_kind))
    if system.training_cost_low_usd is not None:
        cost = money(system.training_cost_low_usd)
        if system.training_cost_high_usd and system.training_cost_high_usd != system.training_cost_low_usd:
            cost = f"{money(system.training_cost_low_usd)} to {money(system.training_cost_high_usd)}"
        facts.append(_labelled(f"training cost {cost}", system.training_cost_kind))
    if system.training_compute_flop:
        facts.append(_labelled(f"{system.training_compute_flop:.2g} FLOP", system.training_compute_kind))
    released = f"{system.released_on:%B %Y}"
    text = f"{system.name} by {system.organisation} (released {released}): " + "; ".join(facts) + "."
    if system.scope_note:
        text += f" Scope: {_clean(system.scope_note)}"
    sources = [source.title for source in system.sources.all()]
    if sources:
        text += " Source: " + _clean(sources[0], 100)
    facts = [f"{system.name}: {fact}" for fact in facts]
    if system.scope_note:
        facts.append(f"Scope: {system.scope_note}")
    return PassageDraft(record_key(system), "aisystem", system.name, system.get_absolute_url(), text.strip(), facts)


def _claim(claim: content.Claim) -> PassageDraft:
    parts = []
    if claim.cost_usd:
        parts.append(f"about {money(claim.cost_usd)}")
    if claim.chip_count:
        chip = claim.hardware.name if claim.hardware else "chips"
        parts.append(f"about {claim.chip_count:,} {chip}")
    rivals = []
    if claim.rival_cost_low_usd:
        high = claim.rival_cost_high_usd or claim.rival_cost_low_usd
        rivals.append(f"{money(claim.rival_cost_low_usd)} to {money(high)}")
    if claim.rival_chip_count:
        rivals.append(f"{claim.rival_chip_count:,} chips")
    text = f"Press claim about {claim.ai_system.name} ({claim.claimant}): {_clean(claim.statement)}"
    if parts:
        text += " Claimed: " + ", ".join(parts) + "."
    if rivals:
        text += " Rivals: " + ", ".join(rivals) + "."
    facts = [f"Claim ({claim.claimant}): " + (", ".join(parts) or _clean(claim.statement, 80))]
    return PassageDraft(record_key(claim), "claim", f"Claim: {claim.ai_system.name}", claim.get_absolute_url(),
                        text, facts)  # fmt: skip


def _hardware(hardware: content.Hardware) -> PassageDraft:
    specs = [f"{hardware.memory_gb} GB {hardware.memory_type}".strip(), f"{hardware.memory_bandwidth_tb_s} TB/s"]
    if hardware.bf16_tflops:
        specs.append(f"{hardware.bf16_tflops} TFLOP/s BF16")
    price = f"rental price assumed at ${hardware.hourly_price_usd} an hour"
    text = f"{hardware.name} ({hardware.vendor} chip): {', '.join(specs)}; {price}."
    facts = [f"{hardware.name}: {', '.join(specs)}", f"{hardware.name}: {price}"]
    return PassageDraft(record_key(hardware), "hardware", hardware.name, hardware.get_absolute_url(), text, facts)


# The published records of each kind, with what their passage reads (a fixed number of queries per kind).
def _published_querysets() -> dict[str, object]:
    published = Status.PUBLISHED
    return {
        "conference": content.Conference.objects.published(),
        "exhibitor": content.Exhibitor.objects.published().prefetch_related("categories", "products"),
        "product": content.Product.objects.published().filter(exhibitor__status=published).select_related("exhibitor"),
        "startup": content.Startup.objects.published().prefetch_related("pitches"),
        "investor": content.Investor.objects.published().prefetch_related("pitches__startup"),
        "pitch": content.Pitch.objects.published()
        .filter(startup__status=published)
        .select_related("startup")
        .prefetch_related("investors"),
        "aisystem": content.AISystem.objects.published().select_related("hardware").prefetch_related("sources"),
        "claim": content.Claim.objects.published()
        .filter(ai_system__status=published)
        .select_related("ai_system", "hardware"),
        "hardware": content.Hardware.objects.published(),
    }


BUILDERS = {
    "conference": _conference,
    "exhibitor": _exhibitor,
    "product": _product,
    "startup": _startup,
    "investor": _investor,
    "pitch": _pitch,
    "aisystem": _ai_system,
    "claim": _claim,
    "hardware": _hardware,
}
KINDS = tuple(BUILDERS)


def passages_all() -> list[PassageDraft]:
    """A passage for every published record (what a rebuild indexes)."""
    drafts = []
    # Links in the site's default language (no prefix); the chat page puts the visitor's language in front.
    with translation.override(settings.LANGUAGE_CODE):
        for kind, queryset in _published_querysets().items():
            drafts.extend(BUILDERS[kind](record) for record in queryset.iterator(chunk_size=500))
    return drafts


def passage_for(*, kind: str, pk: int) -> PassageDraft | None:
    """The record's passage, or None when it is not (or no longer) public: a draft, deleted, or under a draft."""
    queryset = _published_querysets().get(kind)
    if queryset is None:
        return None
    record = queryset.filter(pk=pk).first()
    if record is None:
        return None
    with translation.override(settings.LANGUAGE_CODE):
        return BUILDERS[kind](record)


def related_keys(instance: Model) -> list[tuple[str, int]]:
    """Other records whose passage quotes this one (a product quotes its exhibitor's booth; a pitch its start-up)."""
    if isinstance(instance, content.Exhibitor):
        return [("product", pk) for pk in instance.products.values_list("pk", flat=True)]
    if isinstance(instance, content.Product):
        return [("exhibitor", instance.exhibitor_id)]
    if isinstance(instance, content.Startup):
        return [("pitch", pk) for pk in instance.pitches.values_list("pk", flat=True)]
    if isinstance(instance, content.Pitch):
        investors = instance.investors.values_list("pk", flat=True)
        return [("startup", instance.startup_id), *[("investor", pk) for pk in investors]]
    if isinstance(instance, content.Investor):
        return [("pitch", pk) for pk in instance.pitches.values_list("pk", flat=True)]
    if isinstance(instance, content.Source):
        return [("aisystem", instance.ai_system_id)]
    if isinstance(instance, content.Hardware):
        systems = [("aisystem", pk) for pk in instance.ai_systems.values_list("pk", flat=True)]
        claims = content.Claim.objects.filter(hardware=instance).values_list("pk", flat=True)
        return systems + [("claim", pk) for pk in claims]
    if isinstance(instance, content.AISystem):
        return [("claim", pk) for pk in instance.claims.values_list("pk", flat=True)]
    return []
