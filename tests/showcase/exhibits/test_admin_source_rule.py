"""The admin rule: a figure without a source cannot be published."""

from showcase.exhibits.models import AISystem, Source, Status


def _change_form_data(system: AISystem, **overrides) -> dict:
    data = {
        "name": system.name, "slug": system.slug, "status": system.status, "organisation": system.organisation,
        "released_on": str(system.released_on), "summary": system.summary, "parameters_label": "",
        "parameters_billions": "", "parameters_kind": "disclosed", "hardware": "", "chip_count": "",
        "chip_count_kind": "estimated", "chip_count_note": "", "gpu_hours": "", "gpu_hours_kind": "disclosed",
        "gpu_hours_note": "", "training_compute_flop": "", "training_compute_kind": "estimated",
        "training_compute_note": "", "training_cost_low_usd": "", "training_cost_high_usd": "",
        "training_cost_kind": "estimated", "training_cost_note": "", "scope_note": "",
        "sources-TOTAL_FORMS": "0", "sources-INITIAL_FORMS": "0", "sources-MIN_NUM_FORMS": "0",
        "sources-MAX_NUM_FORMS": "1000", "claims-TOTAL_FORMS": "0", "claims-INITIAL_FORMS": "0",
        "claims-MIN_NUM_FORMS": "0", "claims-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    data.update(overrides)
    return data


def _new_system(**fields) -> AISystem:
    return AISystem.objects.create(name="Example-1", slug="example-1", organisation="Example Lab",
                                   released_on="2025-01-01", **fields)  # fmt: skip


def test_publishing_an_unsourced_figure_is_refused_with_a_clear_message(staff_client):
    """Staff who publish a system with GPU-hours but no source are told which figure lacks one; nothing is saved."""
    system = _new_system()
    response = staff_client.post(f"/admin/exhibits/aisystem/{system.pk}/change/",
                                 _change_form_data(system, status=Status.PUBLISHED, gpu_hours="1000"))  # fmt: skip
    assert response.status_code == 200
    html = response.content.decode()
    assert "A figure without a source cannot be published. No source backs: GPU-hours." in html
    system.refresh_from_db()
    assert (system.status, system.gpu_hours) == (Status.DRAFT, None)


def test_a_source_that_backs_the_figure_lets_it_publish(staff_client):
    """The same save with a source ticked for GPU-hours publishes."""
    system = _new_system()
    data = _change_form_data(system, status=Status.PUBLISHED, gpu_hours="1000", **{
        "sources-TOTAL_FORMS": "1", "sources-0-title": "Example report", "sources-0-url": "https://example.org/r",
        "sources-0-figures": ["gpu_hours"], "sources-0-position": "0", "sources-0-publisher": "developer"})  # fmt: skip
    response = staff_client.post(f"/admin/exhibits/aisystem/{system.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    system.refresh_from_db()
    assert system.status == Status.PUBLISHED


def test_a_draft_may_keep_unsourced_figures(staff_client):
    """Staff can save work in progress: a draft with an unsourced figure is saved."""
    system = _new_system()
    response = staff_client.post(f"/admin/exhibits/aisystem/{system.pk}/change/",
                                 _change_form_data(system, gpu_hours="1000"))  # fmt: skip
    assert response.status_code == 302
    system.refresh_from_db()
    assert system.gpu_hours == 1000


def test_the_publish_action_skips_unsourced_systems(staff_client):
    """The list's publish action publishes sourced systems and names the unsourced ones it left as drafts."""
    unsourced = _new_system(training_compute_flop=1e22)
    sourced = AISystem.objects.create(name="Example-2", slug="example-2", organisation="Example Lab",
                                      released_on="2025-01-01", training_compute_flop=1e22)  # fmt: skip
    Source.objects.create(ai_system=sourced, title="Example paper", url="https://example.org/p", figures=[],
                          publisher="third_party")  # the compute is labelled estimated: a third party's  # fmt: skip
    response = staff_client.post("/admin/exhibits/aisystem/", {"action": "publish_selected",
                                 "_selected_action": [unsourced.pk, sourced.pk]}, follow=True)  # fmt: skip
    assert "Example-1: A figure without a source cannot be published. No source backs: Training compute." in (
        response.content.decode()
    )
    assert AISystem.objects.get(pk=unsourced.pk).status == Status.DRAFT
    assert AISystem.objects.get(pk=sourced.pk).status == Status.PUBLISHED


def test_the_demo_content_obeys_the_rule(demo_content):
    """Every published demo system has a source for each of its figures, so staff can edit and save any of them."""
    from showcase.exhibits.selectors import ai_system_unsourced_figures

    for system in AISystem.objects.published().prefetch_related("sources"):
        assert ai_system_unsourced_figures(system=system, sources=list(system.sources.all())) == [], system.slug


def test_publishing_a_computed_cost_labelled_disclosed_is_refused(staff_client):
    """A cost with a formula (our arithmetic) cannot be published as "disclosed": staff are told the label rule."""
    system = _new_system()
    data = _change_form_data(system, status=Status.PUBLISHED, training_cost_low_usd="4000000",
                             training_cost_kind="disclosed", training_cost_derivation="2M GPU-hours × $2", **{
        "sources-TOTAL_FORMS": "1", "sources-0-title": "Example report", "sources-0-url": "https://example.org/r",
        "sources-0-figures": ["training_cost"], "sources-0-position": "0",
        "sources-0-publisher": "developer"})  # fmt: skip
    response = staff_client.post(f"/admin/exhibits/aisystem/{system.pk}/change/", data)
    assert response.status_code == 200
    assert "derived when a formula is given" in response.content.decode().replace("&#x27;", "'")
    system.refresh_from_db()
    assert system.status == Status.DRAFT
    data["training_cost_kind"] = "derived"
    assert staff_client.post(f"/admin/exhibits/aisystem/{system.pk}/change/", data).status_code == 302


def test_every_demo_figure_follows_the_label_rule(demo_content):
    """Walking the demo content: every figure is derived exactly when we computed it (a formula is given), disclosed
    only with the developer's source, estimated only with a third party's; a cost we computed but labelled
    disclosed is caught."""
    from showcase.exhibits.models import FigureKind, Hardware
    from showcase.exhibits.selectors import ai_system_label_problems

    systems = list(AISystem.objects.published().prefetch_related("sources"))
    assert len(systems) == 10
    for system in systems:
        assert ai_system_label_problems(system=system, sources=list(system.sources.all())) == [], system.slug
    deepseek = next(system for system in systems if system.slug == "deepseek-v3")
    assert (deepseek.training_cost_kind, deepseek.training_compute_kind) == ("disclosed", "derived")
    r1 = next(system for system in systems if system.slug == "deepseek-r1")
    assert r1.training_cost_kind == deepseek.training_cost_kind  # both the developer's own hours × $2
    deepseek.training_cost_derivation = "2.788M GPU-hours × $2"  # as if we had computed it
    assert ai_system_label_problems(system=deepseek, sources=list(deepseek.sources.all())) == ["training_cost"]
    for chip in Hardware.objects.published():
        kinds = [chip.memory_bandwidth_kind, chip.bf16_tflops_kind, chip.interconnect_kind]
        kinds += [chip.fp8_tflops_kind] if chip.fp8_tflops else []
        assert (FigureKind.DERIVED in kinds) == bool(chip.figures_derivation), chip.slug
        assert chip.source_url, chip.slug
