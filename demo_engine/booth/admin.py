from django.contrib import admin

from demo_engine.booth.models import SuggestedQuestion


@admin.register(SuggestedQuestion)
class SuggestedQuestionAdmin(admin.ModelAdmin):
    list_display = ["text", "language", "position", "is_active"]
    list_editable = ["position", "is_active"]
    list_filter = ["language", "is_active"]
    search_fields = ["text"]
