"""fnn serve's HTTP handler: every route, every bad input, concurrency, and the run loop's signals.

One server on a free loopback port runs in a thread for the whole module; the model is a small
He-initialised 784-32-10 network saved and loaded through `fnn.io`, so its metadata is what a
real model file holds. Answers are checked against `fnn.nn.predict_proba` and
`fnn.images.digit_from_bytes` directly, so a server that preprocessed or predicted differently
from the library would fail.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import fnn
from fnn import serve
from fnn.cli import serve as cli_serve
from fnn.errors import UserError
from fnn.images import digit_from_bytes
from fnn.io import load_model, save_model

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "<b>nine</b>"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "model.npz"
    save_model(path, fnn.init(np.random.default_rng(0), (784, 32, 10)), {"class_names": CLASS_NAMES, "metrics": {"test": {"accuracy": 0.5}}})
    return path


@pytest.fixture(scope="module")
def model(model_file):
    return load_model(model_file)


@pytest.fixture(scope="module")
def server(model):
    params, metadata = model
    server = serve.make_server(params, metadata, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def digit():
    """(28x28 uint8 pixels, PNG bytes of them scaled to 140x140) of the sample's first digit."""
    x = fnn.load_dataset("sample").X[0]
    pixels = np.round(x * 255).astype(np.uint8).reshape(28, 28)
    return pixels, _encode(Image.fromarray(pixels).resize((140, 140)), "PNG")


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def request(server, method, path, body=None, headers=None):
    """(status, headers, decoded JSON or raw bytes) of one request on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, response, json.loads(data) if is_json and data else data
    finally:
        connection.close()


def post_json(server, value):
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    return request(server, "POST", "/api/predict", body, {"Content-Type": "application/json"})


def raw(server, data: bytes, close_write: bool = False):
    """Send bytes as they are (bad headers http.client would not send); (status, response, body)."""
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response, json.loads(response.read())


# ---------------------------------------------------------------- the routes


def test_page_is_served_with_its_controls_and_nothing_from_elsewhere(server):
    status, response, page = request(server, "GET", "/")
    text = page.decode()
    assert status == 200 and response.getheader("Content-Type") == "text/html; charset=utf-8"
    for needle in ('id="canvas"', 'id="clear"', 'id="prediction"', "touch-action: none", "api/predict", "api/model"):
        assert needle in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page must not load anything from elsewhere"
    assert not re.search(r"(innerHTML|outerHTML|insertAdjacentHTML|document\.write)\s*[=(]", text)  # textContent only
    csp = response.getheader("Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
    assert request(server, "GET", "/?from=bookmark")[0] == 200


def test_head_gives_the_headers_without_the_body(server):
    status, response, body = request(server, "HEAD", "/")
    assert status == 200 and body == b"" and int(response.getheader("Content-Length")) > 1000


def test_model_metadata(server, model):
    status, _, metadata = request(server, "GET", "/api/model")
    assert status == 200
    assert metadata == json.loads(json.dumps(model[1]))
    assert metadata["class_names"] == CLASS_NAMES and metadata["layer_sizes"][0] == 784


def test_predict_pixels_matches_the_library(server, model, digit):
    pixels, _ = digit
    status, response, answer = post_json(server, {"pixels": pixels.ravel().tolist()})
    x = pixels.ravel().astype(np.float32) / np.float32(255)
    expected = fnn.predict_proba(model[0], x[None])[0]
    assert status == 200 and response.getheader("Content-Type") == "application/json"
    assert set(answer) == {"label", "class_name", "probabilities", "input"}
    assert answer["label"] == int(expected.argmax()) and answer["class_name"] == CLASS_NAMES[answer["label"]]
    np.testing.assert_array_equal(np.array(answer["probabilities"], dtype=np.float32), expected)
    np.testing.assert_array_equal(np.array(answer["input"], dtype=np.float32), x)


def test_predict_accepts_floats_and_ignores_other_keys(server):
    status, _, answer = post_json(server, {"pixels": [0.5] * 783 + [255.0], "note": "hi"})
    assert status == 200 and answer["input"][0] == pytest.approx(0.5 / 255) and answer["input"][-1] == 1.0


@pytest.mark.parametrize("fmt, content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("JPEG", "image/jpg; q=1")])
def test_predict_image_is_preprocessed_as_fnn_predict_does(server, model, digit, fmt, content_type):
    pixels, _ = digit
    data = _encode(Image.fromarray(255 - pixels).resize((90, 120)), fmt)  # dark ink on white, not square
    status, _, answer = request(server, "POST", "/api/predict", data, {"Content-Type": content_type})
    x = digit_from_bytes(data)
    assert status == 200
    np.testing.assert_array_equal(np.array(answer["input"], dtype=np.float32), x)
    assert answer["label"] == int(fnn.predict_proba(model[0], x[None]).argmax())
    assert len(answer["probabilities"]) == 10 and sum(answer["probabilities"]) == pytest.approx(1, abs=1e-5)


# ---------------------------------------------------------------- bad input: 400 saying what was expected


_GOOD = [0] * 784


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"{bad", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"pix": []}', "missing key 'pixels'"),
        ({"pixels": "0" * 784}, "'pixels' must be an array"),
        ({"pixels": [[0] * 28] * 28}, "'pixels' has 28 values; expected 784"),
        ({"pixels": _GOOD[:-1]}, "'pixels' has 783 values; expected 784"),
        ({"pixels": _GOOD + [0]}, "'pixels' has 785 values"),
        (b'{"pixels": [NaN' + b", 0" * 783 + b"]}", "NaN is not a JSON number"),
        (b'{"pixels": [0, Infinity' + b", 0" * 782 + b"]}", "Infinity is not a JSON number"),
        (b'{"pixels": [0, -Infinity' + b", 0" * 782 + b"]}", "-Infinity is not a JSON number"),
        (b'{"pixels": [1e999' + b", 0" * 783 + b"]}", "pixels[0] is inf; expected a number in 0..255"),
        ({"pixels": _GOOD[:5] + [-1] + _GOOD[6:]}, "pixels[5] is -1; expected a number in 0..255"),
        ({"pixels": _GOOD[:783] + [255.5]}, "pixels[783] is 255.5"),
        ({"pixels": _GOOD[:3] + ["7"] + _GOOD[4:]}, 'pixels[3] is a JSON string ("7")'),
        ({"pixels": [True] + _GOOD[1:]}, "pixels[0] is a JSON boolean"),
        ({"pixels": [None] + _GOOD[1:]}, "pixels[0] is a JSON null"),
        ({"pixels": [[0]] + _GOOD[1:]}, "pixels[0] is a JSON array"),
    ],
)
def test_bad_json_is_a_400_saying_what_was_expected(server, body, expected):
    status, response, answer = post_json(server, body)
    assert status == 400 and response.getheader("Content-Type") == "application/json"
    assert set(answer) == {"error"} and expected in answer["error"], answer
    assert "Traceback" not in answer["error"]


def _png_header(width: int, height: int) -> bytes:
    """The start of a PNG that declares width x height (its data never follows)."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + ihdr + b"\0\0\0\0"


