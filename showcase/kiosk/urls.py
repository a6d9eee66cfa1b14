"""Kiosk screens, mounted at /kiosk/ inside the language prefixes (/kiosk/, /fr/kiosk/, /zh-hans/kiosk/)."""

from django.urls import path

from showcase.kiosk import views

app_name = "kiosk"

urlpatterns = [
    path("<str:secret>/", views.kiosk_screen, name="screen"),
    path("<str:secret>/reset/", views.kiosk_reset, name="reset"),
    path("<str:secret>/handover/", views.kiosk_handover, name="handover"),
    path("<str:secret>/handover/<str:public_id>/", views.kiosk_handover_status, name="handover_status"),
]
