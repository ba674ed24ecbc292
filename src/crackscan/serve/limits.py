"""Request limits and access control: body size, image type, pixel count, API key.

The body limit is an ASGI middleware rather than a dependency because FastAPI reads
(and spools) a multipart body before any dependency runs; counting the bytes as they
stream in is the only way to stop an oversized upload at the limit instead of after it.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crackscan.imageio import ImageInfo, ImageReadError, probe
from crackscan.serve.errors import ApiError, error_body

API_KEY_HEADER = "X-API-Key"
MAX_FILENAME_CHARS = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+,=@-]+")

# Magic bytes of the formats the service accepts; the declared content type and the
# file name are the client's claims, the first bytes are what the decoder will see.
_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("jpeg", b"\xff\xd8\xff", 0),
    ("png", b"\x89PNG\r\n\x1a\n", 0),
    ("tiff", b"II*\x00", 0),
    ("tiff", b"MM\x00*", 0),
    ("bmp", b"BM", 0),
)
SUPPORTED_TYPES = ("jpeg", "png", "tiff", "bmp", "webp")


def too_large(message: str) -> ApiError:
    return ApiError(413, "too_large", message)


# --------------------------------------------------------------------------- body size


class _BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413: by Content-Length at once, else while streaming.

    The byte count covers the whole body as it arrives (multipart framing included), so
    a client that lies about or omits Content-Length is cut off at the limit, before
    the rest is read or spooled.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        mb = self.max_bytes / (1024 * 1024)
        return f"request body exceeds the upload limit of {mb:g} MB ({self.max_bytes:,} bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_json(send, 413, error_body("too_large", self._message()), close=True)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An ApiError is rendered by FastAPI's handlers when raised inside a route's
                    # body parsing; _BodyTooLarge below catches the cases outside one.
                    raise too_large(self._message())
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except ApiError as exc:
            if started or exc.status_code != 413:
                raise
            await _send_json(send, 413, error_body("too_large", self._message()), close=True)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], *, close: bool = False) -> None:
    import json

    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:
        # The unread rest of the body cannot be skipped cheaply: end the connection after answering.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


# --------------------------------------------------------------------------- images


def sniff_image_type(data: bytes) -> str | None:
    """The image format from the first bytes (``jpeg``, ``png``, ``tiff``, ``bmp``, ``webp``) or ``None``."""
    for name, magic, offset in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def sanitize_filename(name: str | None) -> str:
    """A client's file name made safe to echo: last path part, printable safe characters, ≤ 120 chars.

    The result is only ever echoed back in responses; it never becomes part of a path.
    """
    if not name:
        return "upload"
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", name))[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")  # control characters out
    base = _UNSAFE.sub("_", base).strip(" .")
    return base[:MAX_FILENAME_CHARS] or "upload"


def check_image(data: bytes, filename: str, max_pixels: int) -> ImageInfo:
    """Validate an upload before decoding: type by magic bytes (415), header (400), pixel count (413)."""
    if not data:
        raise ApiError(400, "bad_image", f"{filename}: empty file (0 bytes)")
    kind = sniff_image_type(data)
    if kind is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{filename}: not a supported image (by content; accepted: {', '.join(SUPPORTED_TYPES)})",
        )
    try:
        info = probe(data)
    except ImageReadError as exc:
        raise ApiError(400, "bad_image", f"{filename}: {exc.reason}") from None
    if info.width <= 0 or info.height <= 0:
        raise ApiError(400, "bad_image", f"{filename}: invalid dimensions {info.width}×{info.height}")
    if info.pixels > max_pixels:
        raise too_large(
            f"{filename}: {info.width}×{info.height} = {info.pixels:,} pixels exceeds the limit of {max_pixels:,}"
        )
    return info


# --------------------------------------------------------------------------- API key


def require_api_key(request: Request) -> None:
    """Dependency: with an API key configured, ``X-API-Key`` must match it (constant-time compare)."""
    settings = request.app.state.settings
    if not settings.auth_enabled:
        return
    given = request.headers.get(API_KEY_HEADER)
    expected = settings.api_key.get_secret_value()
    if given is None or not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(
            401,
            "unauthorized",
            f"missing or wrong API key; send it in the {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )
