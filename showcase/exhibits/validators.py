"""Checks on uploaded images and outbound links, shared by the models, the admin forms and the services.

An upload is accepted only if Pillow can parse it as one of a few web formats and it is at most 5 MB; the
name's extension is not trusted (a renamed HTML file is not an image).
"""

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_BYTES = 5 * 1024 * 1024
# Pillow format names; SVG is not here on purpose: it can carry scripts.
ALLOWED_IMAGE_FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "GIF": "GIF"}
# A 5 MB PNG can still decode to gigabytes: refuse more than 40 megapixels before decoding.
MAX_IMAGE_PIXELS = 40_000_000

# Only web links: a `javascript:` URL in a website field would run on click.
validate_web_url = URLValidator(schemes=["http", "https"], message=_("Enter a web address starting with https://."))


def validate_image_upload(upload: UploadedFile) -> None:
    """Refuse anything but a real JPEG, PNG, WebP or GIF of at most 5 MB, with a message saying which rule failed."""
    size = getattr(upload, "size", None)
    if size is not None and size > MAX_IMAGE_BYTES:
        raise ValidationError(
            _("The image is %(size).1f MB; the limit is 5 MB."), code="too_large", params={"size": size / 1024 / 1024}
        )
    position = upload.tell() if hasattr(upload, "tell") else None
    try:
        upload.seek(0)
        with Image.open(upload) as image:
            image_format = image.format
            width, height = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValidationError(
            _("This file is not an image we can read (allowed: JPEG, PNG, WebP, GIF)."), code="not_an_image"
        ) from exc
    finally:
        if position is not None:
            upload.seek(position)
    if image_format not in ALLOWED_IMAGE_FORMATS:
        raise ValidationError(
            _("%(format)s images are not accepted; use JPEG, PNG, WebP or GIF."),
            code="format",
            params={"format": image_format},
        )
    if width * height > MAX_IMAGE_PIXELS:
        raise ValidationError(
            _("The image is %(width)s × %(height)s pixels; the limit is 40 megapixels."),
            code="too_many_pixels",
            params={"width": width, "height": height},
        )
