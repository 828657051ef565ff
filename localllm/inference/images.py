"""Images from API requests: decoded and checked here, before a worker sees them.

Every API brings images as encoded files (base64, or a `data:` URL). They are decoded
in the server process with Pillow, never in a worker: a worker holds every stream of
its model, and a malformed file must cost only its own request. The checks come
before any pixel is decoded where they can (the header's size: a small file that
claims a huge image is a decompression bomb) and after (a truncated file fails to
decode). What goes to the worker is plain RGB pixels (`protocol.Image`), upright
as the camera's EXIF orientation says.

Remote `http(s)` image URLs are refused unless the operator allows them
(`LOCALLLM_IMAGE_URLS=1`): fetching what a request names lets any caller make the
server reach hosts of its network (request forgery).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from collections.abc import Sequence

from localllm.engine.protocol import Image
from localllm.errors import APIError
from localllm.inference.request import ImageIn

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
"""What the APIs' clients send (OpenAI and Anthropic take PNG, JPEG, WebP and GIF)."""
MAX_SIDE = 16_384
MAX_PIXELS = 50_000_000
"""About 200 MB of pixels once decoded; a 48-megapixel phone photo still passes."""
MAX_BYTES = 32 << 20
"""The largest encoded image (32 MiB; Anthropic's API takes at most 5 MB)."""
FETCH_SECONDS = 10.0

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*),", re.ASCII)


def decode_base64(text: str, where: str) -> bytes:
    """The bytes of a base64 image (Ollama's `images` items, Anthropic's `data`)."""
    if len(text) > MAX_BYTES * 4 // 3 + 4:
        raise APIError(400, f"{where}: the image is over {MAX_BYTES >> 20} MiB")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{where}: not base64-encoded image data") from None


def from_url(url: str, where: str, allow_remote: bool) -> bytes:
    """The bytes of an image URL: a `data:` URL's, or (when allowed) a fetched one's."""
    if url.startswith("data:"):
        match = _DATA_URL.match(url)
        if match is None or ";base64" not in match.group("params"):
            raise APIError(400, f"{where}: a data URL must be data:image/...;base64,...")
        return decode_base64(url[match.end() :], where)
    if not url.startswith(("http://", "https://")):
        raise APIError(400, f"{where}: an image URL must be a data: URL")
    if not allow_remote:
        raise APIError(
            400,
            f"{where}: remote image URLs are off (fetching them lets a request reach "
            "hosts of this network); send the image as a data: URL, or start the "
            "server with LOCALLLM_IMAGE_URLS=1",
        )
    return _fetch(url, where)


def _fetch(url: str, where: str) -> bytes:
    import httpx

    try:
        with httpx.stream("GET", url, timeout=FETCH_SECONDS, follow_redirects=False) as r:
            if r.status_code != 200:
                raise APIError(400, f"{where}: fetching the image gave HTTP {r.status_code}")
            data = bytearray()
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > MAX_BYTES:
                    raise APIError(400, f"{where}: the image is over {MAX_BYTES >> 20} MiB")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise APIError(400, f"{where}: the image could not be fetched ({exc})") from None


def load_image(data: bytes, where: str) -> Image:
    """`data` (an encoded image file) as checked RGB pixels; APIError 400 naming `where`
    and the problem: not an image, a format not taken, too large, truncated."""
    from PIL import Image as PILImage
    from PIL import ImageOps, UnidentifiedImageError

    if len(data) > MAX_BYTES:
        raise APIError(400, f"{where}: the image is over {MAX_BYTES >> 20} MiB")
    try:
        with PILImage.open(io.BytesIO(data), formats=FORMATS) as img:
            width, height = img.size
            _check_size(width, height, where)
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = upright.convert("RGB")
    except UnidentifiedImageError:
        raise APIError(
            400, f"{where}: not an image in a format taken here ({', '.join(FORMATS)})"
        ) from None
    except PILImage.DecompressionBombError:
        raise APIError(
            400, f"{where}: the image is too large: at most {MAX_PIXELS // 1_000_000} megapixels"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated, corrupt
        raise APIError(400, f"{where}: the image could not be decoded ({exc})") from None
    pixels = rgb.tobytes()
    digest = hashlib.sha256(pixels + f"{rgb.width}x{rgb.height}".encode()).hexdigest()
    return Image(rgb.width, rgb.height, pixels, digest)


def _check_size(width: int, height: int, where: str) -> None:
    if width < 1 or height < 1 or max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise APIError(
            400,
            f"{where}: the image is {width}x{height} pixels; at most {MAX_SIDE} a side "
            f"and {MAX_PIXELS // 1_000_000} megapixels are taken",
        )


def check_vision(model: str, has_projector: bool, where: str) -> None:
    """A model without a projector refuses images, never ignores them."""
    if not has_projector:
        raise APIError(
            400,
            f"{where}: model {model!r} does not take images: it has no vision projector "
            "(pull a vision model, or add its mmproj GGUF with a second FROM line)",
        )


async def load_images(
    images: Sequence[ImageIn], model: str, has_projector: bool, allow_urls: bool
) -> tuple[Image, ...]:
    """Each image of a request checked and decoded, off the event loop: decoding a
    large photo takes long enough to hold up every other stream's output."""
    if not images:
        return ()
    check_vision(model, has_projector, images[0].where)
    from starlette.concurrency import run_in_threadpool

    def load(image: ImageIn) -> Image:
        data = image.data
        if data is None:
            data = from_url(image.url or "", image.where, allow_urls)
        return load_image(data, image.where)

    return await run_in_threadpool(lambda: tuple(load(i) for i in images))
