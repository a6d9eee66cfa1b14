"""What the booth assistant answers from: one passage per published record, and the questions suggested to visitors.

A passage is derived data: `rebuild_booth_index` makes it again from the content at any time. Its lexical twin
lives in an FTS5 table on SQLite (`booth_passage_fts`, created by the migration) or in a full-text GIN index on
PostgreSQL; its dense vector is stored here as 384 float32 bytes.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Passage(models.Model):
    """One published record as the assistant reads it: a compact text and the facts a source card shows."""

    # "exhibitor:12": the record it was built from; one passage per record.
    record_key = models.CharField(max_length=80, unique=True)
    kind = models.CharField(max_length=20, db_index=True)
    title = models.CharField(max_length=300)
    url = models.CharField(max_length=500)
    text = models.TextField()
    facts = models.JSONField(default=list)
    # The words the lexical index matches (names, codes split and joined, Chinese as character pairs).
    search_text = models.TextField(blank=True)
    embedding = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["record_key"]
        verbose_name = _("passage")
        verbose_name_plural = _("passages")

    def __str__(self) -> str:
        return self.record_key


class IndexVersion(models.Model):
    """One row whose number grows with every change of the index: a worker reloads its vectors when it moved."""

    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = _("index version")

    def __str__(self) -> str:
        return str(self.version)


class SuggestedQuestion(models.Model):
    """A question shown as a button on the chat page, in one language."""

    class Language(models.TextChoices):
        ENGLISH = "en", _("English")
        FRENCH = "fr", _("French")
        CHINESE = "zh-hans", _("Simplified Chinese")

    language = models.CharField(_("language"), max_length=10, choices=Language.choices, default=Language.ENGLISH)
    text = models.CharField(_("question"), max_length=200)
    position = models.PositiveIntegerField(_("position"), default=0)
    is_active = models.BooleanField(_("shown"), default=True)

    class Meta:
        ordering = ["language", "position", "id"]
        verbose_name = _("suggested question")
        verbose_name_plural = _("suggested questions")

    def __str__(self) -> str:
        return f"[{self.language}] {self.text}"
