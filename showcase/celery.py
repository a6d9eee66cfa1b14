"""The Celery app. Configuration lives in Django settings under the CELERY_ prefix.

Queues, bindings, pidbox (worker pings) and results live under this deployment's Redis namespace (kombu's
`global_keyprefix`), so a worker only ever takes its own site's tasks and answers its own site's pings, even when
several sites share one Redis. The prefix is read from the database, so it is resolved when the first connection
is made (Django is set up by then), not when this module is imported.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "showcase.settings")


def _namespaced(options: dict | None) -> dict:
    from showcase.core.shared_redis import redis_prefix

    return {**(options or {}), "global_keyprefix": redis_prefix()}


class ShowcaseCelery(Celery):
    def _connection(self, url, *args, transport_options=None, **kwargs):
        options = _namespaced({**self.conf.broker_transport_options, **(transport_options or {})})
        return super()._connection(url, *args, transport_options=options, **kwargs)

    def _get_backend(self):
        self.conf.result_backend_transport_options = _namespaced(self.conf.result_backend_transport_options)
        return super()._get_backend()


app = ShowcaseCelery("showcase")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
