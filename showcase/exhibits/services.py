"""Writes to exhibit content: create, publish, and load the demo content. Views, the admin and commands call these.

The demo loader reads `data/demo_content.json` inside this package (never ../shared at run time). It loads once:
a `ContentLoad` row remembers it, so a restart neither duplicates rows nor undoes what staff edited or deleted.
Each earlier version of the content is kept beside it (`demo_content_v1.json`), so that a database loaded from an
earlier version is upgraded field by field: a correction reaches a demo row only where staff left the old value.
"""

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils.text import slugify

from showcase.exhibits.models import (
    AISystem,
    Category,
    Claim,
    Conference,
    ContentLoad,
    Exhibitor,
    Hardware,
    Investor,
    Pitch,
    Product,
    ProductKind,
    Publishable,
    Source,
    Startup,
    Status,
)
from showcase.exhibits.page_cache import bump_content_version

DEMO_CONTENT_PATH = Path(__file__).resolve().parent / "data" / "demo_content.json"
DEMO_CONTENT_LOAD_NAME = "demo-content-v2"


def exhibitor_create(
    *,
    name: str,
    country: str,
    hall: str = "",
    booth: str = "",
    description: str = "",
    website: str = "",
    categories: list[Category] | None = None,
    status: str = Status.DRAFT,
    is_example: bool = False,
    slug: str = "",
) -> Exhibitor:
    exhibitor = Exhibitor(name=name, slug=slug or slugify(name), country=country, hall=hall, booth=booth,
                          description=description, website=website, status=status, is_example=is_example)  # fmt: skip
    exhibitor.full_clean()
    exhibitor.save()
    if categories:
        exhibitor.categories.set(categories)
    return exhibitor


def product_create(
    *,
    exhibitor: Exhibitor,
    name: str,
    kind: str = ProductKind.OTHER,
    description: str = "",
    featured: bool = False,
    status: str = Status.DRAFT,
    is_example: bool = False,
    slug: str = "",
) -> Product:
    product = Product(exhibitor=exhibitor, name=name, slug=slug or slugify(name), kind=kind, description=description,
                      featured=featured, status=status, is_example=is_example)  # fmt: skip
    product.full_clean()
    product.save()
    return product


def content_publish(*, item: Publishable) -> Publishable:
    """Make a draft public (saving only the status, so a concurrent admin edit of other fields is kept)."""
    item.status = Status.PUBLISHED
    item.save(update_fields=["status", "updated_at"])
    return item


def content_unpublish(*, item: Publishable) -> Publishable:
    item.status = Status.DRAFT
    item.save(update_fields=["status", "updated_at"])
    return item


@dataclass
class LoadReport:
    loaded: bool
    created: dict[str, int]
    updated: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.loaded:
            return "demo content already loaded; nothing changed"
        text = "loaded demo content: " + ", ".join(f"{count} {name}" for name, count in self.created.items())
        if any(self.updated.values()):
            text += "; corrected (fields staff had not edited): " + ", ".join(
                f"{count} {name}" for name, count in self.updated.items() if count
            )
        return text


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


_MISSING = object()


@dataclass
class _Loader:
    """One run of the loader. In an upgrade (an older version of the demo content was loaded before), a row is
    created only when it is new in this version, and a field of an existing row is corrected only while it still
    holds what the older version put there (or, for a field the older version did not have, its default): what
    staff edited or deleted stays as they left it."""

    previous: dict | None
    force: bool
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    def may_create(self, *, known_before: bool) -> bool:
        return self.previous is None or self.force or not known_before

    def sync(self, model, *, label: str, lookup: dict, values: dict, old: dict | None, create_extra: dict):
        """Create the row, or correct the fields staff left as the previous version loaded them."""
        row = model.objects.filter(**lookup).first()
        if row is None:
            if not self.may_create(known_before=old is not None):
                return None
            row = model.objects.create(**lookup, **values, **create_extra)
            self.created[label] = self.created.get(label, 0) + 1
            return row
        if self.previous is None or old is None:
            return row  # a first load or --force leaves existing rows alone; so does an upgrade for rows it never made
        changed = []
        for name, new_value in values.items():
            model_field = model._meta.get_field(name)
            current = getattr(row, name)
            before = (old or {}).get(name, _MISSING)
            if before is _MISSING:
                untouched = _same(model_field, current, model_field.get_default())
            else:
                untouched = _same(model_field, current, before)
            if untouched and not _same(model_field, current, new_value):
                setattr(row, name, new_value)
                changed.append(name)
        if changed:
            row.save(update_fields=[*changed, *(["updated_at"] if hasattr(row, "updated_at") else [])])
            self.updated[label] = self.updated.get(label, 0) + 1
        return row


