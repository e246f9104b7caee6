"""Download tests for the named datasets, against an HTTP server on 127.0.0.1 only.

The server runs in a daemon thread for one test and is shut down when the test ends. It
serves small IDX files generated here; the published checksums are swapped for theirs.
Progress is observed through the `progress(bytes_done, bytes_total, file_name)` callback.
"""

import gzip
import hashlib
import http.server
import threading

import attrs
import numpy as np
import pytest

import fnn.data as data
from fnn.data import DataError, load_dataset, load_test_set

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fixture_files(monkeypatch):
    """The four gzipped IDX files of a tiny MNIST, registered as MNIST's published sums."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 12),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 5),
    }
    files = {name: idx_gz(array) for name, array in arrays.items()}
    register_as_mnist(monkeypatch, files)
    return files, arrays


def register_as_mnist(monkeypatch, files: dict) -> None:
    """Make `files` ({file name: gzipped bytes}) the ones whose sums MNIST publishes."""
    sums = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    monkeypatch.setitem(data.NAMED, "mnist", attrs.evolve(data.NAMED["mnist"], sha256=sums))


@pytest.fixture
def serve(monkeypatch):
    """serve(routes) -> base URL; routes maps a URL path to (body, how): how is "ok",
    "cut" (Content-Length of the whole body, then half of it and a closed connection),
    "no-length" (the whole body without a Content-Length header) or "404". Every request
    path is appended to the returned server's `requests` list."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    servers = []

    def start(routes):
        requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                body, how = routes.get(self.path, (b"", "404"))
                if how == "404":
                    self.send_error(404)
                    return
                self.send_response(200)
                if how != "no-length":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if how == "cut" else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def recorder():
    """A progress callback that records its calls, and the list it records them in."""
    calls = []
    return (lambda done, total, name: calls.append((done, total, name))), calls


def cache_listing(tmp_path):
    folder = tmp_path / "mnist"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_then_load_from_cache(tmp_path, fixture_files, serve):
    files, arrays = fixture_files
    base, requests = serve({f"/m/{name}": (body, "ok") for name, body in files.items()})
    train = load_dataset("mnist", data_dir=tmp_path, mirrors=(base + "/m/",))
    test = load_test_set("mnist", data_dir=tmp_path, mirrors=(base + "/m/",))
    assert np.array_equal(np.rint(train.X * 255).reshape(-1, 28, 28), arrays["train-images-idx3-ubyte.gz"])
    assert np.array_equal(train.y, arrays["train-labels-idx1-ubyte.gz"])
    assert np.array_equal(test.y, arrays["t10k-labels-idx1-ubyte.gz"])
    assert cache_listing(tmp_path) == sorted(FILES)
    assert len(requests) == 4
    again = load_dataset("mnist", data_dir=tmp_path, mirrors=())  # offline: the cache suffices
    assert np.array_equal(again.X, train.X) and len(requests) == 4


