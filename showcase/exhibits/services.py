"""Writes to exhibit content: create, publish, and load the demo content. Views, the admin and commands call these.

The demo loader reads `data/demo_content.json` inside this package (never ../shared at run time). It loads once:
a `ContentLoad` row remembers it, so a restart neither duplicates rows nor undoes what staff edited or deleted.
"""

import json
from dataclasses import dataclass
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
DEMO_CONTENT_LOAD_NAME = "demo-content-v1"


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

    def summary(self) -> str:
        if not self.loaded:
            return "demo content already loaded; nothing changed"
        return "loaded demo content: " + ", ".join(f"{count} {name}" for name, count in self.created.items())


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def demo_content_load(*, path: Path = DEMO_CONTENT_PATH, force: bool = False) -> LoadReport:
    """Load the conference, hardware, AI systems with sources, and the example exhibitors, start-ups and pitches.

    Rows are matched by slug and only created when missing, so running it again changes nothing; with
    `force`, rows deleted since the first load come back (existing rows are still left as staff edited them).
    """
    with transaction.atomic():
        if ContentLoad.objects.filter(name=DEMO_CONTENT_LOAD_NAME).exists() and not force:
            return LoadReport(loaded=False, created={})
        content = json.loads(path.read_text(encoding="utf-8"))
        created = {name: 0 for name in ("conferences", "hardware", "AI systems", "sources", "claims", "categories",
                                        "exhibitors", "products", "start-ups", "investors", "pitches")}  # fmt: skip
        published = {"status": Status.PUBLISHED}

        conference = dict(content["conference"])
        conference["starts_on"] = date.fromisoformat(conference["starts_on"])
        conference["ends_on"] = date.fromisoformat(conference["ends_on"])
        _, made = Conference.objects.get_or_create(slug=conference.pop("slug"), defaults={**conference, **published})
        created["conferences"] += made

        hardware_by_slug = {}
        for row in content["hardware"]:
            row = dict(row)
            for key in ("memory_bandwidth_tb_s", "bf16_tflops", "hourly_price_usd"):
                row[key] = _decimal(row[key])
            hardware, made = Hardware.objects.get_or_create(slug=row.pop("slug"), defaults={**row, **published})
            hardware_by_slug[hardware.slug] = hardware
            created["hardware"] += made

        categories = {}
        for row in content["categories"]:
            category, made = Category.objects.get_or_create(slug=row["slug"], defaults={"name": row["name"]})
            categories[category.slug] = category
            created["categories"] += made

        exhibitors = {}
        for row in content["exhibitors"]:
            row = dict(row)
            products = row.pop("products")
            category_slugs = row.pop("categories")
            exhibitor, made = Exhibitor.objects.get_or_create(
                slug=row.pop("slug"), defaults={"is_example": True, **row, **published}
            )
            exhibitors[exhibitor.slug] = exhibitor
            if made:
                exhibitor.categories.set([categories[slug] for slug in category_slugs])
                created["exhibitors"] += 1
            for position, product_row in enumerate(products):
                product_row = dict(product_row)
                _, made = Product.objects.get_or_create(
                    exhibitor=exhibitor,
                    slug=product_row.pop("slug"),
                    defaults={**product_row, **published, "is_example": exhibitor.is_example, "position": position},
                )
                created["products"] += made

        for row in content["ai_systems"]:
            row = dict(row)
            sources = row.pop("sources")
            claims = row.pop("claims", [])
            row["hardware"] = hardware_by_slug.get(row["hardware"]) if row.get("hardware") else None
            row["exhibitor"] = exhibitors.get(row["exhibitor"]) if row.get("exhibitor") else None
            row["released_on"] = date.fromisoformat(row["released_on"])
            for key in ("parameters_billions", "training_cost_low_usd", "training_cost_high_usd"):
                row[key] = _decimal(row[key])
            system, made = AISystem.objects.get_or_create(slug=row.pop("slug"), defaults={**row, **published})
            created["AI systems"] += made
            for position, source_row in enumerate(sources):
                _, made = Source.objects.get_or_create(
                    ai_system=system,
                    title=source_row["title"],
                    defaults={"url": source_row["url"], "figures": source_row["figures"], "position": position},
                )
                created["sources"] += made
            for claim_row in claims:
                claim_row = dict(claim_row)
                claim_row["hardware"] = hardware_by_slug.get(claim_row["hardware"])
                for key in ("cost_usd", "rival_cost_low_usd", "rival_cost_high_usd"):
                    claim_row[key] = _decimal(claim_row[key])
                _, made = Claim.objects.get_or_create(
                    ai_system=system, claimant=claim_row.pop("claimant"), defaults={**claim_row, **published}
                )
                created["claims"] += made

        startups = {}
        for row in content["startups"]:
            row = dict(row)
            startup, made = Startup.objects.get_or_create(
                slug=row.pop("slug"), defaults={"is_example": True, **row, **published}
            )
            startups[startup.slug] = startup
            created["start-ups"] += made
        investors = {}
        for row in content["investors"]:
            row = dict(row)
            investor, made = Investor.objects.get_or_create(
                slug=row.pop("slug"), defaults={"is_example": True, **row, **published}
            )
            investors[investor.slug] = investor
            created["investors"] += made
        for row in content["pitches"]:
            pitch, made = Pitch.objects.get_or_create(
                startup=startups[row["startup"]],
                starts_at=datetime.fromisoformat(row["starts_at"]),
                defaults={"title": row["title"], "duration_minutes": row["duration_minutes"], "room": row["room"],
                          "state": row["state"], "is_example": True, **published},
            )  # fmt: skip
            if made:
                pitch.investors.set([investors[slug] for slug in row["investors"]])
                created["pitches"] += 1

        ContentLoad.objects.get_or_create(name=DEMO_CONTENT_LOAD_NAME)
    return LoadReport(loaded=True, created=created)


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
