"""The staff's admin: create, edit and publish through forms; image uploads refused with clear reasons."""

import io
import os

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from showcase.exhibits.models import AISystem, Category, Exhibitor, Source, Status

pytestmark = pytest.mark.django_db


def exhibitor_form(**overrides) -> dict:
    data = {
        "name": "Pearl River Robotics",
        "slug": "pearl-river-robotics",
        "country": "China",
        "hall": "H1",
        "booth": "B-1",
        "description": "Robots.",
        "website": "https://example.com",
        "status": Status.DRAFT,
        "products-TOTAL_FORMS": "1",
        "products-INITIAL_FORMS": "0",
        "products-MIN_NUM_FORMS": "0",
        "products-MAX_NUM_FORMS": "1000",
        "products-0-name": "Dock Walker",
        "products-0-slug": "dock-walker",
        "products-0-kind": "robot",
        "products-0-status": Status.PUBLISHED,
        "products-0-position": "0",
        "products-0-description": "Walks docks.",
    }
    data.update(overrides)
    return data


def image_bytes(image_format: str, size: tuple[int, int] = (8, 8), noise: bool = False) -> bytes:
    buffer = io.BytesIO()
    if noise:
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    else:
        image = Image.new("RGB", size, (200, 16, 46))
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def test_staff_creates_an_exhibitor_with_a_product_then_publishes_it(staff_client, client):
    """Staff add an exhibitor with a product inline as a draft (hidden), then publish it (shown)."""
    response = staff_client.post("/admin/exhibits/exhibitor/add/", exhibitor_form())
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    exhibitor = Exhibitor.objects.get(slug="pearl-river-robotics")
    assert exhibitor.products.get().name == "Dock Walker"
    staff_client.logout()
    assert client.get("/exhibitors/pearl-river-robotics/").status_code == 404

    staff_client.force_login(get_user_model().objects.get(username="booth-staff"))
    response = staff_client.post(
        "/admin/exhibits/exhibitor/", {"action": "publish_selected", "_selected_action": [exhibitor.pk]}
    )
    assert response.status_code == 302
    exhibitor.refresh_from_db()
    assert exhibitor.status == Status.PUBLISHED
    assert "Dock Walker" in client.get("/exhibitors/pearl-river-robotics/").content.decode()


def test_staff_edit_is_recorded_in_the_history(staff_client):
    """An edit through the admin changes the row and appears in the object's history."""
    staff_client.post("/admin/exhibits/exhibitor/add/", exhibitor_form())
    exhibitor = Exhibitor.objects.get(slug="pearl-river-robotics")
    data = exhibitor_form(name="Pearl River Robotics Ltd", **{"products-TOTAL_FORMS": "0"})
    response = staff_client.post(f"/admin/exhibits/exhibitor/{exhibitor.pk}/change/", data)
    assert response.status_code == 302
    exhibitor.refresh_from_db()
    assert exhibitor.name == "Pearl River Robotics Ltd"
    history = staff_client.get(f"/admin/exhibits/exhibitor/{exhibitor.pk}/history/").content.decode()
    assert "Changed Name" in history or "Changed name" in history


