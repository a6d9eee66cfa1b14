"""Django settings for the WAIC Showcase, read from the environment.

Two modes. The default is the laptop/booth mode that `make run` starts: SQLite under `var/`, plain HTTP on
loopback, a secret key generated once and kept under `var/`. `DJANGO_PRODUCTION=1` is the deployment mode:
HTTPS-only cookies, HSTS, an explicit `SECRET_KEY` and `ALLOWED_HOSTS` are required, and
`manage.py check --deploy --fail-level WARNING` passes.

A missing or malformed variable stops start-up with one line naming it (see `showcase.env`).
"""

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from showcase.env import env_bool, env_int, env_list, env_price, env_str, load_database, load_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SHOWCASE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

PRODUCTION = env_bool("DJANGO_PRODUCTION", False)
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = load_secret_key(production=PRODUCTION, var_dir=VAR_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", None if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "servestatic.runserver_nostatic",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "axes",
    "showcase.core",
    "showcase.exhibits",
    "showcase.live",
    "showcase.kiosk",
    "demo_engine",
    "demo_engine.booth",
]

MIDDLEWARE = [
    # Outermost, so that every response carries the CSP, error responses of the middlewares below included.
    "showcase.core.middleware.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    # An unprefixed public page follows Accept-Language unless the visitor chose a language (showcase.core.language).
    "showcase.core.language.LanguageLandingMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Names the view that answered for the request metrics (showcase.core.observe counts and times every request).
    "showcase.core.middleware.ViewNameMiddleware",
    # Last, as django-axes requires: it turns a locked-out login attempt into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "showcase.urls"
ASGI_APPLICATION = "showcase.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": load_database(default_sqlite=VAR_DIR / "showcase.sqlite3")}
# Under ASGI a persistent connection would leak across async contexts: keep CONN_MAX_AGE at 0.
DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis serves the Celery broker, the channel layer and the cache. `make run` picks it (showcase.launcher).
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

# Every key the site writes lives under one namespace of this deployment (showcase.core.shared_redis): this value
# when set, else one derived from a site id that the database holds.
SHOWCASE_REDIS_PREFIX = env_str("SHOWCASE_REDIS_PREFIX", "")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_FUNCTION": "showcase.core.shared_redis.cache_key",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "showcase.core.shared_redis.NamespacedRedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, which cuts channels-redis's blocking 5 s BZPOPMIN
        # and tears down every idle socket every 5 s (channels_redis issue 422): give reads more room than that.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}], "capacity": 500, "expiry": 60},
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"

# Celery: generation tasks are long, and a late re-run of a chat reply is worthless (the visitor has gone).
# Tasks are acknowledged on receipt (no acks_late), so a worker that dies does not get its task redelivered;
# the reply is marked failed instead. The hard limit stays far below the broker's visibility timeout.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"demo_engine.tasks.*": {"queue": "inference"}}
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# Admin lockout (django-axes): after ADMIN_LOGIN_FAILURE_LIMIT failed logins for one username from one address,
# that pair is refused for ADMIN_LOCKOUT_MINUTES, even with the right password. Locking by the pair (not the
# username alone) keeps a stranger from locking staff out of their own admin by guessing at it.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "showcase/locked_out.html"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Uploads above this are written to a temporary file instead of memory; the image rule itself is 5 MB.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Public exhibit pages are cached whole and invalidated on every content change (showcase.exhibits.page_cache).
SHOWCASE_PAGE_CACHE_SECONDS = env_int("SHOWCASE_PAGE_CACHE_SECONDS", 300)
# The page cache's own memory bound in Redis (the oldest pages are evicted first). Redis itself gets no maxmemory: it
# also carries the Celery broker and the channel layer, whose data must never be evicted.
SHOWCASE_PAGE_CACHE_MAX_MB = env_int("SHOWCASE_PAGE_CACHE_MAX_MB", 32)
# Live pages (showcase.live): the comparison's default head-to-head, and what one worker machine of this demo costs
# an hour (the live panel's cost per million tokens). 0.10 USD is about a 2-vCPU cloud machine like this one.
COMPARE_DEFAULT_PAIR = ("deepseek-v3", "llama-3-1-405b")
COMPARE_INFERENCE_QUEUE = "inference"
DEMO_HOURLY_PRICE_USD = env_price("DEMO_HOURLY_PRICE_USD", "0.10")
# Kiosk screens (showcase.kiosk): the address phones reach the site at, for the "continue on your phone" QR code
# (e.g. https://booth.example.org). Empty: the address the kiosk's own browser used.
KIOSK_PUBLIC_BASE_URL = env_str("KIOSK_PUBLIC_BASE_URL", "")

