"""Staff can read conversations and replies (with their figures); nothing here edits a reply. API keys are
created and revoked here, and their usage read."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from demo_engine.api import selectors as api_selectors
from demo_engine.api import services as api_services
from demo_engine.models import ApiKey, ApiUsage, BlockedPhrase, Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("role", "status", "content", "generated_tokens", "tokens_per_second", "backend", "failure_reason")
    readonly_fields = fields


class FlaggedFilter(admin.SimpleListFilter):
    title = _("content filter")
    parameter_name = "flagged"

    def lookups(self, request, model_admin):
        return [("yes", _("flagged")), ("no", _("not flagged"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(flagged_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(flagged_at__isnull=True)
        return queryset


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Staff read conversations, see the ones the content filter flagged (and why), and hide any from the kiosks'
    attract loop."""

    list_display = ("__str__", "language", "kiosk_screen", "flagged_at", "flag_reason", "hidden_from_kiosk",
                    "created_at", "updated_at")  # fmt: skip
    list_filter = (FlaggedFilter, "hidden_from_kiosk", "kiosk_screen", "language")
    search_fields = ("title", "messages__content")
    fields = ("title", "language", "kiosk_screen", "flagged_at", "flag_reason", "hidden_from_kiosk", "created_at")
    readonly_fields = ("title", "language", "kiosk_screen", "flagged_at", "flag_reason", "created_at")
    inlines = [MessageInline]
    actions = ["hide_from_kiosk", "show_on_kiosk"]

    @admin.action(description=_("Hide from the kiosks' attract loop"), permissions=["change"])
    def hide_from_kiosk(self, request, queryset) -> None:
        count = queryset.update(hidden_from_kiosk=True)
        self.message_user(request, _("%(count)d conversation(s) hidden from the kiosks.") % {"count": count})

    @admin.action(description=_("Allow on the kiosks' attract loop"), permissions=["change"])
    def show_on_kiosk(self, request, queryset) -> None:
        count = queryset.update(hidden_from_kiosk=False)
        self.message_user(request, _("%(count)d conversation(s) may show on the kiosks.") % {"count": count})


@admin.register(BlockedPhrase)
class BlockedPhraseAdmin(admin.ModelAdmin):
    """Words and phrases a public screen must not show (see demo_engine.moderation)."""

    list_display = ("phrase", "language", "created_at")
    list_filter = ("language",)
    search_fields = ("phrase",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "role", "status", "generated_tokens", "tokens_per_second", "backend", "created_at")
    list_filter = ("role", "status", "backend")
    search_fields = ("content",)
    readonly_fields = [field.name for field in Message._meta.fields]


class ApiUsageInline(admin.TabularInline):
    model = ApiUsage
    extra = 0
    can_delete = False
    fields = ("day", "requests", "prompt_tokens", "completion_tokens")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Staff create keys here (the secret is shown once, in a message) and revoke them; a key is never deleted,
    so its usage stays on record."""

    list_display = ("name", "prefix", "requests_per_minute", "active", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    fields = ("name", "requests_per_minute", "prefix", "created_at", "last_used_at", "revoked_at", "usage_totals")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at", "usage_totals")
    inlines = [ApiUsageInline]
    actions = ["revoke"]

    @admin.display(boolean=True, description=_("active"))
    def active(self, api_key: ApiKey) -> bool:
        return api_key.is_active

    @admin.display(description=_("usage (all days)"))
    def usage_totals(self, api_key: ApiKey) -> str:
        if api_key.pk is None:
            return "—"
        totals = api_selectors.api_usage_totals(api_key=api_key)
        return _("%(requests)s requests, %(prompt_tokens)s prompt tokens, %(completion_tokens)s completion tokens") % (
            totals
        )

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created, secret = api_services.api_key_create(name=obj.name, requests_per_minute=obj.requests_per_minute)
        for name in ("id", "prefix", "key_hash", "created_at"):
            setattr(obj, name, getattr(created, name))
        obj._state.adding = False
        messages.warning(
            request,
            _("The new key is %(secret)s — copy it now: it is shown only this once (only its hash is stored).")
            % {"secret": secret},
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke(self, request, queryset) -> None:
        for api_key in queryset:
            api_services.api_key_revoke(api_key=api_key)
        self.message_user(request, _("%(count)d key(s) revoked.") % {"count": queryset.count()})


@admin.register(ApiUsage)
class ApiUsageAdmin(admin.ModelAdmin):
    list_display = ("day", "api_key", "requests", "prompt_tokens", "completion_tokens")
    list_filter = ("day", "api_key")
    readonly_fields = [field.name for field in ApiUsage._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
