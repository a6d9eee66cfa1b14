"""The staff's editing desk: list columns, search, filters, inlines, slugs from names, publish/unpublish actions.

Only staff reach it (Django's admin site checks `is_staff`); every change lands in the admin's history.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from showcase.exhibits import services
from showcase.exhibits.models import (
    AISystem,
    Category,
    Claim,
    Conference,
    ContentLoad,
    Exhibitor,
    Figure,
    Hardware,
    Investor,
    Pitch,
    Product,
    Source,
    Startup,
    Status,
)
from showcase.exhibits.selectors import ai_system_label_problems, ai_system_unsourced_figures


def unsourced_figures_message(figures: list[str]) -> str:
    labels = ", ".join(str(Figure(figure).label) for figure in figures)
    return str(
        format_lazy(
            _(
                "A figure without a source cannot be published. No source backs: {figures}. Add a source that backs "
                "it (tick the figure, or none to back every figure), clear the figure, or keep the system as a draft."
            ),
            figures=labels,
        )
    )


def label_problems_message(figures: list[str]) -> str:
    labels = ", ".join(str(Figure(figure).label) for figure in figures)
    return str(
        format_lazy(
            _(
                "A figure's label must follow the rule before it can be published: derived when a formula is given "
                "(and only then), disclosed with a source the developer published, estimated with a third party's "
                "source. Check: {figures}."
            ),
            figures=labels,
        )
    )


def publish_problems(*, system: AISystem, sources: list[Source]) -> list[str]:
    """Why a system cannot be published as it stands: figures without a source, then labels against the rule."""
    messages_ = []
    missing = ai_system_unsourced_figures(system=system, sources=sources)
    if missing:
        messages_.append(unsourced_figures_message(missing))
    mislabelled = [f for f in ai_system_label_problems(system=system, sources=sources) if f not in missing]
    if mislabelled:
        messages_.append(label_problems_message(mislabelled))
    return messages_


class PublishActionsMixin:
    """Publish or unpublish the selected rows in one go, through the services."""

    actions = ["publish_selected", "unpublish_selected"]
    # A website typed without a scheme is taken as https (Django 6's default, without the deprecation warning).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.action(description=_("Publish the selected items"))
    def publish_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for item in queryset:
            services.content_publish(item=item)
        count = queryset.count()
        self.message_user(
            request, ngettext("%d item published.", "%d items published.", count) % count, messages.SUCCESS
        )

    @admin.action(description=_("Return the selected items to draft"))
    def unpublish_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for item in queryset:
            services.content_unpublish(item=item)
        count = queryset.count()
        self.message_user(
            request, ngettext("%d item set to draft.", "%d items set to draft.", count) % count, messages.SUCCESS
        )


class ConferenceForm(forms.ModelForm):
    # A JSON list in the database; ticked boxes in the admin, in the order the home page shows them.
    minimum_figures = forms.MultipleChoiceField(
        label=_("figures stated as minimums"),
        choices=[(name, name) for name in Conference.HEADLINE_FIGURES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            'Tick the figures the source gives as "more than N"; the others are shown as the source states them.'
        ),
    )

    class Meta:
        model = Conference
        fields = ["minimum_figures"]  # the fieldsets below name the rest

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["minimum_figures"].choices = [
            (name, Conference._meta.get_field(name).verbose_name) for name in Conference.HEADLINE_FIGURES
        ]


@admin.register(Conference)
class ConferenceAdmin(PublishActionsMixin, admin.ModelAdmin):
    form = ConferenceForm
    list_display = ["name", "city", "starts_on", "ends_on", "status"]
    list_filter = ["status"]
    search_fields = ["name", "city"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (
            None,
            {"fields": ["name", "short_name", "slug", "status", "city", "venue", "starts_on", "ends_on", "summary"]},
        ),
        (
            _("Headline figures"),
            {
                "fields": [
                    "guests",
                    "countries",
                    "exhibition_area_m2",
                    "products",
                    "companies",
                    "language_models",
                    "startups",
                    "investment_institutions",
                    "minimum_figures",
                    "source_title",
                    "source_url",
                ]
            },
        ),
    ]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}


class ProductInline(admin.StackedInline):
    model = Product
    formfield_overrides = PublishActionsMixin.formfield_overrides
    extra = 0
    prepopulated_fields = {"slug": ["name"]}
    fields = ["name", "slug", "kind", "status", "featured", "position", "description", "image", "is_example"]


@admin.register(Exhibitor)
class ExhibitorAdmin(PublishActionsMixin, admin.ModelAdmin):
    list_display = ["name", "country", "hall", "booth", "status", "is_example", "updated_at"]
    list_filter = ["status", "country", "categories", "is_example"]
    search_fields = ["name", "description", "booth"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["categories"]
    list_per_page = 50
    inlines = [ProductInline]


@admin.register(Product)
class ProductAdmin(PublishActionsMixin, admin.ModelAdmin):
    list_display = ["name", "exhibitor", "kind", "featured", "status"]
    list_filter = ["status", "kind", "featured"]
    list_select_related = ["exhibitor"]
    search_fields = ["name", "description", "exhibitor__name"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["exhibitor"]


@admin.register(Hardware)
class HardwareAdmin(PublishActionsMixin, admin.ModelAdmin):
    list_display = ["name", "vendor", "memory_gb", "memory_bandwidth_tb_s", "bf16_tflops", "fp8_tflops",
                    "hourly_price_usd", "status"]  # fmt: skip
    list_filter = ["status", "vendor"]
    search_fields = ["name", "vendor", "notes"]
    prepopulated_fields = {"slug": ["name"]}


class SourceForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")
    # A JSON list in the database; ticked boxes in the admin.
    figures = forms.MultipleChoiceField(
        label=_("figures it backs"),
        choices=Figure.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Leave all unticked when the source backs every figure."),
    )

    class Meta:
        model = Source
        fields = ["title", "url", "publisher", "figures", "position"]


class SourceInlineFormSet(BaseInlineFormSet):
    """The sources as staff leave them on the form must back every figure of a system that is to be published."""

    def clean(self) -> None:
        super().clean()
        system = self.instance
        if any(self.errors) or system.status != Status.PUBLISHED:
            return
        sources = [
            Source(title=form.cleaned_data.get("title", ""), figures=form.cleaned_data.get("figures") or [],
                   publisher=form.cleaned_data.get("publisher") or Source._meta.get_field("publisher").default)
            for form in self.forms
            if form.cleaned_data and form.cleaned_data.get("title") and not form.cleaned_data.get("DELETE")
        ]  # fmt: skip
        problems = publish_problems(system=system, sources=sources)
        if problems:
            raise ValidationError(problems, code="unsourced_figure")


class SourceInline(admin.TabularInline):
    model = Source
    formfield_overrides = PublishActionsMixin.formfield_overrides
    form = SourceForm
    formset = SourceInlineFormSet
    extra = 1


class ClaimInline(admin.StackedInline):
    model = Claim
    formfield_overrides = PublishActionsMixin.formfield_overrides
    extra = 0


@admin.register(AISystem)
class AISystemAdmin(PublishActionsMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "organisation",
        "released_on",
        "hardware",
        "chip_count",
        "gpu_hours",
        "training_cost_low_usd",
        "training_cost_high_usd",
        "status",
    ]
    list_filter = ["status", "organisation", "open_weights", "hardware", "training_cost_kind"]
    list_select_related = ["hardware"]
    search_fields = ["name", "organisation", "summary"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["exhibitor"]
    inlines = [SourceInline, ClaimInline]

    @admin.action(description=_("Publish the selected items"))
    def publish_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Publish the systems whose every figure has a source; name the others and why they stay drafts."""
        refused = []
        for system in queryset.prefetch_related("sources"):
            problems = publish_problems(system=system, sources=list(system.sources.all()))
            if problems:
                refused.append(system)
                self.message_user(request, f"{system}: {' '.join(problems)}", messages.ERROR)
        super().publish_selected(request, queryset.exclude(pk__in=[system.pk for system in refused]))

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "slug",
                    "status",
                    "organisation",
                    "released_on",
                    "summary",
                    "open_weights",
                    "exhibitor",
                    "is_demo_model",
                ]
            },
        ),
        (
            _("Parameters"),
            {"fields": ["parameters_label", "parameters_billions", "parameters_active_billions", "parameters_kind"]},
        ),
        (_("Hardware"), {"fields": ["hardware", "chip_count", "chip_count_kind", "chip_count_note"]}),
        (
            _("Compute"),
            {
                "fields": [
                    "gpu_hours",
                    "gpu_hours_kind",
                    "gpu_hours_note",
                    "gpu_hours_derivation",
                    "training_compute_flop",
                    "training_compute_kind",
                    "training_compute_note",
                    "training_compute_derivation",
                    "training_precision",
                ]
            },
        ),
        (
            _("Cost"),
            {
                "fields": [
                    "training_cost_low_usd",
                    "training_cost_high_usd",
                    "training_cost_kind",
                    "training_cost_note",
                    "training_cost_derivation",
                    "training_cost_basis",
                    "cost_covers_more_than_compute",
                    "scope_note",
                ]
            },
        ),
    ]


@admin.register(Startup)
class StartupAdmin(PublishActionsMixin, admin.ModelAdmin):
    list_display = ["name", "city", "country", "sector", "status", "is_example"]
    list_filter = ["status", "country", "sector", "is_example"]
    search_fields = ["name", "description", "sector"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Investor)
class InvestorAdmin(PublishActionsMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "country", "status", "is_example"]
    list_filter = ["status", "kind", "country"]
    search_fields = ["name", "description"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Pitch)
class PitchAdmin(PublishActionsMixin, admin.ModelAdmin):
    list_display = ["startup", "starts_at", "room", "state", "status"]
    list_filter = ["status", "state", "room"]
    list_select_related = ["startup"]
    search_fields = ["startup__name", "title", "room"]
    autocomplete_fields = ["startup"]
    filter_horizontal = ["investors"]
    date_hierarchy = "starts_at"


@admin.register(ContentLoad)
class ContentLoadAdmin(admin.ModelAdmin):
    list_display = ["name", "loaded_at"]
    readonly_fields = ["name", "loaded_at"]