def test_cache_directory_from_environment(tmp_path, fixture_files, serve, monkeypatch):
    files, _ = fixture_files
    base, _ = serve({f"/{name}": (body, "ok") for name, body in files.items()})
    monkeypatch.setenv("FNN_DATA", str(tmp_path))
    load_dataset("mnist", mirrors=(base + "/",))
    assert cache_listing(tmp_path) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_leaves_nothing_cached(tmp_path, fixture_files, serve):
    files, _ = fixture_files
    routes = {f"/{name}": (body, "ok") for name, body in files.items()}
    body = bytearray(files["train-images-idx3-ubyte.gz"])
    body[len(body) // 2] ^= 0xFF
    routes["/train-images-idx3-ubyte.gz"] = (bytes(body), "ok")
    base, _ = serve(routes)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: SHA-256 .* does not match"):
        load_dataset("mnist", data_dir=tmp_path, mirrors=(base + "/",))
    assert cache_listing(tmp_path) == []


def test_connection_cut_mid_file(tmp_path, fixture_files, serve):
    files, _ = fixture_files
    cut, _ = serve({f"/{name}": (body, "cut") for name, body in files.items()})
    size = len(files["train-images-idx3-ubyte.gz"])
    progress, calls = recorder()
    with pytest.raises(DataError, match=f"connection closed after {size // 2} of {size} bytes") as caught:
        load_dataset("mnist", data_dir=tmp_path, mirrors=(cut + "/",), progress=progress)
    assert "place the four files" in str(caught.value)
    assert calls[0] == (0, size, "train-images-idx3-ubyte.gz") and calls[-1][0] == size // 2
    assert cache_listing(tmp_path) == []
    good, _ = serve({f"/{name}": (body, "ok") for name, body in files.items()})
    train = load_dataset("mnist", data_dir=tmp_path, mirrors=(cut + "/", good + "/"))
    assert train.X.shape == (12, 784)
    assert cache_listing(tmp_path) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("how", ["ok", "no-length"])
def test_a_mirror_sending_more_than_any_published_file_is_stopped(tmp_path, fixture_files, serve, monkeypatch, how):
    files, _ = fixture_files
    monkeypatch.setattr(data.named, "MAX_DOWNLOAD_BYTES", 1000)  # the real cap is 64 MiB
    base, _ = serve({f"/{name}": (body + bytes(5000), how) for name, body in files.items()})
    said = "declares [0-9,]+ bytes" if how == "ok" else "sent more than 1,000 bytes"
    with pytest.raises(DataError, match=f"train-images-idx3-ubyte.gz: the mirror {said}"):
        load_dataset("mnist", data_dir=tmp_path, mirrors=(base + "/",))
    assert cache_listing(tmp_path) == []


def test_missing_file_on_first_mirror_falls_back(tmp_path, fixture_files, serve):
    files, _ = fixture_files
    empty, first_requests = serve({})
    good, _ = serve({f"/{name}": (body, "ok") for name, body in files.items()})
    test = load_test_set("mnist", data_dir=tmp_path, mirrors=(empty + "/", good + "/"))
    assert test.X.shape == (5, 784) and len(first_requests) == 2


def test_offline_error_says_what_to_do(tmp_path, fixture_files, serve):
    base, _ = serve({})
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", data_dir=tmp_path, mirrors=(base + "/",))
    message = str(caught.value)
    assert "could not download train-images-idx3-ubyte.gz" in message and "404" in message
    assert all(name in message for name in FILES)
    assert str(tmp_path / "mnist") in message and "--data sample" in message


def test_corrupt_cached_file_is_never_used(tmp_path, fixture_files, serve):
    files, _ = fixture_files
    (tmp_path / "mnist").mkdir()
    for name, body in files.items():
        (tmp_path / "mnist" / name).write_bytes(body)
    (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"partial")
    with pytest.raises(DataError, match="does not match its SHA-256"):
        load_dataset("mnist", data_dir=tmp_path, mirrors=())
    base, _ = serve({f"/{name}": (body, "ok") for name, body in files.items()})
    assert load_dataset("mnist", data_dir=tmp_path, mirrors=(base + "/",)).y.shape == (12,)
    assert (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes() == files["train-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize("how", ["ok", "no-length"])
def test_progress_callback_sees_every_byte(tmp_path, fixture_files, serve, monkeypatch, how):
    files, _ = fixture_files
    rng = np.random.default_rng(1)
    files = {  # 300 images: several 64 KiB chunks, so the callback sees the count grow
        **files,
        "train-images-idx3-ubyte.gz": idx_gz(rng.integers(0, 256, (300, 28, 28))),
        "train-labels-idx1-ubyte.gz": idx_gz(rng.integers(0, 10, 300)),
    }
    register_as_mnist(monkeypatch, files)
    base, _ = serve({f"/{name}": (body, how) for name, body in files.items()})
    progress, calls = recorder()
    load_dataset("mnist", data_dir=tmp_path, mirrors=(base + "/",), progress=progress)
    assert list(dict.fromkeys(name for _, _, name in calls)) == list(FILES[:2])  # one file after the other
    for name in FILES[:2]:
        size = len(files[name])
        mine = [(done, total) for done, total, n in calls if n == name]
        done = [d for d, _ in mine]
        assert done[0] == 0 and done == sorted(done) and done[-1] == size
        assert mine[-1] == (size, size)  # the last call says the file is complete
        assert all(total == (size if how == "ok" else None) for _, total in mine[:-1])
    assert len([n for _, _, n in calls if n == FILES[0]]) > 3
    calls.clear()
    load_dataset("mnist", data_dir=tmp_path, mirrors=(), progress=progress)  # cached: no calls
    assert calls == []


def test_progress_must_be_a_callback():
    with pytest.raises(TypeError, match=r"progress must be None or a function progress\(bytes_done"):
        load_dataset("sample", progress=True)
    with pytest.raises(TypeError, match="progress must be None or a function"):
        load_test_set("mnist", progress="bar")
