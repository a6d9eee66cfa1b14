"""What keeps strangers out: the admin needs a login and locks out guessers, every form needs its CSRF token,
and production responses carry the security headers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

BASE_DIR = Path(__file__).resolve().parents[2]
STAFF_PASSWORD = "booth-Staff-pass-2025!"

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_user():
    return get_user_model().objects.create_user("curator", password=STAFF_PASSWORD, is_staff=True, is_superuser=True)


def plain_paths() -> list[str]:
    """Every URL of the site without a parameter in it (the default language's prefix is empty)."""
    found: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and not any(mark in route for mark in "<^(?"):
                found.append("/" + route)

    walk(get_resolver().url_patterns, "")
    return found


def test_every_admin_page_sends_an_anonymous_visitor_to_the_login():
    """No admin page (index, each model's list and add form) shows anything to a visitor who has not logged in."""
    client = Client()
    pages = ["/admin/"]
    for model in admin.site._registry:
        pages += [f"/admin/{model._meta.app_label}/{model._meta.model_name}/",
                  f"/admin/{model._meta.app_label}/{model._meta.model_name}/add/"]  # fmt: skip
    assert len(pages) > 20
    for path in pages:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/admin/login/"), path


def test_repeated_failed_logins_lock_the_admin_out_with_a_clear_message(settings, staff_user):
    """After the allowed number of wrong passwords, even the right one is refused with a page saying why."""
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post("/admin/login/", {"username": "curator", "password": "guess"})
        assert response.status_code == 200 and b"Please enter the correct username" in response.content
    response = client.post("/admin/login/", {"username": "curator", "password": "guess"})
    assert response.status_code == 429
    locked = client.post("/admin/login/", {"username": "curator", "password": STAFF_PASSWORD})
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert client.get("/admin/").status_code == 302


def test_a_few_wrong_passwords_do_not_lock_out_staff(settings, staff_user):
    """Below the limit, the right password still signs staff in (and clears the count)."""
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/admin/login/", {"username": "curator", "password": "guess"})
    response = client.post("/admin/login/", {"username": "curator", "password": STAFF_PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_lockout_of_one_name_does_not_lock_out_another(settings, staff_user):
    """A stranger guessing at one name cannot lock other staff out of their own admin."""
    get_user_model().objects.create_user("director", password=STAFF_PASSWORD, is_staff=True)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "curator", "password": "guess"})
    response = client.post("/admin/login/", {"username": "director", "password": STAFF_PASSWORD})
    assert response.status_code == 302


def test_every_post_without_a_csrf_token_is_refused(staff_user):
    """A POST to any page of the site without the CSRF token is refused with 403, logged in or not; only the
    HTTP API, which takes a bearer key and no cookie, answers otherwise (401 without a key, 405 for a GET-only URL)."""
    paths = plain_paths()
    assert "/admin/login/" in paths and "/i18n/setlang/" in paths and "/admin/exhibits/exhibitor/add/" in paths
    anonymous = Client(enforce_csrf_checks=True)
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(staff_user)
    for client in (anonymous, staff):
        for path in paths:
            form = {"username": "curator", "password": STAFF_PASSWORD, "language": "fr"}
            status = client.post(path, form).status_code
            if path.startswith("/v1/"):
                assert status in (401, 405), path
            else:
                assert status == 403, path


def test_a_post_with_the_csrf_token_is_accepted(staff_user):
    """The same login, with the token the form carries, signs staff in (so the 403 above is the token's doing)."""
    client = Client(enforce_csrf_checks=True)
    client.get("/admin/login/")
    token = client.cookies["csrftoken"].value
    response = client.post("/admin/login/", {"username": "curator", "password": STAFF_PASSWORD,
                                             "csrfmiddlewaretoken": token})  # fmt: skip
    assert response.status_code == 302


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)  # production pages name hashed static files
from django.test import Client
client = Client(HTTP_HOST="booth.example")
answers = {}
for path in ["/", "/exhibitors/", "/compare/", "/chat/", "/admin/login/", "/healthz/live", "/no-such-page/"]:
    response = client.get(path, secure=True)
    cookies = {name: {"secure": bool(c["secure"]), "httponly": bool(c["httponly"])}
               for name, c in response.cookies.items()}
    answers[path] = {"status": response.status_code, "headers": dict(response.headers), "cookies": cookies}
plain = client.get("/", secure=False)
answers["http"] = {"status": plain.status_code, "location": plain.get("Location", "")}
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def production_answers(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("production")
    ignored = {"DJANGO_PRODUCTION", "SECRET_KEY", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE", "DATABASE_URL"}
    env = {name: value for name, value in os.environ.items() if name not in ignored}
    env.update(DJANGO_PRODUCTION="1", SECRET_KEY="k3y-" + "x7Qp9vLm2sTz" * 6, ALLOWED_HOSTS="booth.example",
               DATABASE_URL=f"sqlite:///{tmp / 'production.sqlite3'}", SHOWCASE_PAGE_CACHE_SECONDS="0",
               DJANGO_SETTINGS_MODULE="showcase.settings", LOG_LEVEL="WARNING")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", PRODUCTION_PROBE], cwd=BASE_DIR, env=env, capture_output=True,
                            text=True, timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", ["/", "/exhibitors/", "/compare/", "/chat/", "/admin/login/", "/healthz/live",
                                  "/no-such-page/"])  # fmt: skip
def test_production_responses_carry_the_security_headers(production_answers, path):
    """In production mode every response, error pages included, has HSTS, a CSP without inline scripts,
    Referrer-Policy, nosniff and frame denial."""
    answer = production_answers[path]
    assert answer["status"] in (200, 404), answer["status"]
    headers = {name.lower(): value for name, value in answer["headers"].items()}
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    assert "includeSubDomains" in headers["strict-transport-security"]
    csp = dict(part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";"))
    assert csp["script-src"] == "'self'"
    assert "unsafe-inline" not in csp["script-src"] and "unsafe-eval" not in headers["content-security-policy"]
    assert csp["object-src"] == "'none'" and csp["frame-ancestors"] == "'none'"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


def test_production_cookies_are_secure_and_plain_http_is_redirected(production_answers):
    """In production the session and CSRF cookies travel over HTTPS only, and plain HTTP is sent to HTTPS."""
    session = production_answers["/chat/"]["cookies"]["sessionid"]
    assert session == {"secure": True, "httponly": True}
    assert production_answers["/admin/login/"]["cookies"]["csrftoken"]["secure"] is True
    assert production_answers["http"]["status"] == 301
    assert production_answers["http"]["location"] == "https://booth.example/"
