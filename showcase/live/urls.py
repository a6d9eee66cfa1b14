"""Live pages, mounted inside the language prefixes (/, /fr/, /zh-hans/)."""

from django.urls import path

from showcase.live import views

app_name = "live"

urlpatterns = [
    path("compare/", views.compare, name="compare"),
]
