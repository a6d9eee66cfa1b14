from django.urls import path

from showcase.core import views

urlpatterns = [
    path("", views.home, name="home"),
]
