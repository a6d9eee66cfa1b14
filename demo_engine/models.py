"""Conversations and their messages. Every reply is saved with its status, its text and its figures."""

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


class Conversation(models.Model):
    """One visitor's chat, tied to their browser session."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session_key = models.CharField(max_length=64, db_index=True)
    title = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The visitor's language when the conversation started: the blocked phrases of that language apply to it.
    language = models.CharField(_("language"), max_length=16, blank=True)
    # Set when the conversation was held at one of the booth's own screens (showcase.kiosk).
    kiosk_screen = models.ForeignKey(
        "kiosk.KioskScreen", null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations",
        verbose_name=_("kiosk screen"),
    )  # fmt: skip
    # The content filter (demo_engine.moderation) flags a conversation when it refuses a message or cuts a reply.
    flagged_at = models.DateTimeField(_("flagged"), null=True, blank=True)
    flag_reason = models.CharField(_("why it was flagged"), max_length=200, blank=True)
    hidden_from_kiosk = models.BooleanField(
        _("hidden from the kiosk"), default=False,
        help_text=_("Never show this conversation's questions in a kiosk's attract loop."),
    )  # fmt: skip

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    """A turn of a conversation: the visitor's question or the model's reply."""

    class Role(models.TextChoices):
        SYSTEM = "system", _("system")
        USER = "user", _("visitor")
        ASSISTANT = "assistant", _("model")

    class Origin(models.TextChoices):
        CHAT = "chat", _("chat page")
        API = "api", _("HTTP API")

    class Status(models.TextChoices):
        QUEUED = "queued", _("waiting for a worker")
        STREAMING = "streaming", _("streaming")
        DONE = "done", _("done")
        STOPPED = "stopped", _("stopped")
        FAILED = "failed", _("failed")

    FINAL_STATUSES = (Status.DONE, Status.STOPPED, Status.FAILED)

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # Names the reply's keys in Redis beside its integer id: a database reset reuses ids, never this.
    stream_token = models.UUIDField(default=uuid.uuid4, editable=False, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DONE, db_index=True)
    failure_reason = models.CharField(max_length=300, blank=True)
    # A machine-readable reason beside the words: "no_worker", "worker_lost", "prompt_too_long", "engine_error"…
    failure_code = models.CharField(max_length=40, blank=True)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.CHAT)
    # A regenerated reply replaces the one before it; the old one is kept, not shown, not sent to the model.
    superseded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The reply's figures, as the engine reported them.
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    generated_tokens = models.PositiveIntegerField(null=True, blank=True)
    time_to_first_token_ms = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    backend = models.CharField(max_length=60, blank=True)
    dropped_turns = models.PositiveIntegerField(default=0)
    # How the reply was sampled, so that it can be reproduced.
    seed = models.BigIntegerField(null=True, blank=True)
    temperature = models.FloatField(default=0.7)
    top_p = models.FloatField(default=0.9)
    max_new_tokens = models.PositiveIntegerField(default=512)
    # Penalties on tokens already generated, applied only when asked for: 1.0 and 0.0 leave the logits untouched.
    repetition_penalty = models.FloatField(default=1.0)
    frequency_penalty = models.FloatField(default=0.0)
    presence_penalty = models.FloatField(default=0.0)
    # OpenAI's logit_bias as the API client sent it: token id (a string, as in JSON) -> a number from -100 to 100.
    logit_bias = models.JSONField(default=dict, blank=True)
    # Generation ends (finish reason "stop") before the first of these strings; the string itself is not kept.
    stop_sequences = models.JSONField(default=list, blank=True)
    # The booth assistant (demo_engine.booth): answered from the published content, with the sources shown under
    # the reply (title, fact, link) and the figures of its text that none of them contains.
    grounded = models.BooleanField(default=False)
    sources = models.JSONField(default=list, blank=True)
    unsupported_figures = models.JSONField(default=list, blank=True)
    unsupported_figure_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_role_display()}: {self.content[:40]}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class ApiKey(models.Model):
    """A key to the HTTP API (`/v1/`). Only a SHA-256 hash of the secret is kept; the secret is shown once."""

    name = models.CharField(max_length=120, help_text=_("Who or what uses this key, e.g. 'hackathon team 3'."))
    # The key's first characters, kept in clear so staff can tell keys apart ("sk-waic-Ab12…").
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    requests_per_minute = models.PositiveIntegerField(
        default=60, help_text=_("Completions this key may ask for per minute; more are refused with 429.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ApiUsage(models.Model):
    """What one API key used on one day: completions accepted and tokens read and written."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "api_key_id"]
        verbose_name = _("API usage")
        verbose_name_plural = _("API usage")
        constraints = [models.UniqueConstraint(fields=["api_key", "day"], name="api_usage_one_row_per_key_and_day")]

    def __str__(self) -> str:
        return f"{self.api_key.name} {self.day}: {self.requests} requests"


class BlockedPhrase(models.Model):
    """A word or phrase a public screen must not show: a visitor's message containing it is refused, and a reply
    that produces it is cut there (demo_engine.moderation). Matched without regard to case, as a whole word where
    the phrase begins or ends with a Latin letter or digit ("con" does not match "contest")."""

    phrase = models.CharField(_("word or phrase"), max_length=100)
    # Blank: every language. A word can be harmless in one language and not in another.
    language = models.CharField(_("language"), max_length=16, blank=True, choices=[("", _("every language")),
                                ("en", "English"), ("fr", "Français"), ("zh-hans", "简体中文")])  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["language", "phrase"]
        verbose_name = _("blocked phrase")
        verbose_name_plural = _("blocked phrases")
        constraints = [models.UniqueConstraint(fields=["phrase", "language"], name="blocked_phrase_once_per_language")]

    def __str__(self) -> str:
        return f"{self.phrase} ({self.language or '*'})"