def _same(model_field, left, right) -> bool:
    if model_field.is_relation:
        return getattr(left, "pk", left) == getattr(right, "pk", right)
    if left is None or right is None:
        return left is None and right is None
    return model_field.to_python(left) == model_field.to_python(right)


DEMO_CONTENT_DIR = DEMO_CONTENT_PATH.parent
# Every version of the demo content ever loaded, oldest first; the last is the current one.
DEMO_CONTENT_VERSIONS = [("demo-content-v1", DEMO_CONTENT_DIR / "demo_content_v1.json"),
                         (DEMO_CONTENT_LOAD_NAME, DEMO_CONTENT_PATH)]  # fmt: skip


def _conference_values(row: dict) -> dict:
    values = dict(row)
    values.pop("slug")
    # Version 1 had one flag for all headline figures; migration 0002 turned it into this list.
    if "figures_are_minimums" in values:
        flag = values.pop("figures_are_minimums")
        values["minimum_figures"] = list(Conference.HEADLINE_FIGURES) if flag else []
    values["starts_on"] = date.fromisoformat(values["starts_on"])
    values["ends_on"] = date.fromisoformat(values["ends_on"])
    return values


def _hardware_values(row: dict) -> dict:
    values = dict(row)
    values.pop("slug")
    for key in ("memory_bandwidth_tb_s", "bf16_tflops", "fp8_tflops", "hourly_price_usd"):
        if key in values:
            values[key] = _decimal(values[key])
    return values


def _ai_system_values(row: dict, hardware: dict, exhibitors: dict) -> dict:
    values = {key: value for key, value in row.items() if key not in ("slug", "sources", "claims")}
    values["hardware"] = hardware.get(values["hardware"]) if values.get("hardware") else None
    values["exhibitor"] = exhibitors.get(values["exhibitor"]) if values.get("exhibitor") else None
    values["released_on"] = date.fromisoformat(values["released_on"])
    for key in ("parameters_billions", "parameters_active_billions", "training_cost_low_usd", "training_cost_high_usd"):
        if key in values:
            values[key] = _decimal(values[key])
    return values


def _claim_values(row: dict, hardware: dict) -> dict:
    values = {key: value for key, value in row.items() if key != "claimant"}
    values["hardware"] = hardware.get(values["hardware"]) if values.get("hardware") else None
    for key in ("cost_usd", "rival_cost_low_usd", "rival_cost_high_usd"):
        values[key] = _decimal(values[key])
    return values


def _source_values(row: dict, position: int) -> dict:
    values = {"url": row["url"], "figures": row["figures"], "position": position}
    if "publisher" in row:
        values["publisher"] = row["publisher"]
    return values


