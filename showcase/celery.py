"""The Celery app. Configuration lives in Django settings under the CELERY_ prefix.

Queues, bindings, pidbox (worker pings) and results live under this deployment's Redis namespace (kombu's
`global_keyprefix`), so a worker only ever takes its own site's tasks and answers its own site's pings, even when
several sites share one Redis. The prefix is read from the database, so it is resolved when the first connection
is made (Django is set up by then), not when this module is imported.

The signals below carry a reply's log ids (request, conversation, reply) from the process that queues a task to the
worker thread that runs it, in the task's headers (see showcase.core.log_context), and keep Celery from replacing
the site's logging (so `LOG_FORMAT=json` holds for the worker too).
"""

import os

from celery import Celery
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun, worker_init

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

LOG_HEADER = "showcase_log_ids"


@setup_logging.connect
def _use_the_sites_logging(**_kwargs) -> None:
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@before_task_publish.connect
def _send_log_ids(headers: dict | None = None, **_kwargs) -> None:
    from showcase.core import log_context

    if headers is not None:
        headers[LOG_HEADER] = log_context.current()


@task_prerun.connect
def _receive_log_ids(task=None, args=None, **_kwargs) -> None:
    from showcase.core import log_context

    log_context.clear()
    ids = dict(getattr(task.request, LOG_HEADER, None) or {}) if task is not None else {}
    if task is not None and task.name == "demo_engine.tasks.generate_reply" and args:
        ids.setdefault("reply_id", args[0])
    log_context.bind(**{name: value for name, value in ids.items() if name in log_context.IDS})


@task_postrun.connect
def _forget_log_ids(**_kwargs) -> None:
    from showcase.core import log_context

    log_context.clear()


@worker_init.connect
def _start_metrics_exporter(**_kwargs) -> None:
    """WORKER_METRICS_PORT: on a machine without a web process, serve this machine's metrics from the worker."""
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        from showcase.core import metrics

        metrics.start_worker_exporter(int(port))