# Security headers on every response (see showcase.core.middleware for the Content-Security-Policy).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# LOG_FORMAT=json: one JSON object per line with the request, conversation and reply ids where known (see
# showcase.core.log_context), for a log shipper; the default is plain text for a person at a terminal.
LOG_FORMAT = env_str("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not a log format (use plain or json)")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "showcase.core.log_context.ContextFilter"},
        "not_ready": {"()": "showcase.core.log_context.NotReadyIsNotAnErrorFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "showcase.core.log_context.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "django.request": {"filters": ["not_ready"]}},
}

# Prometheus metrics at /metrics (showcase.core.metrics): only with `Authorization: Bearer <METRICS_TOKEN>`, or from
# one of METRICS_ALLOWED_ADDRESSES (the scraper's address as the server sees it; never list a proxy's). Neither
# set: /metrics refuses everyone.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_ADDRESSES = env_list("METRICS_ALLOWED_ADDRESSES", [])

# The chat (demo_engine): limits a visitor meets, and how replies are sampled.
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 2000)
CHAT_MAX_NEW_TOKENS = env_int("CHAT_MAX_NEW_TOKENS", 512)
CHAT_RATE_LIMIT_PER_MINUTE = env_int("CHAT_RATE_LIMIT_PER_MINUTE", 10)
CHAT_MAX_QUEUED = env_int("CHAT_MAX_QUEUED", 64)
# Replies queued or being written for one client address (chat socket), so that one client cannot fill the queue
# with many cookieless sockets. A booth behind a venue's NAT shares one address among its visitors: raise it there.
CHAT_MAX_IN_FLIGHT_PER_ADDRESS = env_int("CHAT_MAX_IN_FLIGHT_PER_ADDRESS", 8)
# Behind a reverse proxy: the request header that carries the client's real address (e.g. X-Forwarded-For; its last
# entry, the one the proxy added, is used). Empty: the connection's own peer address.
CLIENT_ADDRESS_HEADER = env_str("CLIENT_ADDRESS_HEADER", "")
CHAT_TASK_EXPIRES_S = env_int("CHAT_TASK_EXPIRES_S", 300)
CHAT_GENERATION_TIME_LIMIT_S = env_int("CHAT_GENERATION_TIME_LIMIT_S", 300)
CHAT_TEMPERATURE = 0.7
CHAT_REPETITION_PENALTY = 1.1  # the plain model's, on the chat page; never on a grounded reply nor in the API
CHAT_GROUNDED_TEMPERATURE = 0.0  # the booth assistant's default: greedy, as `eval_booth` measures it
# The booth assistant's longest answer on the chat socket, in tokens: as long as `eval_booth` measures answers.
CHAT_GROUNDED_MAX_NEW_TOKENS = env_int("CHAT_GROUNDED_MAX_NEW_TOKENS", 64)
# The engine in each worker process.
ENGINE_FP32 = env_bool("ENGINE_FP32", False)
ENGINE_DEVICE = env_str("ENGINE_DEVICE", "cpu")
ENGINE_MAX_BATCH = env_int("ENGINE_MAX_BATCH", 16)
# CPU threads of the engine's scheduler thread (see demo_engine.engine.scheduler.Scheduler): all cores but one, at
# most 4. The spare core is the web server's, Redis's and the database's: a parallel region waits for its slowest
# thread, and on 2 cores an engine on both, sharing them with Daphne and PostgreSQL, now and then took over 3 s for
# a 12-token reply (tests/e2e/test_faults.py, about 1 run in 5) where one thread takes under half a second.
ENGINE_THREADS = env_int("ENGINE_THREADS", max(1, min(4, (os.cpu_count() or 1) - 1)))
# A failed publish to the broker (Redis restarting) is retried briefly, then reported, never waited on for minutes.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