def test_staff_add_sources_inline_with_the_figures_they_back(staff_client):
    """An AI system saved with a source inline keeps which figures that source backs."""
    data = {
        "name": "Test-1",
        "slug": "test-1",
        "status": Status.DRAFT,
        "organisation": "Lab",
        "released_on": "2025-01-01",
        "parameters_kind": "disclosed",
        "chip_count_kind": "estimated",
        "gpu_hours_kind": "disclosed",
        "training_compute_kind": "estimated",
        "training_cost_kind": "estimated",
        "gpu_hours": "1000",
        "sources-TOTAL_FORMS": "1",
        "sources-INITIAL_FORMS": "0",
        "sources-MIN_NUM_FORMS": "0",
        "sources-MAX_NUM_FORMS": "1000",
        "sources-0-title": "Tech report",
        "sources-0-url": "https://example.com/r",
        "sources-0-figures": ["gpu_hours", "chips"],
        "sources-0-position": "0",
        "sources-0-publisher": "developer",
        "claims-TOTAL_FORMS": "0",
        "claims-INITIAL_FORMS": "0",
        "claims-MIN_NUM_FORMS": "0",
        "claims-MAX_NUM_FORMS": "1000",
    }
    response = staff_client.post("/admin/exhibits/aisystem/add/", data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    source = Source.objects.get(ai_system=AISystem.objects.get(slug="test-1"))
    assert sorted(source.figures) == ["chips", "gpu_hours"]


def test_every_admin_list_opens_for_staff(staff_client, demo_content):
    """Each content list in the admin answers 200 for staff, with search and filters applied."""
    for model in (
        "conference",
        "category",
        "exhibitor",
        "product",
        "hardware",
        "aisystem",
        "startup",
        "investor",
        "pitch",
        "contentload",
    ):
        assert staff_client.get(f"/admin/exhibits/{model}/", {"q": "a"}).status_code == 200, model
    assert (
        staff_client.get("/admin/exhibits/exhibitor/", {"country": "China", "status__exact": "published"}).status_code
        == 200
    )


def test_non_staff_user_gets_no_admin_page(client, db):
    """A signed-in visitor without staff status is sent to the admin login, never shown an admin page."""
    user = get_user_model().objects.create_user("visitor", password="wide-Cormorant-58-lantern")
    client.force_login(user)
    for path in ("/admin/", "/admin/exhibits/exhibitor/", "/admin/exhibits/exhibitor/add/"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], path


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (SimpleUploadedFile("logo.png", b"<html><script>alert(1)</script></html>", "image/png"), "valid image"),
        (
            SimpleUploadedFile("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>', "image/svg+xml"),
            "valid image",
        ),
        (SimpleUploadedFile("logo.bmp", image_bytes("BMP"), "image/bmp"), "BMP images are not accepted"),
    ],
    ids=["html-renamed-png", "svg", "bmp"],
)
def test_admin_refuses_uploads_that_are_not_web_images(staff_client, upload, message):
    """A logo that is not a real JPEG/PNG/WebP/GIF is refused with a message, and nothing is saved."""
    response = staff_client.post("/admin/exhibits/exhibitor/add/", {**exhibitor_form(), "logo": upload})
    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors["logo"])
    assert not Exhibitor.objects.exists()


def test_admin_refuses_an_image_over_5_mb(staff_client):
    """A real PNG of more than 5 MB is refused, and the message gives its size and the limit."""
    big = image_bytes("PNG", size=(1400, 1400), noise=True)
    assert len(big) > 5 * 1024 * 1024
    upload = SimpleUploadedFile("big.png", big, "image/png")
    response = staff_client.post("/admin/exhibits/exhibitor/add/", {**exhibitor_form(), "logo": upload})
    assert "the limit is 5 MB" in str(response.context["adminform"].form.errors["logo"])


def test_admin_accepts_a_real_png_logo(staff_client, settings, tmp_path):
    """A small real PNG is accepted and stored under MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("logo.png", image_bytes("PNG"), "image/png")
    response = staff_client.post("/admin/exhibits/exhibitor/add/", {**exhibitor_form(), "logo": upload})
    assert response.status_code == 302
    logo = Exhibitor.objects.get().logo
    assert logo.name.startswith("exhibitors/logos/") and (tmp_path / logo.name).exists()


def test_javascript_website_is_refused(staff_client):
    """A website field holding a javascript: address is refused."""
    response = staff_client.post("/admin/exhibits/exhibitor/add/", exhibitor_form(website="javascript:alert(1)"))
    assert response.status_code == 200
    assert "website" in response.context["adminform"].form.errors
    assert not Category.objects.exists() and not Exhibitor.objects.exists()


def test_staff_tick_which_conference_figures_the_source_gives_as_minimums(staff_client, client, demo_content):
    """The conference form shows one box per headline figure; unticking "products" makes the home page read 3,000
    instead of "more than 3,000"."""
    from django.forms.models import model_to_dict

    from showcase.exhibits.models import Conference

    conference = Conference.objects.get()
    url = f"/admin/exhibits/conference/{conference.pk}/change/"
    form = staff_client.get(url).content.decode()
    assert form.count('name="minimum_figures"') == len(Conference.HEADLINE_FIGURES)
    data = {key: value for key, value in model_to_dict(conference).items() if value is not None and key != "id"}
    data["minimum_figures"] = [name for name in conference.minimum_figures if name != "products"]
    assert staff_client.post(url, data).status_code == 302
    body = client.get("/").content.decode()
    assert "<strong>3,000</strong>" in body and "more than 1,200" in body
