"""Reading settings from the environment, with one-line errors that name the variable.

This module must not import Django settings (it runs while they are being built).
"""

import os
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    """A string variable, `default` when unset."""
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    """A boolean variable; anything but 1/0, true/false, yes/no, on/off is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    """A whole-number variable."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def env_price(name: str, default: str) -> Decimal:
    """A non-negative amount of money, e.g. 0.10."""
    raw = os.environ.get(name, default)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a price in USD (e.g. 0.10)")
    return value


def env_list(name: str, default: list[str] | None) -> list[str]:
    """A comma-separated list; `default` None makes the variable required."""
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set (comma-separated) when DJANGO_PRODUCTION=1")
        return default
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name} is set but empty")
    return items


def load_secret_key(*, production: bool, var_dir: Path) -> str:
    """SECRET_KEY from the environment; outside production, one generated once and kept under var/."""
    key = os.environ.get("SECRET_KEY")
    if key is not None:
        if len(key) < 50 or len(set(key)) < 5:
            raise ImproperlyConfigured("SECRET_KEY is too short: use at least 50 random characters")
        return key
    if production:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_PRODUCTION=1")
    key_file = var_dir / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


# The web process and the worker write the same SQLite file at once (a question, then its reply). Write-ahead
# logging lets readers go on during a write and makes a commit one append instead of a journal rewrite with
# several fsyncs; IMMEDIATE transactions take the write lock up front, so two writers queue (busy timeout)
# instead of one failing with "database is locked" when it upgrades a read lock.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}


def load_database(*, default_sqlite: Path) -> dict:
    """DATABASES['default'] from DATABASE_URL (sqlite:/// or postgres://), else an SQLite file."""
    raw = os.environ.get("DATABASE_URL")
    if raw is None:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite), "OPTIONS": SQLITE_OPTIONS}
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(f"DATABASE_URL={raw!r} is not a database URL (use sqlite:///path or postgres://…)")
    try:
        config = _env.db_url_config(raw)
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"DATABASE_URL={raw!r} is not a database URL ({exc})") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    return config
