"""Public exhibit pages, mounted inside the language prefixes (/, /fr/, /zh-hans/)."""

from django.urls import path

from showcase.exhibits import views

app_name = "exhibits"

urlpatterns = [
    path("", views.home, name="home"),
    path("exhibitors/", views.exhibitor_list, name="exhibitor_list"),
    path("exhibitors/<slug:slug>/", views.exhibitor_detail, name="exhibitor_detail"),
    path("ai-systems/", views.ai_system_list, name="ai_system_list"),
    path("ai-systems/<slug:slug>/", views.ai_system_detail, name="ai_system_detail"),
    path("startups/", views.startup_list, name="startup_list"),
    path("pitches/", views.pitch_schedule, name="pitch_schedule"),
]
