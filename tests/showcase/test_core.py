"""Health checks, security headers and the first staff account, through Django's test client."""

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from showcase.core import selectors
from showcase.core.log_context import NotReadyIsNotAnErrorFilter


def test_live_is_200(client):
    """/healthz/live answers 200 without touching any other part."""
    response = client.get("/healthz/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


@pytest.mark.django_db
def test_ready_is_503_naming_redis_when_redis_is_unreachable(client, settings):
    """With Redis unreachable, readiness is 503 and names Redis (and the worker, which needs it)."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz/ready")
    body = json.loads(response.content)
    assert response.status_code == 503
    assert "redis" in body["down"]
    assert body["parts"]["database"]["ok"] is True


@pytest.mark.django_db
def test_not_ready_is_logged_as_information_not_as_an_error(client, settings, caplog):
    """`make run` polls readiness while the worker loads: its 503s are logged at INFO, not as server errors; any
    other 5xx stays an error."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    client.get("/healthz/ready")
    records = [record for record in caplog.records if record.name == "django.request"]
    assert records and all(record.levelname == "INFO" for record in records)
    other = logging.LogRecord("django.request", logging.ERROR, "", 0, "Service Unavailable: /chat/", (), None)
    other.status_code, other.request = 503, RequestFactory().get("/chat/")
    NotReadyIsNotAnErrorFilter().filter(other)
    assert other.levelname == "ERROR"


@pytest.mark.django_db
def test_redis_status_is_ok_for_the_test_redis():
    """The Redis the tests chose answers, so a red 'redis' above is caused by the bad URL alone."""
    assert selectors.redis_status()["ok"] is True


@pytest.mark.django_db
def test_every_page_carries_security_headers(client):
    """Responses carry a CSP without inline scripts, nosniff and a referrer policy."""
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


@pytest.mark.django_db
def test_unknown_page_is_the_friendly_404(client):
    """An unknown address shows the site's own 404 page, not Django's."""
    response = client.get("/no-such-exhibit/")
    assert response.status_code == 404
    assert b"not on show" in response.content


@pytest.mark.django_db
def test_admin_needs_a_login(client):
    """/admin/ sends an anonymous visitor to the login page."""
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_first_staff_account_from_environment(monkeypatch):
    """The staff account is created from the environment once; a second run leaves it unchanged."""
    monkeypatch.setenv("SHOWCASE_ADMIN_USERNAME", "booth-admin")
    monkeypatch.setenv("SHOWCASE_ADMIN_PASSWORD", "wide-Cormorant-58-lantern")
    call_command("ensure_staff")
    call_command("ensure_staff")
    user = get_user_model().objects.get(username="booth-admin")
    assert user.is_staff and user.is_superuser and user.check_password("wide-Cormorant-58-lantern")


@pytest.mark.django_db
def test_weak_staff_password_is_refused(monkeypatch):
    """A weak staff password is refused; no account is created with it."""
    monkeypatch.setenv("SHOWCASE_ADMIN_USERNAME", "booth-admin")
    monkeypatch.setenv("SHOWCASE_ADMIN_PASSWORD", "password")
    with pytest.raises(CommandError, match="too weak"):
        call_command("ensure_staff")
    assert not get_user_model().objects.filter(username="booth-admin").exists()


@pytest.mark.django_db
def test_error_responses_carry_security_headers_too(client):
    """Even a request refused before any view runs (an unknown Host) gets the CSP and nosniff headers."""
    response = client.get("/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
