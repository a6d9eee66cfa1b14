"""URL configuration: health checks and the admin outside language prefixes, public pages inside."""

from django.conf import settings
from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path
from django.views.static import serve

from showcase.core.language import language_choose

urlpatterns = [
    path("healthz/", include("showcase.core.health_urls")),
    path("admin/", admin.site.urls),
    path("i18n/language/<str:code>/", language_choose, name="language_choose"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("media/<path:path>", serve, {"document_root": settings.MEDIA_ROOT}),
    # The OpenAI-compatible API: clients append "/chat/completions" to a base URL ending in "/v1".
    path("v1/", include("demo_engine.api.urls")),
]
urlpatterns += i18n_patterns(
    path("", include("demo_engine.urls")),
    # The exhibit pages own the home page ("/").
    path("", include("showcase.exhibits.urls")),
    path("", include("showcase.live.urls")),
    path("kiosk/", include("showcase.kiosk.urls")),
    prefix_default_language=False,
)
