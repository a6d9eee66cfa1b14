"""The demo-content loader: loads once, changes nothing when run again, never undoes a staff edit."""

import pytest
from django.core.management import call_command

from showcase.exhibits import services
from showcase.exhibits.models import AISystem, Conference, Exhibitor, Hardware, Source

pytestmark = pytest.mark.django_db

MODELS = (Conference, Hardware, AISystem, Source, Exhibitor)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def test_loader_brings_the_ai_systems_hardware_and_conference():
    """The loader fills the ten AI systems, six chips and WAIC 2025, all published, with sources."""
    report = services.demo_content_load()
    assert report.loaded
    assert counts() == {"Conference": 1, "Hardware": 6, "AISystem": 10, "Source": 18, "Exhibitor": 8}
    deepseek = AISystem.objects.get(slug="deepseek-v3")
    assert (deepseek.gpu_hours, deepseek.chip_count, deepseek.hardware.name) == (2788000, 2048, "H800 SXM")
    assert deepseek.training_cost_low_usd == 5576000 and deepseek.scope_note.startswith("Final training run only")
    assert Hardware.objects.get(slug="nvidia-h800-sxm").interconnect_gb_s == 400
    assert all(system.sources.exists() for system in AISystem.objects.all())


def test_loader_run_twice_changes_nothing(capsys):
    """Running the command a second time creates nothing and says so."""
    call_command("load_demo_content")
    before = counts()
    updated = {system.pk: system.updated_at for system in AISystem.objects.all()}
    call_command("load_demo_content")
    assert counts() == before
    assert {system.pk: system.updated_at for system in AISystem.objects.all()} == updated
    assert "nothing changed" in capsys.readouterr().out


def test_loader_keeps_staff_edits_and_deletions():
    """After staff edit or delete demo rows, a restart's load leaves them as staff left them."""
    services.demo_content_load()
    Hardware.objects.filter(slug="nvidia-h100-sxm").update(hourly_price_usd="3.10")
    Exhibitor.objects.filter(slug="merlion-cloud").delete()
    services.demo_content_load()
    assert str(Hardware.objects.get(slug="nvidia-h100-sxm").hourly_price_usd) == "3.10"
    assert not Exhibitor.objects.filter(slug="merlion-cloud").exists()
    services.demo_content_load(force=True)  # forced: deleted examples come back, edits still stay
    assert Exhibitor.objects.filter(slug="merlion-cloud").exists()
    assert str(Hardware.objects.get(slug="nvidia-h100-sxm").hourly_price_usd) == "3.10"


def test_examples_are_marked_as_examples():
    """Invented exhibitors, start-ups and pitches are flagged as examples; this demo's own booth is not."""
    services.demo_content_load()
    assert Exhibitor.objects.get(slug="huangpu-robotics").is_example
    assert not Exhibitor.objects.get(slug="showcase-demo-booth").is_example


def test_volume_generator_reaches_waic_size_once():
    """The benchmark's generator creates 800 exhibitors and 3,000 products, and nothing more on a second run."""
    assert services.exhibitor_volume_generate(exhibitors=800, products=3000) == (800, 3000)
    assert services.exhibitor_volume_generate(exhibitors=800, products=3000) == (0, 0)
    assert Exhibitor.objects.count() == 800