@pytest.mark.parametrize(
    "make_body, expected",
    [
        (lambda digit: b"not an image", "not a PNG or JPEG"),
        (lambda digit: b"GIF89a" + bytes(30), "not a PNG or JPEG"),
        (lambda digit: digit[1][:60], "not an image Pillow can read"),
        (lambda digit: _encode(Image.new("L", (50, 50), 0), "PNG"), "no digit found"),
        (lambda digit: _png_header(7000, 7000), "declares 7000x7000 = 49,000,000 pixels"),
        (lambda digit: b"\xff\xd8\xff\xc0\x00\x11\x08" + (5000).to_bytes(2, "big") * 2 + bytes(12), "declares 5000x5000"),
        (lambda digit: b"\xff\xd8\xff\xd9", "no frame header"),
    ],
)
def test_bad_image_is_a_400_with_the_reason(server, digit, make_body, expected):
    started = time.perf_counter()
    status, _, answer = request(server, "POST", "/api/predict", make_body(digit), {"Content-Type": "image/png"})
    assert status == 400 and expected in answer["error"], answer
    assert time.perf_counter() - started < 1  # a huge declared size is refused before decoding


def test_other_content_type_is_a_415(server):
    status, _, answer = request(server, "POST", "/api/predict", b"1,2,3", {"Content-Type": "text/csv"})
    assert status == 415 and "application/json" in answer["error"] and "image/png" in answer["error"]


