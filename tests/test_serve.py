"""The HTTP service (``crackscan serve``): every endpoint, every error code, limits, queue, metrics, CLI.

In-process (``fastapi.testclient.TestClient``) against tiny torch-free ONNX models from
``onnx_models``: the segmenter calls dark pixels crack, the classifier dark images.
"""

from __future__ import annotations

import base64
import builtins
import io
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from conftest import make_png_claiming, make_truncated_jpeg
from crackscan.serve import ServeSettings, create_app
from crackscan.serve.limits import sanitize_filename, sniff_image_type
from onnx_models import classification_model, segmentation_model

pytestmark = pytest.mark.timeout(120)


# --------------------------------------------------------------------------- fixtures


def encode(array: np.ndarray, fmt: str = "PNG", **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def crack_photo(h: int = 160, w: int = 240, *, crack: bool = True) -> np.ndarray:
    """Light grey wall with (optionally) one dark horizontal crack 4 px wide from x=20 to x=w-20."""
    img = np.full((h, w, 3), 200, np.uint8)
    if crack:
        img[h // 2 : h // 2 + 4, 20 : w - 20] = 10
    return img


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("serve-models")
    classification_model(d / "cls.onnx")
    segmentation_model(d / "seg.onnx")
    return d


def make_client(model_dir: Path, **overrides: Any) -> TestClient:
    settings = ServeSettings(models=[str(model_dir / "cls.onnx"), str(model_dir / "seg.onnx")], **overrides)
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def client(model_dir: Path):  # type: ignore[no-untyped-def]
    with make_client(model_dir, max_upload_bytes=2 * 1024 * 1024, max_pixels=4_000_000) as c:
        yield c


@pytest.fixture(scope="module")
def png() -> bytes:
    return encode(crack_photo())


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# --------------------------------------------------------------------------- health, models, OpenAPI, page


def test_health_ready_models_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True and ready.json()["models"] == 2
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["cls"]["task"] == "classify" and models["seg"]["task"] == "segment"
    assert models["cls"]["default_for"] == ["/v1/classify"]
    assert models["seg"]["default_for"] == ["/v1/segment", "/v1/inspect"]
    assert models["seg"]["metadata"]["extra"]["size_multiple"] == 32
    spec = client.get("/openapi.json").json()
    for path in ("/healthz", "/readyz", "/v1/models", "/v1/classify", "/v1/segment", "/v1/inspect", "/metrics"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert {"ClassifyResponse", "SegmentResponse", "InspectResponse", "ErrorResponse"} <= set(schemas)
    docs = client.get("/docs")
    assert docs.status_code == 200
    # Swagger UI comes from this server, never a CDN (inspection networks are often offline).
    assert "cdn" not in docs.text.lower() and "/docs-static/swagger-ui-bundle.js" in docs.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/docs-static/{asset}").status_code == 200


def test_models_list_held_out_digests_by_count(tmp_path: Path) -> None:
    digests = [f"{i:012x}" for i in range(3)]
    extra = {"training_data": {"sources": [{"name": "walls", "test_digests": digests}]}}
    segmentation_model(tmp_path / "seg.onnx", extra=extra)
    with TestClient(create_app(ServeSettings(models=[str(tmp_path / "seg.onnx")]))) as c:
        (listed,) = c.get("/v1/models").json()["models"]
    assert listed["metadata"]["extra"]["training_data"]["sources"][0] == {
        "name": "walls",
        "test_digests": "3 content digests",
    }


def test_readyz_is_503_without_models() -> None:
    with TestClient(create_app(ServeSettings(models=[]))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert_error(c.post("/v1/classify", files={"file": ("a.png", encode(crack_photo()))}), 503)


def test_web_page_is_local(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'type="file"' in page.text and 'id="mm"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "http" not in r.text.replace("HTTP ", "")
    assert "/v1/inspect" in client.get("/static/app.js").text


# --------------------------------------------------------------------------- inference


def test_classify_several_files(client: TestClient) -> None:
    dark = encode(np.full((50, 70, 3), 20, np.uint8), "JPEG")
    light = encode(np.full((50, 70, 3), 230, np.uint8), "PNG")
    r = client.post("/v1/classify", files=[("file", ("dark.jpg", dark)), ("file", ("light.png", light))])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "cls" and body["threshold"] == 0.5
    dark_r, light_r = body["results"]
    assert dark_r == {**dark_r, "filename": "dark.jpg", "label": "crack", "crack": True}
    assert light_r["label"] == "no_crack" and light_r["crack"] is False
    assert 0.5 < light_r["probability"] <= 1 and light_r["crack_probability"] < 0.5
    # a threshold of the caller's: under the light image's crack probability, both are cracks
    low = light_r["crack_probability"] / 2
    again = client.post(f"/v1/classify?threshold={low}", files=[("file", ("light.png", light))]).json()
    assert again["threshold"] == low and again["results"][0]["crack"] is True
    assert_error(client.post("/v1/classify", files=[("file", ("a.png", light))], data={"threshold": "1.5"}), 422)


def test_segment_json_and_png(client: TestClient, png: bytes) -> None:
    r = client.post("/v1/segment", files={"file": ("wall.png", png)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width_px"], body["height_px"], body["model"]) == (240, 160, "seg")
    assert body["crack_pixels"] == 4 * 200
    assert body["crack_pixel_fraction"] == pytest.approx(800 / (240 * 160), abs=1e-5)
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png_base64"]))))
    assert mask.shape == (160, 240) and set(np.unique(mask)) == {0, 255} and int((mask > 0).sum()) == 800

    raw = client.post("/v1/segment?format=png", files={"file": ("wall.png", png)})
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    assert float(raw.headers["x-crack-pixel-fraction"]) == pytest.approx(body["crack_pixel_fraction"])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw.content))), mask)


def test_segment_and_inspect_take_a_threshold_and_tta(client: TestClient, png: bytes) -> None:
    """The tiny model's probability is 2e-5 on the wall and 0.985 on the crack: a threshold between keeps the
    crack, one above it drops it; flip TTA (this model is per-pixel, so flips change nothing) is echoed back."""
    default = client.post("/v1/segment", files={"file": ("w.png", png)}).json()
    assert default["tta"] is False and default["crack_pixels"] == 800
    low = client.post("/v1/segment?threshold=0.01", files={"file": ("w.png", png)}).json()
    assert low["threshold"] == 0.01 and low["crack_pixels"] == 800
    high = client.post("/v1/segment", files={"file": ("w.png", png)}, data={"threshold": "0.999"}).json()
    assert high["threshold"] == 0.999 and high["crack_pixels"] == 0
    flipped = client.post("/v1/segment?tta=true", files={"file": ("w.png", png)}).json()
    assert flipped["tta"] is True and flipped["crack_pixels"] == 800
    raw = client.post("/v1/segment?format=png&threshold=0.3", files={"file": ("w.png", png)})
    assert raw.headers["x-crackscan-threshold"] == "0.3"

    seen = client.post("/v1/inspect", files={"file": ("w.png", png)}, data={"tta": "true", "threshold": "0.4"}).json()
    assert seen["tta"] is True and seen["threshold"] == 0.4 and seen["totals"]["cracks"] == 1
    none = client.post("/v1/inspect?threshold=0.999", files={"file": ("w.png", png)}).json()
    assert none["crack"] is False and none["cracks"] == []
    for bad in ("0", "1", "-0.2", "nan", "abc"):
        assert_error(client.post(f"/v1/segment?threshold={bad}", files={"file": ("a.png", png)}), 422)
        assert_error(client.post("/v1/inspect", files={"file": ("a.png", png)}, data={"threshold": bad}), 422)


def test_inspect_measures_with_and_without_scale(client: TestClient, png: bytes) -> None:
    r = client.post("/v1/inspect", files={"file": ("wall.png", png)}, data={"mm_per_px": "0.1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["crack"] is True and body["task"] == "segment" and body["mm_per_px"] == 0.1
    assert body["totals"]["cracks"] == 1 and len(body["cracks"]) == 1
    crack = body["cracks"][0]
    assert crack["length_px"] == pytest.approx(200, abs=3)
    assert crack["max_width_px"] == pytest.approx(4, abs=1)
    assert crack["length_mm"] == pytest.approx(crack["length_px"] * 0.1, rel=1e-3)
    assert body["severity"] not in ("none", "unknown")
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png_base64"])))
    assert overlay.format == "PNG" and overlay.size == (body["overlay_width_px"], body["overlay_height_px"])

    # the query parameter works too; without a scale there are no mm and the severity is unknown
    q = client.post("/v1/inspect?mm_per_px=0.5", files={"file": ("wall.png", png)}).json()
    assert q["mm_per_px"] == 0.5 and q["cracks"][0]["max_width_mm"] == pytest.approx(
        q["cracks"][0]["max_width_px"] * 0.5
    )
    plain = client.post("/v1/inspect", files={"file": ("wall.png", png)}).json()
    assert plain["mm_per_px"] is None and plain["cracks"][0]["length_mm"] is None and plain["severity"] == "unknown"
    clean = client.post("/v1/inspect", files={"file": ("clean.png", encode(crack_photo(crack=False)))}).json()
    assert clean["crack"] is False and clean["severity"] == "none" and clean["cracks"] == []


def test_inspect_with_a_classifier_gives_patches(client: TestClient) -> None:
    img = np.full((300, 460, 3), 230, np.uint8)
    img[:227, :227] = 15  # the top-left patch is dark: "crack"
    r = client.post("/v1/inspect", files={"file": ("x.png", encode(img))}, data={"model": "cls"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task"] == "classify" and body["totals"] is None and body["crack"] is True
    assert body["patches"][0]["row"] == 0 and body["patches"][0]["col"] == 0


def test_model_parameter(client: TestClient, png: bytes) -> None:
    assert client.post("/v1/segment?model=seg", files={"file": ("a.png", png)}).status_code == 200
    assert_error(client.post("/v1/segment?model=nope", files={"file": ("a.png", png)}), 422, "unknown_model")
    assert_error(client.post("/v1/segment", files={"file": ("a.png", png)}, data={"model": "cls"}), 422)
    assert_error(client.post("/v1/classify?model=seg", files={"file": ("a.png", png)}), 422, "wrong_model_task")


# --------------------------------------------------------------------------- errors


def test_bad_images(client: TestClient, tmp_path: Path) -> None:
    truncated = make_truncated_jpeg(tmp_path / "t.jpg", size=(200, 150)).read_bytes()
    for endpoint in ("/v1/classify", "/v1/segment", "/v1/inspect"):
        err = assert_error(client.post(endpoint, files={"file": ("t.jpg", truncated)}), 400, "bad_image")
        assert "t.jpg" in err["message"]
        assert_error(client.post(endpoint, files={"file": ("e.png", b"")}), 400, "bad_image")
        # a text file is refused by content, whatever its name and declared type claim
        text = ("fake.png", b"just some text, not an image\n", "image/png")
        assert_error(client.post(endpoint, files={"file": text}), 415, "unsupported_media_type")
    # a real PNG is accepted whatever name and content type the client declares
    r = client.post("/v1/classify", files={"file": ("notes.txt", encode(crack_photo()), "text/plain")})
    assert r.status_code == 200
    # a header that promises PNG but a body that is garbage
    assert_error(client.post("/v1/inspect", files={"file": ("g.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40)}), 400)


def test_huge_header_is_refused_before_decoding(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crackscan.serve import jobs

    def no_decoding(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a 30000×30000 image must never be decoded")

    monkeypatch.setattr(jobs, "read_image", no_decoding)
    bomb = make_png_claiming(tmp_path / "bomb.png", 30000, 30000).read_bytes()
    assert len(bomb) < 200
    for endpoint in ("/v1/classify", "/v1/segment", "/v1/inspect"):
        err = assert_error(client.post(endpoint, files={"file": ("bomb.png", bomb)}), 413, "too_large")
        assert "30000×30000" in err["message"]


def test_oversize_upload_is_413(client: TestClient) -> None:
    big = os.urandom(3 * 1024 * 1024)  # the client fixture allows 2 MB
    assert_error(client.post("/v1/inspect", files={"file": ("big.png", b"\x89PNG\r\n\x1a\n" + big)}), 413, "too_large")

    # Without Content-Length (chunked), the limit still holds (counted as the body arrives).
    boundary = "crackscanboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def body():  # type: ignore[no-untyped-def]
        yield head + b"\x89PNG\r\n\x1a\n"
        for _ in range(48):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = client.post(
        "/v1/classify", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert_error(r, 413, "too_large")
    assert client.get("/healthz").status_code == 200


def test_body_limit_stops_reading_at_the_limit() -> None:
    """The middleware stops pulling body chunks once the limit is passed (never reads the rest)."""
    import anyio

    from crackscan.serve.limits import BodySizeLimitMiddleware

    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"\0" * 1000, "more_body": pulled < 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def reads_everything(scope: Any, receive_: Any, send_: Any) -> None:
        while (await receive_()).get("more_body"):
            pass
        raise AssertionError("the whole body was read")

    middleware = BodySizeLimitMiddleware(reads_everything, max_bytes=10_000)
    anyio.run(middleware, {"type": "http", "method": "POST", "path": "/v1/classify", "headers": []}, receive, send)
    assert pulled == 11  # 11 × 1000 bytes > 10,000: stopped there, 989 chunks never read
    assert sent[0]["status"] == 413


def test_bad_parameters_are_422(client: TestClient, png: bytes) -> None:
    for bad in ("-1", "0", "abc", "nan", "inf"):
        assert_error(client.post("/v1/inspect", files={"file": ("a.png", png)}, data={"mm_per_px": bad}), 422)
        assert_error(client.post(f"/v1/inspect?mm_per_px={bad}", files={"file": ("a.png", png)}), 422)
    assert_error(client.post("/v1/segment?format=gif", files={"file": ("a.png", png)}), 422)
    assert_error(client.post("/v1/classify"), 422)  # no file at all
    assert_error(client.post("/v1/classify", data={"file": "not a file"}), 422)


def test_too_many_files(model_dir: Path, png: bytes) -> None:
    with make_client(model_dir, max_files=2) as c:
        files = [("file", (f"{i}.png", png)) for i in range(3)]
        assert_error(c.post("/v1/classify", files=files), 422, "too_many_files")


def test_unknown_routes_and_methods_are_json(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/classify"), 405, "method_not_allowed")


def test_api_key(model_dir: Path, png: bytes) -> None:
    with make_client(model_dir, api_key="s3cret-key") as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/").status_code == 200  # the page loads; it asks for the key
        for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
            assert_error(c.post("/v1/classify", files={"file": ("a.png", png)}, headers=headers), 401, "unauthorized")
            assert_error(c.get("/v1/models", headers=headers), 401)
            assert_error(c.get("/metrics", headers=headers), 401)
        ok = {"X-API-Key": "s3cret-key"}
        assert c.post("/v1/classify", files={"file": ("a.png", png)}, headers=ok).status_code == 200
        assert c.get("/v1/models", headers=ok).status_code == 200
        assert c.get("/metrics", headers=ok).status_code == 200
    with make_client(model_dir) as c:  # no key configured: open
        assert c.post("/v1/classify", files={"file": ("a.png", png)}).status_code == 200


# --------------------------------------------------------------------------- file names


def test_sanitize_filename() -> None:
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("..\\..\\windows\\win.ini") == "win.ini"
    assert sanitize_filename("a\x00b\nc<script>.png") == "abc_script_.png"
    assert sanitize_filename("") == "upload" and sanitize_filename("..") == "upload"
    assert len(sanitize_filename("x" * 1000 + ".png")) <= 120


def test_no_filename_reaches_the_disk(client: TestClient, png: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    # > 1 MB so the multipart parser spools the file to a temporary file
    noisy = encode(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8))
    assert len(noisy) > 1024 * 1024
    evil = "../../etc/passwd"
    r = client.post("/v1/classify", files=[("file", (evil, png)), ("file", ("../../tmp/crackscan-evil.png", noisy))])
    assert r.status_code == 200, r.text
    assert [x["filename"] for x in r.json()["results"]] == ["passwd", "crackscan-evil.png"]
    r = client.post("/v1/inspect", files={"file": (evil, png)})
    assert r.status_code == 200 and r.json()["filename"] == "passwd"
    assert not any("passwd" in p or "crackscan-evil" in p for p in opened), opened
    assert not Path("/tmp/crackscan-evil.png").exists()


# --------------------------------------------------------------------------- queue, robustness, metrics


class BlockingPredictor:
    """Wraps a predictor; every model call waits for ``gate`` (to hold a worker busy)."""

    def __init__(self, inner: Any, gate: threading.Event) -> None:
        self._inner = inner
        self._gate = gate
        self.entered = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def class_probabilities(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        assert self._gate.wait(30), "test gate never opened"
        return self._inner.class_probabilities(batch)


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_queue_full_is_429(model_dir: Path, png: bytes) -> None:
    with make_client(model_dir, workers=1, queue=1) as c:
        service = c.app.state.service  # type: ignore[attr-defined]
        model = next(m for m in service.registry.all() if m.name == "cls")
        gate = threading.Event()
        blocking = BlockingPredictor(model.predictor, gate)
        model.predictor = blocking  # type: ignore[assignment]

        def classify() -> int:
            return c.post("/v1/classify", files={"file": ("a.png", png)}).status_code

        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(classify)
            assert blocking.entered.wait(10)  # the only worker is busy
            waiting = pool.submit(classify)
            wait_for(lambda: service.queue.depth == 1)  # one request waits: the queue (1) is full
            err = assert_error(c.post("/v1/classify", files={"file": ("a.png", png)}), 429, "queue_full")
            assert "queue" in err["message"]
            assert "crackscan_queue_depth 1" in c.get("/metrics").text
            gate.set()
            assert running.result(10) == 200 and waiting.result(10) == 200
        assert service.queue.depth == 0 and service.queue.running == 0
        assert "crackscan_queue_rejections_total 1" in c.get("/metrics").text
        assert c.post("/v1/classify", files={"file": ("a.png", png)}).status_code == 200
    # leaving the client ran the shutdown: the queue refuses new work and readiness is gone
    assert service.ready is False and service.queue._closed


def test_fifty_mixed_requests_no_5xx(client: TestClient, png: bytes, tmp_path: Path) -> None:
    truncated = make_truncated_jpeg(tmp_path / "t.jpg", size=(120, 90)).read_bytes()
    bomb = make_png_claiming(tmp_path / "bomb.png", 30000, 30000).read_bytes()
    jpeg = encode(crack_photo(), "JPEG", quality=90)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("/v1/classify", {"files": {"file": ("a.png", png)}}),
        ("/v1/segment", {"files": {"file": ("a.jpg", jpeg)}}),
        ("/v1/inspect", {"files": {"file": ("a.png", png)}, "data": {"mm_per_px": "0.2"}}),
        ("/v1/inspect", {"files": {"file": ("t.jpg", truncated)}}),
        ("/v1/classify", {"files": {"file": ("x.txt", b"hello")}}),
        ("/v1/segment", {"files": {"file": ("bomb.png", bomb)}}),
        ("/v1/inspect", {"files": {"file": ("a.png", png)}, "data": {"mm_per_px": "-1"}}),
        ("/v1/classify", {"files": {"file": ("e.png", b"")}}),
        ("/v1/segment?model=unknown", {"files": {"file": ("a.png", png)}}),
        ("/v1/inspect", {"files": {"file": ("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 1024 * 1024))}}),
    ]
    requests = [cases[i % len(cases)] for i in range(50)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda case: client.post(case[0], **case[1]).status_code, requests))
    assert all(s < 500 for s in statuses), Counter(statuses)
    counts = Counter(statuses)
    assert counts[200] == 15 and counts[400] == 10 and counts[413] == 10 and counts[415] == 5 and counts[422] == 10
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/classify", files={"file": ("a.png", png)}).status_code == 200


def test_metrics_series(client: TestClient, png: bytes) -> None:
    client.post("/v1/classify", files={"file": ("a.png", png)})
    client.post("/v1/inspect", files={"file": ("a.png", png)})
    client.post("/v1/classify", files={"file": ("a.txt", b"text")})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'crackscan_http_requests_total{route="/v1/classify",method="POST",status="200"}' in text
    assert 'crackscan_http_requests_total{route="/v1/classify",method="POST",status="415"}' in text
    assert "# TYPE crackscan_http_request_duration_seconds histogram" in text
    assert 'crackscan_http_request_duration_seconds_bucket{route="/v1/inspect",le="+Inf"}' in text
    assert 'crackscan_inference_seconds_count{endpoint="inspect",model="seg"}' in text
    assert 'crackscan_inference_seconds_bucket{endpoint="classify",model="cls",le="0.1"}' in text
    for series in ("crackscan_queue_depth 0", "crackscan_inflight_inferences 0", "crackscan_models_loaded 2"):
        assert series in text
    # every sample line parses as name{labels} value
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name.startswith("crackscan_") and float(value.replace("+Inf", "inf")) >= 0


def test_sniffing() -> None:
    assert sniff_image_type(encode(crack_photo(), "JPEG")) == "jpeg"
    assert sniff_image_type(encode(crack_photo(), "PNG")) == "png"
    assert sniff_image_type(encode(crack_photo(), "TIFF")) == "tiff"
    assert sniff_image_type(encode(crack_photo(), "BMP")) == "bmp"
    assert sniff_image_type(encode(crack_photo(), "WEBP")) == "webp"
    assert sniff_image_type(b"GIF89a....") is None and sniff_image_type(b"") is None


def test_every_accepted_format_inspects(client: TestClient) -> None:
    for fmt in ("JPEG", "PNG", "TIFF", "BMP", "WEBP"):
        data = encode(crack_photo(), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        r = client.post("/v1/inspect", files={"file": (f"x.{fmt.lower()}", data)})
        assert r.status_code == 200 and r.json()["crack"] is True, (fmt, r.text)


# --------------------------------------------------------------------------- CLI


def test_cli_serve(model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    from crackscan.cli import app
    from crackscan.runtime import predictor as predictor_module

    runner = CliRunner()
    # No bundled model installed and no --model: exit 2 with a clear message.
    monkeypatch.setattr(predictor_module, "BUNDLED_DIR", tmp_path / "no-models")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "no model to serve" in result.output

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kw: calls.append({"app": app_, **kw}))
    result = runner.invoke(app, ["serve", "--model", str(model_dir / "seg.onnx"), "--queue", "3"])
    assert result.exit_code == 0, result.output
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8000  # loopback by default
    settings = calls[-1]["app"].state.settings
    assert settings.queue == 3 and settings.models == [str(model_dir / "seg.onnx")] and not settings.auth_enabled

    monkeypatch.delenv("CRACKSCAN_TEST_KEY", raising=False)
    result = runner.invoke(
        app, ["serve", "--model", str(model_dir / "seg.onnx"), "--api-key-env", "CRACKSCAN_TEST_KEY"]
    )
    assert result.exit_code == 2 and "CRACKSCAN_TEST_KEY" in result.output
    monkeypatch.setenv("CRACKSCAN_TEST_KEY", "k")
    result = runner.invoke(
        app, ["serve", "--model", str(model_dir / "seg.onnx"), "--api-key-env", "CRACKSCAN_TEST_KEY"]
    )
    assert result.exit_code == 0 and calls[-1]["app"].state.settings.auth_enabled

    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "missing.onnx")])
    assert result.exit_code == 2 and "missing.onnx" in result.output
    result = runner.invoke(app, ["serve", "--model", str(model_dir / "seg.onnx"), "--workers", "0"])
    assert result.exit_code == 2 and "workers" in result.output


def test_serve_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, crackscan.serve.app, crackscan.cli.serve; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
