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


def _database_loaded_with_version_1() -> None:
    """A database as a site running the first version of the demo content left it (after migration 0002)."""
    from showcase.exhibits.models import ContentLoad

    services.demo_content_load(path=services.DEMO_CONTENT_DIR / "demo_content_v1.json")
    ContentLoad.objects.filter(name=services.DEMO_CONTENT_LOAD_NAME).delete()


def test_an_upgrade_corrects_the_demo_fields_staff_left_and_keeps_their_edits():
    """On a database loaded from version 1, the next start corrects demo figures staff never touched (DeepSeek-V3's
    compute becomes "derived" with its formula, the companies lose "more than"), keeps every field staff edited,
    does not bring back what they deleted, and changes nothing on the run after."""
    from showcase.exhibits.models import Claim

    _database_loaded_with_version_1()
    AISystem.objects.filter(slug="deepseek-v3").update(training_compute_note="staff: checked against the report")
    AISystem.objects.filter(slug="llama-3-1-405b").update(training_cost_note="staff wording")
    Exhibitor.objects.filter(slug="merlion-cloud").delete()
    assert Conference.objects.get().minimum_figures == Conference.HEADLINE_FIGURES

    report = services.demo_content_load()
    assert report.loaded and report.updated["AI systems"] >= 8 and report.created["exhibitors"] == 0
    deepseek = AISystem.objects.get(slug="deepseek-v3")
    assert (deepseek.training_compute_kind, deepseek.training_cost_kind) == ("derived", "disclosed")
    assert deepseek.training_compute_derivation.startswith("6 × 37B active parameters × 14.8T tokens")
    assert deepseek.training_compute_note == "staff: checked against the report"  # edited: kept
    assert (deepseek.training_precision, deepseek.parameters_active_billions) == ("fp8", 37)
    llama = AISystem.objects.get(slug="llama-3-1-405b")
    assert llama.training_cost_note == "staff wording" and llama.training_cost_basis == "Epoch AI, cloud rates"
    assert Source.objects.get(ai_system=llama, title="Epoch AI, Notable AI Models").publisher == "third_party"
    assert Hardware.objects.get(slug="nvidia-h800-sxm").fp8_tflops == 1979
    assert "companies" not in Conference.objects.get().minimum_figures
    assert Claim.objects.get().source_url.startswith("https://")
    assert not Exhibitor.objects.filter(slug="merlion-cloud").exists()
    assert not services.demo_content_load().loaded


def test_an_upgrade_leaves_a_figure_staff_relabelled():
    """A label staff changed themselves is theirs: the upgrade does not overwrite it with the new version's."""
    _database_loaded_with_version_1()
    AISystem.objects.filter(slug="deepseek-v3").update(training_cost_kind="estimated", training_cost_note="staff")
    AISystem.objects.filter(slug="deepseek-r1").update(training_cost_kind="estimated")  # v1 said disclosed
    services.demo_content_load()
    assert AISystem.objects.get(slug="deepseek-r1").training_cost_kind == "estimated"
    # DeepSeek-V3's kind was v1's "estimated" as loaded, so it is corrected; its edited note stays.
    deepseek = AISystem.objects.get(slug="deepseek-v3")
    assert (deepseek.training_cost_kind, deepseek.training_cost_note) == ("disclosed", "staff")
