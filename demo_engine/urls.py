from django.urls import path

from demo_engine import views

urlpatterns = [
    path("chat/", views.chat_page, name="chat"),
    path("chat/continue/<str:token>/", views.chat_continue, name="chat_continue"),
]