def demo_content_load(*, path: Path = DEMO_CONTENT_PATH, force: bool = False) -> LoadReport:
    """Load the conference, hardware, AI systems with sources, and the example exhibits, start-ups and pitches.

    The first run creates every row. Later runs change nothing, so staff edits and deletions survive restarts;
    `force` brings back deleted demo rows (existing rows are still left as staff edited them). When the demo
    content has a new version (corrected figures, new fields), the next run upgrades: rows new in this version are
    created, and a demo row's field is corrected only if it still holds what the previous version loaded.
    """
    with transaction.atomic():
        loaded_names = set(ContentLoad.objects.values_list("name", flat=True))
        if DEMO_CONTENT_LOAD_NAME in loaded_names and not force:
            return LoadReport(loaded=False, created={})
        previous = None
        if DEMO_CONTENT_LOAD_NAME not in loaded_names:
            older = [version_path for name, version_path in DEMO_CONTENT_VERSIONS[:-1] if name in loaded_names]
            if older:
                previous = json.loads(older[-1].read_text(encoding="utf-8"))
        content = json.loads(path.read_text(encoding="utf-8"))
        loader = _Loader(previous=previous, force=force)
        loader.created = {name: 0 for name in ("conferences", "hardware", "AI systems", "sources", "claims",
                                               "categories", "exhibitors", "products", "start-ups", "investors",
                                               "pitches")}  # fmt: skip
        published = {"status": Status.PUBLISHED}
        before = previous or {}

        def previous_row(section: str, key: str, value: str) -> dict | None:
            return next((row for row in before.get(section, []) if row.get(key) == value), None)

        conference = content["conference"]
        old_conference = (
            before.get("conference") if before.get("conference", {}).get("slug") == conference["slug"] else None
        )
        loader.sync(Conference, label="conferences", lookup={"slug": conference["slug"]},
                    values=_conference_values(conference),
                    old=_conference_values(old_conference) if old_conference else None,
                    create_extra=published)  # fmt: skip

        for row in content["hardware"]:
            old = previous_row("hardware", "slug", row["slug"])
            loader.sync(Hardware, label="hardware", lookup={"slug": row["slug"]}, values=_hardware_values(row),
                        old=_hardware_values(old) if old else None, create_extra=published)  # fmt: skip
        hardware_by_slug = {h.slug: h for h in Hardware.objects.all()}

        categories = {}
        for row in content["categories"]:
            category = Category.objects.filter(slug=row["slug"]).first()
            if category is None and loader.may_create(known_before=previous_row("categories", "slug", row["slug"])
                                                      is not None):  # fmt: skip
                category = Category.objects.create(slug=row["slug"], name=row["name"])
                loader.created["categories"] += 1
            if category is not None:
                categories[category.slug] = category

        for row in content["exhibitors"]:
            row = dict(row)
            products = row.pop("products")
            category_slugs = row.pop("categories")
            slug = row.pop("slug")
            exhibitor = Exhibitor.objects.filter(slug=slug).first()
            old = previous_row("exhibitors", "slug", slug)
            if exhibitor is None and loader.may_create(known_before=old is not None):
                exhibitor = Exhibitor.objects.create(slug=slug, **{"is_example": True, **row, **published})
                exhibitor.categories.set([categories[c] for c in category_slugs if c in categories])
                loader.created["exhibitors"] += 1
            if exhibitor is None:
                continue
            old_products = {p["slug"] for p in (old or {}).get("products", [])}
            for position, product_row in enumerate(products):
                product_row = dict(product_row)
                product_slug = product_row.pop("slug")
                if Product.objects.filter(exhibitor=exhibitor, slug=product_slug).exists():
                    continue
                if not loader.may_create(known_before=product_slug in old_products):
                    continue
                Product.objects.create(exhibitor=exhibitor, slug=product_slug, **product_row, **published,
                                       is_example=exhibitor.is_example, position=position)  # fmt: skip
                loader.created["products"] += 1
        exhibitors = {e.slug: e for e in Exhibitor.objects.filter(slug__in=[r["slug"] for r in content["exhibitors"]])}

        for row in content["ai_systems"]:
            old = previous_row("ai_systems", "slug", row["slug"])
            system = loader.sync(AISystem, label="AI systems", lookup={"slug": row["slug"]},
                                 values=_ai_system_values(row, hardware_by_slug, exhibitors),
                                 old=_ai_system_values(old, hardware_by_slug, exhibitors) if old else None,
                                 create_extra=published)  # fmt: skip
            if system is None:
                continue
            old_sources = (old or {}).get("sources", [])
            for position, source_row in enumerate(row["sources"]):
                old_source = next((s for s in old_sources if s["title"] == source_row["title"]), None)
                old_position = old_sources.index(old_source) if old_source else 0
                loader.sync(Source, label="sources", lookup={"ai_system": system, "title": source_row["title"]},
                            values=_source_values(source_row, position),
                            old=_source_values(old_source, old_position) if old_source else None,
                            create_extra={})  # fmt: skip
            old_claims = (old or {}).get("claims", [])
            for claim_row in row.get("claims", []):
                old_claim = next((c for c in old_claims if c["claimant"] == claim_row["claimant"]), None)
                loader.sync(Claim, label="claims", lookup={"ai_system": system, "claimant": claim_row["claimant"]},
                            values=_claim_values(claim_row, hardware_by_slug),
                            old=_claim_values(old_claim, hardware_by_slug) if old_claim else None,
                            create_extra=published)  # fmt: skip

        startups = {}
        for row in content["startups"]:
            row = dict(row)
            slug = row.pop("slug")
            startup = Startup.objects.filter(slug=slug).first()
            if startup is None and loader.may_create(known_before=previous_row("startups", "slug", slug) is not None):
                startup = Startup.objects.create(slug=slug, **{"is_example": True, **row, **published})
                loader.created["start-ups"] += 1
            if startup is not None:
                startups[slug] = startup
        investors = {}
        for row in content["investors"]:
            row = dict(row)
            slug = row.pop("slug")
            investor = Investor.objects.filter(slug=slug).first()
            if investor is None and loader.may_create(known_before=previous_row("investors", "slug", slug) is not None):
                investor = Investor.objects.create(slug=slug, **{"is_example": True, **row, **published})
                loader.created["investors"] += 1
            if investor is not None:
                investors[slug] = investor
        for row in content["pitches"]:
            if row["startup"] not in startups:
                continue
            starts_at = datetime.fromisoformat(row["starts_at"])
            if Pitch.objects.filter(startup=startups[row["startup"]], starts_at=starts_at).exists():
                continue
            if not loader.may_create(known_before=previous_row("pitches", "key", row["key"]) is not None):
                continue
            pitch = Pitch.objects.create(startup=startups[row["startup"]], starts_at=starts_at, title=row["title"],
                                         duration_minutes=row["duration_minutes"], room=row["room"],
                                         state=row["state"], is_example=True, **published)  # fmt: skip
            pitch.investors.set([investors[slug] for slug in row["investors"] if slug in investors])
            loader.created["pitches"] += 1

        for name, _version_path in DEMO_CONTENT_VERSIONS:
            ContentLoad.objects.get_or_create(name=name)
    return LoadReport(loaded=True, created=loader.created, updated=loader.updated)