def test_too_large_body_is_refused_from_the_header_before_it_is_sent(server):
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048577\r\n\r\n"
    status, response, answer = raw(server, head)  # not one byte of the body is ever sent
    assert status == 413 and "1,048,577 bytes" in answer["error"] and "1 MiB" in answer["error"]
    assert response.getheader("Connection") == "close"
    assert post_json(server, {"pixels": _GOOD})[0] == 200  # exactly what fits is fine


@pytest.mark.parametrize(
    "headers, status, expected",
    [
        (b"", 411, "Content-Length header"),
        (b"Transfer-Encoding: chunked\r\n", 411, "chunked bodies are not accepted"),
        (b"Content-Length: abc\r\n", 400, "Content-Length must be one non-negative integer"),
        (b"Content-Length: -5\r\n", 400, "Content-Length must be"),
        (b"Content-Length: 3\r\nContent-Length: 4\r\n", 400, "Content-Length must be"),
        (b"Content-Length: 99999999999999999999999\r\n", 400, "Content-Length must be"),
        (b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", 400, "not both"),
    ],
)
def test_missing_or_invalid_content_length(server, headers, status, expected):
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + headers + b"\r\n"
    got, response, answer = raw(server, head, close_write=True)
    assert got == status and expected in answer["error"], answer
    assert response.getheader("Connection") == "close"


def test_body_shorter_than_its_content_length(server):
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b'{"pixels": [0'
    status, _, answer = raw(server, head, close_write=True)
    assert status == 400 and "ended after 13 of the 100 bytes" in answer["error"]


@pytest.mark.parametrize(
    "path",
    ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/serve.html", "/serve.html", "/fnn/serve.py",
     "/index.html", "/api", "/api/predict/", "/api/model/../predict", "//etc/passwd", "/favicon.ico"],
)
def test_unknown_paths_are_404_and_touch_no_file(server, path):
    status, response, answer = request(server, "GET", path)
    assert status == 404 and response.getheader("Content-Type") == "application/json"
    assert "no such path" in answer["error"] and "root:" not in answer["error"]


@pytest.mark.parametrize(
    "method, path, allow",
    [("POST", "/", "GET, HEAD"), ("DELETE", "/", "GET, HEAD"), ("PUT", "/api/model", "GET, HEAD"),
     ("GET", "/api/predict", "POST"), ("HEAD", "/api/predict", "POST"), ("OPTIONS", "/api/predict", "POST")],
)
def test_wrong_method_is_405_with_allow(server, method, path, allow):
    body = b"{}" if method in ("POST", "PUT") else None
    status, response, answer = request(server, method, path, body)
    assert status == 405 and response.getheader("Allow") == allow
    assert method == "HEAD" or allow in answer["error"]


def test_malformed_requests_get_json_errors_too(server):
    status, _, answer = raw(server, b"BREW /api/model HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 501 and "BREW" in answer["error"]
    status, _, answer = raw(server, b"GET /api/model HTTP/1.1\r\nHost: x\r\n" + b"X-Long: a\r\n" * 101 + b"\r\n")
    assert status == 431 and "Too many headers" in answer["error"]


def test_a_bug_is_a_500_without_its_details_and_is_logged(server, monkeypatch, caplog):
    def broken(app, x):
        raise RuntimeError("secret detail")

    monkeypatch.setattr("fnn.serve.http.answer", broken)
    with caplog.at_level("ERROR", logger="fnn.serve"):
        status, _, answer = post_json(server, {"pixels": _GOOD})
    assert status == 500 and answer == {"error": "internal error"}
    assert any("secret detail" in (record.exc_text or "") + str(record.exc_info) for record in caplog.records)


# ---------------------------------------------------------------- connections and concurrency


def test_one_connection_serves_many_requests_and_errors(server, digit):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        for body, status in [(b"{bad", 400), (json.dumps({"pixels": _GOOD}).encode(), 200), (b"[]", 400)]:
            connection.request("POST", "/api/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == status and response.getheader("Connection") != "close"
        connection.request("GET", "/api/model")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


@pytest.mark.slow
def test_concurrent_requests_all_succeed_with_identical_answers(server, digit):
    pixels, png = digit
    bodies = [
        (json.dumps({"pixels": pixels.ravel().tolist()}).encode(), "application/json"),
        (png, "image/png"),
    ]

    def client(k: int) -> list[tuple[int, bytes]]:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
        body, content_type = bodies[k % 2]
        results = []
        try:
            for _ in range(25):
                connection.request("POST", "/api/predict", body, {"Content-Type": content_type})
                response = connection.getresponse()
                results.append((response.status, response.read()))
        finally:
            connection.close()
        return results

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client, range(8)))
    for k in range(8):
        assert [status for status, _ in results[k]] == [200] * 25
        assert len({body for _, body in results[k]}) == 1
        assert results[k][0][1] == results[k % 2][0][1]


