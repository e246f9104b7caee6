"""A bounded load test of fnn serve on loopback: requests/s, p50/p99 latency and errors.

Starts `fnn.serve.make_server` in a child process (its own GIL, as `fnn serve` runs) on a free
loopback port, then sends --requests POST /api/predict over --threads keep-alive connections and
prints one line. The body is the bundled sample's first digit, either as the page sends it (a
280x280 PNG, preprocessed like a photo) or as a {"pixels": [...]} JSON array. Exits 1 when any
request failed.

    python scripts/load_test_serve.py [--requests 1000] [--threads 8] [--body png|pixels] [--model model.npz]

Without --model the server runs a He-initialised 784-128-10 network (the same arithmetic as a
trained one). --url aims the load at a server that is already running instead.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

import fnn


def _serve(model: str | None, port_out) -> None:
    """Child process: build the server on a free loopback port, report the port, serve forever."""
    from fnn import serve

    if model is None:
        params, metadata = fnn.init(np.random.default_rng(0), (784, 128, 10)), {}
    else:
        params, metadata = fnn.load_model(model)
    server = serve.make_server(params, metadata, "127.0.0.1", 0)
    port_out.send(server.server_address[1])
    port_out.close()
    server.serve_forever()


def body(kind: str) -> tuple[bytes, str]:
    """(request body, Content-Type) for the sample's first digit."""
    pixels = np.round(fnn.load_dataset("sample").X[0] * 255).astype(np.uint8).reshape(28, 28)
    if kind == "pixels":
        return json.dumps({"pixels": pixels.ravel().tolist()}).encode(), "application/json"
    image = Image.fromarray(pixels).resize((280, 280), Image.Resampling.BILINEAR).convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue(), "image/png"


def client(host: str, port: int, n: int, payload: bytes, content_type: str) -> tuple[list[float], int]:
    """Send n requests on one keep-alive connection; (latencies of the 200s in s, error count)."""
    latencies, errors = [], 0
    connection = http.client.HTTPConnection(host, port, timeout=10)
    for _ in range(n):
        start = time.perf_counter()
        try:
            connection.request("POST", "/api/predict", payload, {"Content-Type": content_type})
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=10)
        if ok:
            latencies.append(time.perf_counter() - start)
        else:
            errors += 1
    connection.close()
    return latencies, errors


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests in all")
    parser.add_argument("--threads", type=int, default=8, help="concurrent client connections")
    parser.add_argument("--body", choices=("png", "pixels"), default="png", help="what each request sends")
    parser.add_argument("--model", help="a model file (default: an untrained 784-128-10 network)")
    parser.add_argument("--url", help="load an already running server instead of starting one")
    args = parser.parse_args()
    if args.requests < 1 or args.threads < 1:
        parser.error("--requests and --threads must be at least 1")

    payload, content_type = body(args.body)
    child = None
    if args.url:
        parts = urlsplit(args.url)
        host, port = parts.hostname, parts.port or 80
    else:
        receive, send = multiprocessing.Pipe(duplex=False)
        child = multiprocessing.get_context("spawn").Process(target=_serve, args=(args.model, send), daemon=True)
        child.start()
        if not receive.poll(60):
            print("the server did not start within 60 s", file=sys.stderr)
            return 1
        host, port = "127.0.0.1", receive.recv()
    try:
        shares = [args.requests // args.threads + (k < args.requests % args.threads) for k in range(args.threads)]
        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            results = list(pool.map(lambda n: client(host, port, n, payload, content_type), shares))
        seconds = time.perf_counter() - start
    finally:
        if child is not None:
            child.terminate()
            child.join(5)
    latencies = np.array([t for lat, _ in results for t in lat]) * 1000
    errors = sum(e for _, e in results)
    p50, p99 = (np.percentile(latencies, [50, 99]) if latencies.size else (float("nan"),) * 2)
    print(
        f"{args.requests} POST /api/predict ({args.body}, {len(payload):,} B) over {args.threads} threads: "
        f"{args.requests / seconds:.0f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors} errors "
        f"({seconds:.2f} s; {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores)"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
