"""The image rule on its own: what an upload must be, whichever way it arrives."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from showcase.exhibits.validators import validate_image_upload, validate_web_url


def upload(image_format: str, size: tuple[int, int] = (4, 4)) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", size).save(buffer, format=image_format)
    return SimpleUploadedFile(f"x.{image_format.lower()}", buffer.getvalue())


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF"])
def test_web_images_pass(image_format):
    """JPEG, PNG, WebP and GIF images are accepted."""
    validate_image_upload(upload(image_format))


def test_tiff_is_refused_by_name():
    """A TIFF is a real image but not a web one: the message names the format."""
    with pytest.raises(ValidationError, match="TIFF images are not accepted"):
        validate_image_upload(upload("TIFF"))


def test_truncated_png_is_refused():
    """A PNG cut in half is refused as unreadable."""
    data = upload("PNG", (64, 64)).read()
    with pytest.raises(ValidationError, match="not an image we can read"):
        validate_image_upload(SimpleUploadedFile("x.png", data[: len(data) // 2]))


def test_javascript_url_is_refused():
    """Only http and https addresses are accepted as links."""
    with pytest.raises(ValidationError):
        validate_web_url("javascript:alert(1)")
    validate_web_url("https://example.com/")
