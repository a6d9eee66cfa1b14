"""What a visitor reads: the conference, exhibitors and products, AI systems with their training figures and
hardware, start-ups, investors and pitch slots. Everything public has a draft/published status.

Every figure a visitor reads carries one label, by one rule (`FigureKind`): "disclosed" when the developer (or the
chip's vendor) published the figure, "derived" when it is our arithmetic on published inputs (the formula is kept
beside it, e.g. 6 × 37B active parameters × 14.8T tokens), "estimated" when a third party estimated it. A figure
also keeps a free-text note ("up to", "about") and, through `Source`, where it comes from.
"""

from decimal import Decimal

from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from showcase.exhibits.validators import validate_image_upload, validate_web_url


class Status(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")


class PublishableQuerySet(models.QuerySet):
    def published(self) -> "PublishableQuerySet":
        return self.filter(status=Status.PUBLISHED)


class Publishable(models.Model):
    """Draft or published, with timestamps; only published rows reach the public pages."""

    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = PublishableQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_published(self) -> bool:
        return self.status == Status.PUBLISHED


class ExampleFlag(models.Model):
    """Marks rows invented for the demo, so a visitor is never told an example is a real company."""

    is_example = models.BooleanField(
        _("example"), default=False, help_text=_("Invented for the demo; pages label it as an example.")
    )

    class Meta:
        abstract = True


class Conference(Publishable):
    name = models.CharField(_("name"), max_length=200)
    short_name = models.CharField(_("short name"), max_length=40, blank=True)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    city = models.CharField(_("city"), max_length=100)
    venue = models.CharField(_("venue"), max_length=200, blank=True)
    starts_on = models.DateField(_("first day"))
    ends_on = models.DateField(_("last day"))
    summary = models.TextField(_("summary"), blank=True)
    # The headline figures in the source's own words: the seed article gives most as "more than N" ("plus de 1 200
    # invités") but the companies as a plain 800, so the wording is kept per figure.
    minimum_figures = models.JSONField(_("figures stated as minimums"), default=list, blank=True,
                                       help_text=_('The figures the source gives as "more than N".'))  # fmt: skip
    guests = models.PositiveIntegerField(_("guests"), null=True, blank=True)
    countries = models.PositiveIntegerField(_("countries"), null=True, blank=True)
    exhibition_area_m2 = models.PositiveIntegerField(_("exhibition area (m²)"), null=True, blank=True)
    products = models.PositiveIntegerField(_("products"), null=True, blank=True)
    companies = models.PositiveIntegerField(_("companies"), null=True, blank=True)
    language_models = models.PositiveIntegerField(_("large language models"), null=True, blank=True)
    startups = models.PositiveIntegerField(_("start-ups"), null=True, blank=True)
    investment_institutions = models.PositiveIntegerField(_("investment institutions"), null=True, blank=True)
    source_title = models.CharField(_("source title"), max_length=300, blank=True)
    source_url = models.URLField(_("source URL"), blank=True, validators=[validate_web_url])

    HEADLINE_FIGURES = ["guests", "countries", "exhibition_area_m2", "products", "companies", "language_models",
                        "startups", "investment_institutions"]  # fmt: skip

    class Meta:
        ordering = ["-starts_on"]
        verbose_name = _("conference")
        verbose_name_plural = _("conferences")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("exhibits:home")

    def is_minimum(self, figure: str) -> bool:
        """Whether the source gives this headline figure as "more than N"."""
        return figure in (self.minimum_figures or [])


class Category(models.Model):
    """A field an exhibitor works in (robotics, chips, language models…); the directory filters on it."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("category")
        verbose_name_plural = _("categories")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"{reverse('exhibits:exhibitor_list')}?category={self.slug}"


class Exhibitor(Publishable, ExampleFlag):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    country = models.CharField(_("country"), max_length=100, db_index=True)
    hall = models.CharField(_("hall"), max_length=40, blank=True)
    booth = models.CharField(_("booth"), max_length=40, blank=True)
    logo = models.ImageField(_("logo"), upload_to="exhibitors/logos/", blank=True,
                             validators=[validate_image_upload])  # fmt: skip
    description = models.TextField(_("description"), blank=True)
    website = models.URLField(_("website"), blank=True, validators=[validate_web_url])
    categories = models.ManyToManyField(Category, verbose_name=_("categories"), blank=True, related_name="exhibitors")

    class Meta:
        ordering = ["name"]
        verbose_name = _("exhibitor")
        verbose_name_plural = _("exhibitors")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("exhibits:exhibitor_detail", kwargs={"slug": self.slug})


class ProductKind(models.TextChoices):
    LANGUAGE_MODEL = "language_model", _("Language model")
    ROBOT = "robot", _("Robot")
    DEVICE = "device", _("Device")
    CHIP = "chip", _("Chip")
    SOFTWARE = "software", _("Software")
    OTHER = "other", _("Other")


class Product(Publishable, ExampleFlag):
    """A product or exhibit on an exhibitor's stand; shown on the exhibitor's page, featured ones on the home page."""

    exhibitor = models.ForeignKey(Exhibitor, verbose_name=_("exhibitor"), on_delete=models.CASCADE,
                                  related_name="products")  # fmt: skip
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200)
    kind = models.CharField(_("category"), max_length=20, choices=ProductKind.choices, default=ProductKind.OTHER)
    description = models.TextField(_("description"), blank=True)
    image = models.ImageField(_("image"), upload_to="products/", blank=True, validators=[validate_image_upload])
    featured = models.BooleanField(_("featured"), default=False, db_index=True,
                                   help_text=_("Shown on the home page."))  # fmt: skip
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["exhibitor__name", "position", "name"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        constraints = [models.UniqueConstraint(fields=["exhibitor", "slug"], name="product_slug_unique_per_exhibitor")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"{self.exhibitor.get_absolute_url()}#product-{self.slug}"


class FigureKind(models.TextChoices):
    """The one label rule, for every figure a visitor reads (see the module docstring)."""

    DISCLOSED = "disclosed", _("Disclosed")
    DERIVED = "derived", _("Derived")
    ESTIMATED = "estimated", _("Estimated")


def _kind_field(label: str, default: str = "estimated") -> models.CharField:
    return models.CharField(label, max_length=10, choices=FigureKind.choices, default=default)


def _derivation_field(label: str) -> models.CharField:
    return models.CharField(label, max_length=300, blank=True,
                            help_text=_("For a derived figure: the formula, with its published inputs."))  # fmt: skip


class Precision(models.TextChoices):
    """The number format a run's matrix products were done in; utilisation is measured against that peak."""

    FP8 = "fp8", _("FP8")
    BF16 = "bf16", _("BF16")
    FP16 = "fp16", _("FP16")


class Hardware(Publishable):
    """A training chip; its hourly rental price is an assumption the comparison's calculator starts from.

    Peaks are dense (no sparsity). Vendors' datasheets often print the with-sparsity figure: the dense one is then
    half of it, a derived figure whose formula is kept in `figures_derivation`.
    """

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("slug"), max_length=100, unique=True)
    vendor = models.CharField(_("vendor"), max_length=100)
    memory_gb = models.PositiveIntegerField(_("memory (GB)"))
    memory_type = models.CharField(_("memory type"), max_length=40, blank=True)
    memory_bandwidth_tb_s = models.DecimalField(_("memory bandwidth (TB/s)"), max_digits=6, decimal_places=2)
    memory_bandwidth_kind = _kind_field(_("memory bandwidth is"), default="disclosed")
    bf16_tflops = models.DecimalField(_("BF16 dense throughput (TFLOP/s)"), max_digits=8, decimal_places=1,
                                      null=True, blank=True)  # fmt: skip
    bf16_tflops_kind = _kind_field(_("BF16 throughput is"), default="disclosed")
    fp8_tflops = models.DecimalField(_("FP8 dense throughput (TFLOP/s)"), max_digits=8, decimal_places=1,
                                     null=True, blank=True,
                                     help_text=_("Leave empty for a chip without FP8."))  # fmt: skip
    fp8_tflops_kind = _kind_field(_("FP8 throughput is"), default="disclosed")
    figures_derivation = _derivation_field(_("how the derived figures were computed"))
    throughput_note = models.CharField(_("throughput note"), max_length=200, blank=True)
    interconnect_gb_s = models.PositiveIntegerField(_("chip-to-chip bandwidth (GB/s)"), null=True, blank=True)
    interconnect_kind = _kind_field(_("chip-to-chip bandwidth is"), default="disclosed")
    hourly_price_usd = models.DecimalField(_("hourly rental price (USD)"), max_digits=8, decimal_places=2)
    hourly_price_note = models.CharField(_("price note"), max_length=300, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    source_title = models.CharField(_("source title"), max_length=300, blank=True)
    source_url = models.URLField(_("source URL"), blank=True, validators=[validate_web_url])

    class Meta:
        ordering = ["vendor", "name"]
        verbose_name = _("hardware")
        verbose_name_plural = _("hardware")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"{reverse('exhibits:ai_system_list')}#hardware-{self.slug}"

    def peak_tflops(self, precision: str) -> Decimal | None:
        """The dense peak for a run in that precision: FP8 where the chip has it, else the 16-bit peak (BF16, or
        FP16 on a chip without BF16 such as the V100)."""
        if precision == Precision.FP8:
            return self.fp8_tflops
        return self.bf16_tflops


class Figure(models.TextChoices):
    """The figures of an AI system a source can back; a source with none listed backs them all."""

    PARAMETERS = "parameters", _("Parameters")
    CHIPS = "chips", _("Chips")
    GPU_HOURS = "gpu_hours", _("GPU-hours")
    TRAINING_COMPUTE = "training_compute", _("Training compute")
    TRAINING_COST = "training_cost", _("Training cost")


class AISystem(Publishable):
    """A trained model and what its training took, each figure labelled disclosed or estimated."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    organisation = models.CharField(_("organisation"), max_length=200)
    released_on = models.DateField(_("released"), help_text=_("The first of the month when only the month is known."))
    summary = models.TextField(_("summary"), blank=True)
    parameters_label = models.CharField(_("parameters"), max_length=200, blank=True,
                                        help_text=_('As stated, e.g. "671B total, 37B active (MoE)".'))  # fmt: skip
    parameters_billions = models.DecimalField(_("parameters (billions)"), max_digits=10, decimal_places=3,
                                              null=True, blank=True)  # fmt: skip
    parameters_kind = _kind_field(_("parameters are"))
    # A mixture of experts runs a fraction of its weights per token: 37B of DeepSeek-V3's 671B. Compared with a dense
    # model's parameters, the active ones are the like-for-like figure (405B dense ÷ 37B active = 10.9×, not 0.60×).
    parameters_active_billions = models.DecimalField(_("active parameters (billions)"), max_digits=10,
                                                     decimal_places=3, null=True, blank=True,
                                                     help_text=_("Mixture of experts only: the parameters used per "
                                                                 "token. Leave empty for a dense model."))  # fmt: skip
    open_weights = models.BooleanField(_("open weights"), default=False)
    hardware = models.ForeignKey(Hardware, verbose_name=_("hardware"), on_delete=models.PROTECT, null=True,
                                 blank=True, related_name="ai_systems")  # fmt: skip
    chip_count = models.PositiveIntegerField(_("chips"), null=True, blank=True)
    chip_count_kind = _kind_field(_("chips are"))
    chip_count_note = models.CharField(_("chips note"), max_length=300, blank=True)
    gpu_hours = models.PositiveBigIntegerField(_("GPU-hours"), null=True, blank=True,
                                               help_text=_("Chip-hours (GPU or TPU) of the run."))  # fmt: skip
    gpu_hours_kind = _kind_field(_("GPU-hours are"))
    gpu_hours_note = models.CharField(_("GPU-hours note"), max_length=300, blank=True)
    gpu_hours_derivation = _derivation_field(_("GPU-hours derivation"))
    training_compute_flop = models.FloatField(_("training compute (FLOP)"), null=True, blank=True)
    training_compute_kind = _kind_field(_("training compute is"))
    training_compute_note = models.CharField(_("training compute note"), max_length=300, blank=True)
    training_compute_derivation = _derivation_field(_("training compute derivation"))
    training_precision = models.CharField(_("training precision"), max_length=10, choices=Precision.choices,
                                          blank=True,
                                          help_text=_("The number format of the run's matrix products, as its "
                                                      "developer states it; utilisation is measured against the "
                                                      "chip's peak in that format. Empty: not stated."))  # fmt: skip
    training_cost_low_usd = models.DecimalField(_("training cost, low (USD)"), max_digits=15, decimal_places=0,
                                                null=True, blank=True)  # fmt: skip
    training_cost_high_usd = models.DecimalField(_("training cost, high (USD)"), max_digits=15, decimal_places=0,
                                                 null=True, blank=True)  # fmt: skip
    training_cost_kind = _kind_field(_("training cost is"))
    training_cost_note = models.CharField(_("training cost note"), max_length=300, blank=True)
    training_cost_derivation = _derivation_field(_("training cost derivation"))
    training_cost_basis = models.CharField(_("what the cost prices"), max_length=200, blank=True,
                                           help_text=_('Who priced the run and how, e.g. "the developer\'s '
                                                       'GPU-hours × $2 per H800-hour" or "Epoch AI, cloud rates". '
                                                       "Two reported costs compare like with like only on the same "
                                                       "basis."))  # fmt: skip
    cost_covers_more_than_compute = models.BooleanField(
        _("the cost covers more than the compute"), default=False,
        help_text=_("Tick when the cost includes work the compute figure leaves out (e.g. preliminary "
                    "experiments): its cost per unit of compute is then overstated."),
    )  # fmt: skip
    scope_note = models.CharField(_("scope"), max_length=300, blank=True,
                                  help_text=_('What the figures cover, e.g. "final training run only".'))  # fmt: skip
    exhibitor = models.ForeignKey(Exhibitor, verbose_name=_("shown by"), on_delete=models.SET_NULL, null=True,
                                  blank=True, related_name="ai_systems")  # fmt: skip
    is_demo_model = models.BooleanField(_("served by this demo"), default=False)

    class Meta:
        ordering = ["-released_on", "name"]
        verbose_name = _("AI system")
        verbose_name_plural = _("AI systems")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("exhibits:ai_system_detail", kwargs={"slug": self.slug})


class Publisher(models.TextChoices):
    DEVELOPER = "developer", _("The developer")
    THIRD_PARTY = "third_party", _("A third party")


class Source(models.Model):
    """Where a figure of an AI system comes from, and who published it: the label rule needs to know."""

    ai_system = models.ForeignKey(AISystem, verbose_name=_("AI system"), on_delete=models.CASCADE,
                                  related_name="sources")  # fmt: skip
    title = models.CharField(_("title"), max_length=300)
    url = models.URLField(_("URL"), max_length=500, validators=[validate_web_url])
    figures = models.JSONField(_("figures it backs"), default=list, blank=True,
                               help_text=_("Leave empty when the source backs every figure."))  # fmt: skip
    publisher = models.CharField(_("published by"), max_length=12, choices=Publisher.choices,
                                 default=Publisher.DEVELOPER)  # fmt: skip
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        ordering = ["ai_system", "position", "id"]
        verbose_name = _("source")
        verbose_name_plural = _("sources")

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return self.url

    def backs(self, figure: str) -> bool:
        return not self.figures or figure in self.figures


class Claim(Publishable):
    """A claim as reported by the press, kept apart from the sourced figures it can be set against."""

    ai_system = models.ForeignKey(AISystem, verbose_name=_("AI system"), on_delete=models.CASCADE,
                                  related_name="claims")  # fmt: skip
    claimant = models.CharField(_("claimant"), max_length=200)
    statement = models.TextField(_("statement"))
    cost_usd = models.DecimalField(_("claimed cost (USD)"), max_digits=15, decimal_places=0, null=True, blank=True)
    chip_count = models.PositiveIntegerField(_("claimed chips"), null=True, blank=True)
    hardware = models.ForeignKey(Hardware, verbose_name=_("claimed chip type"), on_delete=models.SET_NULL,
                                 null=True, blank=True, related_name="+")  # fmt: skip
    rival_cost_low_usd = models.DecimalField(_("rivals' cost, low (USD)"), max_digits=15, decimal_places=0,
                                             null=True, blank=True)  # fmt: skip
    rival_cost_high_usd = models.DecimalField(_("rivals' cost, high (USD)"), max_digits=15, decimal_places=0,
                                              null=True, blank=True)  # fmt: skip
    rival_chip_count = models.PositiveIntegerField(_("rivals' chips"), null=True, blank=True)
    source_title = models.CharField(_("source title"), max_length=300)
    source_url = models.URLField(_("source URL"), blank=True, validators=[validate_web_url])

    class Meta:
        ordering = ["ai_system", "id"]
        verbose_name = _("press claim")
        verbose_name_plural = _("press claims")

    def __str__(self) -> str:
        return f"{self.claimant}: {self.statement[:60]}"

    def get_absolute_url(self) -> str:
        return self.ai_system.get_absolute_url()


class Startup(Publishable, ExampleFlag):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    country = models.CharField(_("country"), max_length=100, blank=True)
    sector = models.CharField(_("sector"), max_length=100, blank=True)
    founded_year = models.PositiveIntegerField(_("founded"), null=True, blank=True)
    description = models.TextField(_("description"), blank=True)
    website = models.URLField(_("website"), blank=True, validators=[validate_web_url])

    class Meta:
        ordering = ["name"]
        verbose_name = _("start-up")
        verbose_name_plural = _("start-ups")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"{reverse('exhibits:startup_list')}#startup-{self.slug}"


class InvestorKind(models.TextChoices):
    VENTURE = "venture", _("Venture capital")
    CORPORATE = "corporate", _("Corporate investor")
    PUBLIC = "public", _("Public fund")
    ANGEL = "angel", _("Angel network")


class Investor(Publishable, ExampleFlag):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=200, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=InvestorKind.choices, default=InvestorKind.VENTURE)
    country = models.CharField(_("country"), max_length=100, blank=True)
    description = models.TextField(_("description"), blank=True)
    website = models.URLField(_("website"), blank=True, validators=[validate_web_url])

    class Meta:
        ordering = ["name"]
        verbose_name = _("investor")
        verbose_name_plural = _("investors")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return f"{reverse('exhibits:startup_list')}#investor-{self.slug}"


class PitchState(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    CONFIRMED = "confirmed", _("Confirmed")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class Pitch(Publishable, ExampleFlag):
    """A start-up's slot in the venture-capital area, with the investors who said they will attend."""

    startup = models.ForeignKey(Startup, verbose_name=_("start-up"), on_delete=models.CASCADE, related_name="pitches")
    title = models.CharField(_("title"), max_length=200, blank=True)
    investors = models.ManyToManyField(Investor, verbose_name=_("investors attending"), blank=True,
                                       related_name="pitches")  # fmt: skip
    starts_at = models.DateTimeField(_("starts at"))
    duration_minutes = models.PositiveIntegerField(_("duration (minutes)"), default=15)
    room = models.CharField(_("room"), max_length=100)
    state = models.CharField(_("slot status"), max_length=10, choices=PitchState.choices,
                             default=PitchState.SCHEDULED)  # fmt: skip

    class Meta:
        ordering = ["starts_at", "room"]
        verbose_name = _("pitch")
        verbose_name_plural = _("pitches")

    def __str__(self) -> str:
        return f"{self.startup} · {self.starts_at:%Y-%m-%d %H:%M}"

    def get_absolute_url(self) -> str:
        return f"{reverse('exhibits:pitch_schedule')}#pitch-{self.pk}"


class ContentLoad(models.Model):
    """A bundle of demo content already loaded once; the loader skips it afterwards, so staff edits stay."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    loaded_at = models.DateTimeField(_("loaded at"), auto_now_add=True)

    class Meta:
        ordering = ["-loaded_at"]
        verbose_name = _("demo content load")
        verbose_name_plural = _("demo content loads")

    def __str__(self) -> str:
        return self.name
