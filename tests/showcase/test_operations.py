"""The operator's side in one process: which series exist, who may scrape them, and what a JSON log line holds."""

import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from showcase.core import log_context, metrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitoring"


def exported_series() -> set[str]:
    """Every series name one scrape of this process declares (the Redis figures included), with the sample names
    of counters and histograms."""
    names = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def referenced_series(text: str) -> set[str]:
    return set(re.findall(r"\bshowcase_[a-z_]+", text))


def test_the_dashboard_and_the_alerts_only_use_series_the_site_exports(db):
    """Every series the Grafana dashboard and the alert rules query is one that /metrics really shows."""
    exported = exported_series()
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    queries = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())
    alerts = " ".join(rule["expr"] for group in rules["groups"] for rule in group["rules"])
    used = referenced_series(queries) | referenced_series(alerts)
    assert len(used) >= 12
    assert used <= exported, used - exported
    assert {rule["alert"] for group in rules["groups"] for rule in group["rules"]} >= {
        "ShowcaseNoInferenceWorker",
        "ShowcaseQueueGrowing",
        "ShowcaseTimeToFirstTokenSlow",
        "ShowcaseReplyErrors",
    }


@pytest.mark.parametrize(
    ("token", "addresses", "authorization", "client", "allowed"),
    [
        ("s3cret-token", [], "Bearer s3cret-token", "203.0.113.9", True),
        ("s3cret-token", [], "Bearer wrong", "203.0.113.9", False),
        ("s3cret-token", [], "", "127.0.0.1", False),
        ("", [], "Bearer ", "127.0.0.1", False),  # nothing configured: nobody, not even loopback
        ("", ["10.0.0.5"], "", "10.0.0.5", True),
        ("", ["10.0.0.5"], "", "10.0.0.6", False),
    ],
)
def test_only_the_token_or_a_listed_address_may_scrape(settings, token, addresses, authorization, client, allowed):
    """A scrape needs the bearer token or an address from METRICS_ALLOWED_ADDRESSES; with neither set, nobody."""
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_ADDRESSES = token, addresses
    assert metrics.scrape_allowed(authorization=authorization, client_address=client) is allowed


def test_a_json_log_line_is_one_object_with_the_ids_and_the_traceback():
    """A record logged inside a reply's context is one line of JSON with its ids, extra fields and traceback."""
    record_holder = []
    handler = logging.Handler()
    handler.emit = record_holder.append
    handler.addFilter(log_context.ContextFilter())
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    try:
        log_context.bind(request_id="req-0001abcd", conversation_id="c-1", reply_id=42)
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logger.exception("reply %s failed", 42, extra={"event": "reply.failed"})
    finally:
        log_context.clear()
        logger.removeHandler(handler)
    line = log_context.JsonFormatter().format(record_holder[0])
    assert "\n" not in line
    event = json.loads(line)
    assert event["message"] == "reply 42 failed" and event["level"] == "ERROR" and event["event"] == "reply.failed"
    assert (event["request_id"], event["conversation_id"], event["reply_id"]) == ("req-0001abcd", "c-1", "42")
    assert "ValueError: boom" in event["exc"]


def test_a_request_id_from_a_proxy_is_kept_only_when_it_looks_like_one():
    """X-Request-ID from a proxy is reused when sane; anything else (log injection, huge) gets a fresh id."""
    assert log_context.new_request_id(b"abc-123-def-456") == "abc-123-def-456"
    for offered in (b'x"}\n{"level":"ERROR', b"a" * 500, b"", None):
        fresh = log_context.new_request_id(offered)
        assert re.fullmatch(r"[0-9a-f]{16}", fresh)
