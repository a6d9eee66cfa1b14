"""The site's core: home page, health checks, the live WebSocket, security headers, first staff account."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "showcase.core"
    label = "core"
    verbose_name = "Showcase core"
