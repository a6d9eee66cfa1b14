"""`/v1/`: the OpenAI-compatible HTTP API (mounted outside the language prefixes)."""

from django.urls import path

from demo_engine.api import views

app_name = "api"
urlpatterns = [
    path("models", views.models_list, name="models"),
    path("models/<str:model_id>", views.model_detail, name="model"),
    path("chat/completions", views.chat_completions, name="chat-completions"),
]
