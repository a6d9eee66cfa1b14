from django.urls import path

from showcase.core import views

urlpatterns = [
    path("live", views.health_live, name="health-live"),
    path("ready", views.health_ready, name="health-ready"),
]
