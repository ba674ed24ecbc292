"""Load test of ``crackscan serve`` on loopback: throughput, latency, robustness under bad input.

Starts ``crackscan serve`` as a subprocess on a free 127.0.0.1 port (never another
address) and runs three phases, each bounded by ``--seconds`` and ``--max-requests``:

1. **classify** — ``--clients`` concurrent clients post one image each to ``/v1/classify``:
   requests/s, p50/p99 latency, errors;
2. **classify + 20 % bad** — the same with one request in five a bad input (truncated
   JPEG, text file, PNG header claiming 30000×30000, empty file): no 5xx allowed, and
   ``/healthz`` must answer afterwards;
3. **inspect under load** — one client posts a 12 MP photo (4000×3000 synthetic wall with
   cracks) to ``/v1/inspect`` while the classify clients keep going: inspect latency and
   the classify throughput beside it.

Usage (from the repository root)::

    python benchmarks/serve_load.py                       # bundled crack-cls + crack-seg, 30 s per phase
    python benchmarks/serve_load.py --seconds 5 --tiny    # tiny test models (needs the onnx package)
    python benchmarks/serve_load.py --images ../shared/data/ozgenel --json serve_load.json

Classify images: ``--images`` (files under a folder; the Özgenel 227-px patches suit the
bundled classifier), else synthetic 227×227 JPEG patches. 429 answers (the queue doing
its job) are counted apart from errors.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

HOST = "127.0.0.1"  # loopback only: a load test must never aim at another machine
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- inputs


def _jpeg(array: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def synthetic_patches(n: int, seed: int = 0) -> list[bytes]:
    """227×227 grey-textured JPEG patches, half with a dark crack line."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        base = rng.normal(170, 18, (227, 227, 1)).clip(0, 255).astype(np.uint8).repeat(3, axis=2)
        if i % 2:
            y = int(rng.integers(40, 187))
            base[y : y + 4, 10:217] = 30
        out.append(_jpeg(base))
    return out


def folder_images(folder: Path, n: int, seed: int = 0) -> list[bytes]:
    files = [p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    random.Random(seed).shuffle(files)
    return [p.read_bytes() for p in files[:n]]


def bad_inputs() -> list[tuple[str, bytes]]:
    """Inputs the server must refuse with a 4xx: truncated JPEG, text, pixel bomb header, empty."""
    import struct
    import zlib

    good = synthetic_patches(1, seed=1)[0]
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, format="PNG")
    bomb = bytearray(buf.getvalue())
    bomb[16:24] = struct.pack(">II", 30000, 30000)
    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])) & 0xFFFFFFFF)
    return [
        ("truncated.jpg", good[: len(good) // 2]),
        ("notes.txt", b"this is not an image\n" * 20),
        ("bomb.png", bytes(bomb)),
        ("empty.png", b""),
    ]


def wall_photo(height: int = 3000, width: int = 4000) -> bytes:
    """A 12 MP synthetic wall with three cracks, as JPEG (what a phone would upload)."""
    from crackscan.data.synth import synth_wall

    image, _mask, _geometry = synth_wall(0, height, width, 3)
    return _jpeg(image, quality=90)


def tiny_models(folder: Path) -> list[str]:
    """Tiny test models (tests/onnx_models.py), the segmenter with 512-px tiles like the real ones."""
    sys.path.insert(0, str(ROOT / "tests"))
    from onnx_models import classification_model, segmentation_model

    return [
        str(classification_model(folder / "tiny-cls.onnx", input_size=96)),
        str(segmentation_model(folder / "tiny-seg.onnx", blur=3, input_size=512)),
    ]


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(models: list[str], port: int, workers: int, queue: int, max_upload_mb: float) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "crackscan", "serve", "--host", HOST, "--port", str(port), "--log-level", "warning"]
    cmd += ["--workers", str(workers), "--queue", str(queue), "--max-upload-mb", str(max_upload_mb)]
    for m in models:
        cmd += ["--model", m]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"crackscan serve exited with {proc.returncode}:\n{proc.stderr.read() if proc.stderr else ''}"
            )
        try:
            if httpx.get(f"http://{HOST}:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("crackscan serve did not become ready in 120 s")


# --------------------------------------------------------------------------- load


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: int = 0  # connection errors, timeouts
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, seconds: float, status: int | None) -> None:
        with self.lock:
            if status is None:
                self.failures += 1
            else:
                self.statuses[status] += 1
                self.latencies.append(seconds)

    def summary(self, wall_s: float) -> dict[str, Any]:
        lat = np.asarray(self.latencies) * 1000.0
        n = int(sum(self.statuses.values()))
        return {
            "requests": n,
            "requests_per_s": round(n / wall_s, 1) if wall_s > 0 else 0.0,
            "ok": self.statuses.get(200, 0),
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
            "max_ms": round(float(lat.max()), 1) if lat.size else None,
            "status_4xx": sum(v for k, v in self.statuses.items() if 400 <= k < 500 and k != 429),
            "status_429": self.statuses.get(429, 0),
            "status_5xx": sum(v for k, v in self.statuses.items() if k >= 500),
            "connection_errors": self.failures,
            "statuses": dict(sorted(self.statuses.items())),
        }


