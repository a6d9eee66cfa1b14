"""Staff can read conversations and replies (with their figures); nothing here edits a reply."""

from django.contrib import admin

from demo_engine.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("role", "status", "content", "generated_tokens", "tokens_per_second", "backend", "failure_reason")
    readonly_fields = fields


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "created_at", "updated_at")
    search_fields = ("title", "messages__content")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "role", "status", "generated_tokens", "tokens_per_second", "backend", "created_at")
    list_filter = ("role", "status", "backend")
    search_fields = ("content",)
    readonly_fields = [field.name for field in Message._meta.fields]