COUNTRIES_FOR_VOLUME = ["China", "France", "Germany", "Japan", "Singapore", "United States", "United Kingdom",
                        "South Korea", "Canada", "Italy"]  # fmt: skip


def exhibitor_volume_generate(*, exhibitors: int, products: int) -> tuple[int, int]:
    """Add published example exhibitors and products in bulk (for the benchmark): WAIC's 800 and 3,000.

    Idempotent per name: exhibitors `volume-exhibitor-NNNN` already present are not created again.
    """
    categories = list(Category.objects.all()) or [Category.objects.create(name="Robotics", slug="robotics")]
    existing = set(Exhibitor.objects.filter(slug__startswith="volume-exhibitor-").values_list("slug", flat=True))
    new = [
        Exhibitor(name=f"Example exhibitor {index:04d}", slug=f"volume-exhibitor-{index:04d}",
                  country=COUNTRIES_FOR_VOLUME[index % len(COUNTRIES_FOR_VOLUME)], hall=f"H{index % 4 + 1}",
                  booth=f"V-{index:04d}", is_example=True, status=Status.PUBLISHED,
                  description=f"Example exhibitor number {index} for load testing: robots, chips and models.")
        for index in range(exhibitors)
        if f"volume-exhibitor-{index:04d}" not in existing
    ]  # fmt: skip
    with transaction.atomic():
        Exhibitor.objects.bulk_create(new, batch_size=500)
        volume = list(Exhibitor.objects.filter(slug__startswith="volume-exhibitor-").order_by("slug"))
        through = Exhibitor.categories.through
        created_slugs = {exhibitor.slug for exhibitor in new}
        through.objects.bulk_create(
            [
                through(exhibitor_id=exhibitor.pk, category_id=categories[index % len(categories)].pk)
                for index, exhibitor in enumerate(volume)
                if exhibitor.slug in created_slugs
            ],
            batch_size=500,
        )
        kinds = [choice for choice, _label in ProductKind.choices]
        new_products = []
        if not Product.objects.filter(exhibitor__in=volume).exists():
            new_products = [
                Product(exhibitor=volume[index % len(volume)], name=f"Example product {index:04d}",
                        slug=f"volume-product-{index:04d}", kind=kinds[index % len(kinds)], is_example=True,
                        status=Status.PUBLISHED, featured=index % 500 == 0, position=index,
                        description="An example product for load testing.")
                for index in range(products)
            ]  # fmt: skip
            Product.objects.bulk_create(new_products, batch_size=500)
    # bulk_create sends no post_save signal: tell the page cache ourselves.
    transaction.on_commit(bump_content_version)
    return len(new), len(new_products)