def run_clients(
    n_clients: int, seconds: float, max_requests: int, make_request: Callable[[httpx.Client, int], int]
) -> tuple[Tally, float]:
    """``n_clients`` threads, each with its own connection, calling ``make_request`` until time or count runs out."""
    tally = Tally()
    counter = iter(range(max_requests))
    counter_lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=f"http://{HOST}:{PORT}", timeout=120) as http:
            while time.monotonic() < stop_at:
                with counter_lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    status = make_request(http, i)
                except httpx.HTTPError:
                    status = None
                tally.add(time.perf_counter() - start, status)

    threads = [threading.Thread(target=client, name=f"client-{k}") for k in range(n_clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally, time.perf_counter() - start


PORT = 0


def main() -> None:
    global PORT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", help="model file or bundled name (repeat); default crack-cls, crack-seg"
    )
    parser.add_argument("--tiny", action="store_true", help="use tiny test models instead of the bundled ones")
    parser.add_argument("--images", type=Path, help="folder of classify images (default: synthetic patches)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap per phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="server inference threads")
    parser.add_argument("--queue", type=int, default=32, help="server queue (>= clients: 429s are not the point)")
    parser.add_argument("--inspects", type=int, default=3, help="12 MP inspections in phase 3 (at most)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crackscan-serve-load-") as tmp:
        if args.tiny:
            models = tiny_models(Path(tmp))
        else:
            models = args.model or ["crack-cls", "crack-seg"]
        images = folder_images(args.images, 500) if args.images else synthetic_patches(64)
        if not images:
            raise SystemExit(f"no images under {args.images}")
        bad = bad_inputs()
        photo = wall_photo()
        PORT = free_port()
        server = start_server(models, PORT, args.workers, args.queue, max_upload_mb=32)
        report: dict[str, Any] = {
            "models": [Path(m).name for m in models],
            "clients": args.clients,
            "server_workers": args.workers,
            "seconds_per_phase": args.seconds,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        }
        try:

            def classify(http: httpx.Client, i: int) -> int:
                data = images[i % len(images)]
                return http.post("/v1/classify", files={"file": (f"{i}.jpg", data)}).status_code

            def classify_mixed(http: httpx.Client, i: int) -> int:
                if i % 5 == 4:  # 20 % bad inputs
                    name, data = bad[(i // 5) % len(bad)]
                    return http.post("/v1/classify", files={"file": (name, data)}).status_code
                return classify(http, i)

            tally, wall = run_clients(args.clients, args.seconds, args.max_requests, classify)
            report["classify"] = tally.summary(wall)
            tally, wall = run_clients(args.clients, args.seconds, args.max_requests, classify_mixed)
            report["classify_20pct_bad"] = tally.summary(wall)
            report["classify_20pct_bad"]["alive_after"] = (
                httpx.get(f"http://{HOST}:{PORT}/healthz", timeout=10).status_code == 200
            )

            # Phase 3: background classify load, one client inspecting the 12 MP photo.
            inspect_latencies: list[float] = []
            inspect_status: Counter[int] = Counter()
            background: dict[str, Any] = {}

            def load() -> None:
                t, w = run_clients(args.clients, args.seconds, args.max_requests, classify)
                background.update(t.summary(w))

            loader = threading.Thread(target=load)
            loader.start()
            stop_at = time.monotonic() + args.seconds
            with httpx.Client(base_url=f"http://{HOST}:{PORT}", timeout=600) as http:
                for _ in range(args.inspects):
                    if time.monotonic() >= stop_at and inspect_latencies:
                        break
                    start = time.perf_counter()
                    r = http.post("/v1/inspect", files={"file": ("wall.jpg", photo)}, data={"mm_per_px": "0.2"})
                    inspect_latencies.append(time.perf_counter() - start)
                    inspect_status[r.status_code] += 1
                    if r.status_code == 200:
                        report["inspect_cracks_found"] = r.json()["totals"]["cracks"] if r.json()["totals"] else None
            loader.join()
            report["inspect_12mp_under_load"] = {
                "photo_bytes": len(photo),
                "inspections": len(inspect_latencies),
                "latency_s": [round(v, 2) for v in inspect_latencies],
                "statuses": dict(inspect_status),
                "classify_beside_it": background,
            }
            metrics = httpx.get(f"http://{HOST}:{PORT}/metrics", timeout=10).text
            report["server_5xx_total"] = sum(
                int(float(line.rsplit(" ", 1)[1]))
                for line in metrics.splitlines()
                if line.startswith("crackscan_http_requests_total") and 'status="5' in line
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()

    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    bad_phase = report["classify_20pct_bad"]
    if report["classify"]["status_5xx"] or bad_phase["status_5xx"] or not bad_phase["alive_after"]:
        raise SystemExit("FAILED: the server answered 5xx or stopped answering")


if __name__ == "__main__":
    main()