def test_requests_are_not_logged_to_stderr(server, capfd):
    request(server, "GET", "/")
    post_json(server, b"{bad")
    request(server, "GET", "/nowhere")
    time.sleep(0.05)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- building a server


def test_a_model_that_does_not_read_28x28_images_is_refused():
    with pytest.raises(ValueError, match="784 inputs"):
        serve.make_server(fnn.init(np.random.default_rng(0), (100, 10)), {}, port=0)


def test_class_names_must_match_the_outputs():
    with pytest.raises(ValueError, match="must be 10 strings"):
        serve.make_server(fnn.init(np.random.default_rng(0), (784, 10)), {"class_names": ["a", "b"]}, port=0)


def test_without_class_names_the_outputs_are_numbered(server):
    other = serve.make_server(fnn.init(np.random.default_rng(0), (784, 3)), {}, port=0)
    try:
        assert other.app.class_names == ("0", "1", "2")
    finally:
        other.server_close()


def test_a_taken_port_is_a_user_error(server, model):
    with pytest.raises(UserError, match=rf"cannot listen on 127.0.0.1:{server.server_address[1]}.*another --port"):
        serve.make_server(*model, port=server.server_address[1])


def test_a_port_out_of_range_is_a_user_error(model):
    with pytest.raises(UserError, match="cannot listen on 127.0.0.1:70000"):
        serve.make_server(*model, port=70000)


def test_ipv6_loopback(model):
    try:
        server = serve.make_server(*model, host="::1", port=0)
    except UserError as err:
        pytest.skip(f"no IPv6 loopback here: {err}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        assert serve.url(server).startswith("http://[::1]:")
        with urllib.request.urlopen(serve.url(server) + "api/model", timeout=5) as response:
            assert json.loads(response.read())["class_names"] == CLASS_NAMES
    finally:
        server.shutdown()
        server.server_close()


def test_a_stalled_body_times_out_with_a_408(server, monkeypatch):
    monkeypatch.setattr(serve.Handler, "timeout", 0.2)
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    status, _, answer = raw(server, head)  # the other 99 bytes never come
    assert status == 408 and "did not arrive within 0.2 s" in answer["error"]


# ---------------------------------------------------------------- run: the loop behind `fnn serve`


def test_run_serves_until_sigint_then_returns_130_and_restores_handlers(model_file):
    lines: list[str] = []
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    answers = []

    def visit_then_interrupt():
        deadline = time.monotonic() + 5
        while not lines and time.monotonic() < deadline:
            time.sleep(0.01)
        url = re.search(r"http://\S+/", lines[0]).group(0)
        with urllib.request.urlopen(url + "api/model", timeout=5) as response:
            answers.append(json.loads(response.read()))
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=visit_then_interrupt, daemon=True).start()
    status = cli_serve.serve(model_file, port=0, out=lines.append)
    assert status == 130
    assert answers[0]["class_names"] == CLASS_NAMES
    assert len(lines) == 2 and "http://127.0.0.1:" in lines[0] and lines[1] == "fnn serve: stopped (Ctrl-C)"
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.slow
def test_run_in_a_process_exits_143_on_sigterm_without_a_traceback(model_file):
    process = subprocess.Popen(
        [sys.executable, "-m", "fnn", "serve", "--model", str(model_file), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = process.stdout.readline()
        url = re.search(r"http://\S+/", first).group(0)
        assert urllib.request.urlopen(url, timeout=5).status == 200
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 143
    assert out == "fnn serve: stopped (SIGTERM)\n" and err == ""
