"""Downloading into the cache, against a local HTTP server on 127.0.0.1 (loopback only)."""

import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from _ckpt_layouts import jem_layout, replay_buffer, tiny_wrn
from landscape import load_model
from landscape.checkpoints.fetch import fetch, landscape_home, url_cache_path
from landscape.checkpoints.manifest import load_manifest
from landscape.errors import CheckpointError

HTML = b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>...</body></html>"


class _Server:
    """Serves ``routes[path] = (status, content_type, body)`` and counts requests."""

    def __init__(self):
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                status, ctype, body = server.routes.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with _Server() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LANDSCAPE_OFFLINE", raising=False)
    monkeypatch.delenv("LANDSCAPE_MANIFEST", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _jem_bytes(tmp_path) -> tuple[bytes, torch.nn.Module]:
    net = tiny_wrn()
    torch.save({"model_state_dict": jem_layout(net), "replay_buffer": replay_buffer()}, tmp_path / "src.pt")
    return (tmp_path / "src.pt").read_bytes(), net


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_verifies_sha256_caches_atomically_and_is_reused(tmp_path, server):
    body = b"x" * (3 * (1 << 20) + 123)  # several progress steps
    server.routes["/w.pt"] = (200, "application/octet-stream", body)
    dest = tmp_path / "cache" / "w.pt"
    got = fetch(server.url("/w.pt"), dest, sha256=hashlib.sha256(body).hexdigest())
    assert got == dest and dest.read_bytes() == body and _files(dest.parent) == ["w.pt"]
    fetch(server.url("/w.pt"), dest, sha256=hashlib.sha256(body).hexdigest())
    assert server.requests == ["/w.pt"]  # the second call used the cache


def test_bad_hash_html_pages_and_http_errors_cache_nothing(tmp_path, server):
    server.routes["/w.pt"] = (200, "application/octet-stream", b"weights")
    server.routes["/drive"] = (200, "text/html; charset=utf-8", HTML)
    server.routes["/sneaky.pt"] = (200, "application/octet-stream", HTML)  # HTML served as binary
    dest = tmp_path / "cache" / "w.pt"
    with pytest.raises(CheckpointError, match="has sha256 .* the registry expects 0{64}; nothing was cached"):
        fetch(server.url("/w.pt"), dest, sha256="0" * 64)
    with pytest.raises(CheckpointError, match=r"returned an HTML page instead of the weights .* nothing was cached"):
        fetch(server.url("/drive"), dest)
    with pytest.raises(CheckpointError, match="returned an HTML page"):
        fetch(server.url("/sneaky.pt"), dest)
    with pytest.raises(CheckpointError, match="failed: HTTP 404"):
        fetch(server.url("/missing.pt"), dest)
    assert _files(tmp_path / "cache") == []  # no partial or temporary file left behind
    with pytest.raises(CheckpointError, match="can only download http"):
        fetch("ftp://127.0.0.1/w.pt", dest)


def test_offline_never_touches_the_network_and_says_where(tmp_path, server, monkeypatch):
    server.routes["/w.pt"] = (200, "application/octet-stream", b"weights")
    monkeypatch.setenv("LANDSCAPE_OFFLINE", "1")
    dest = tmp_path / "cache" / "w.pt"
    with pytest.raises(CheckpointError, match=rf"LANDSCAPE_OFFLINE is set and .* is not in the cache: expected the file {dest}"):
        fetch(server.url("/w.pt"), dest)
    assert server.requests == []
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"weights")
    assert fetch(server.url("/w.pt"), dest) == dest and server.requests == []


def test_load_model_from_a_url_then_offline_from_the_cache(tmp_path, server, monkeypatch):
    body, net = _jem_bytes(tmp_path)
    server.routes["/jem/CIFAR10_MODEL.pt"] = (200, "application/octet-stream", body)
    url = server.url("/jem/CIFAR10_MODEL.pt")
    model = load_model(url, sha256=hashlib.sha256(body).hexdigest())
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.logits(x), net(x * 2 - 1))
    cached = url_cache_path(url)
    assert cached.is_file() and cached.parent == tmp_path / "home" / "downloads" and cached.name.endswith("-CIFAR10_MODEL.pt")
    assert model.metadata["family"] == "jem" and model.metadata["source"] == url
    monkeypatch.setenv("LANDSCAPE_OFFLINE", "1")
    server.requests.clear()
    assert load_model(url).metadata["path"] == str(cached) and server.requests == []


def test_registry_entries_download_and_verify(tmp_path, server, monkeypatch):
    body, net = _jem_bytes(tmp_path)
    server.routes["/tiny.pt"] = (200, "application/octet-stream", body)
    server.routes["/page"] = (200, "text/html", HTML)
    manifest = tmp_path / "manifest.toml"
    manifest.write_text(f"""
[[checkpoint]]
name = "tiny-jem"
family = "jem"
architecture = "wrn"
arch_kwargs = {{ depth = 10, width = 1, norm = "none" }}
dataset = "cifar10"
url = "{server.url('/tiny.pt')}"
sha256 = "{hashlib.sha256(body).hexdigest()}"
paper = "unit test"
[checkpoint.metrics]
clean_acc = 10.0

[[checkpoint]]
name = "tiny-bad-hash"
family = "jem"
architecture = "wrn"
dataset = "cifar10"
url = "{server.url('/tiny.pt')}"
filename = "tiny.pt"
sha256 = "{'1' * 64}"
paper = "unit test"

[[checkpoint]]
name = "tiny-drive"
family = "jem"
architecture = "wrn"
dataset = "cifar10"
url = "{server.url('/page')}"
filename = "tiny.pt"
paper = "unit test"
""")
    monkeypatch.setenv("LANDSCAPE_MANIFEST", str(manifest))
    assert list(load_manifest()) == ["tiny-jem", "tiny-bad-hash", "tiny-drive"]
    model = load_model("tiny-jem")
    assert model.metadata["registry"]["metrics"] == {"clean_acc": 10.0}
    assert (tmp_path / "home" / "checkpoints" / "tiny-jem" / "tiny.pt").is_file()
    with pytest.raises(CheckpointError, match="the registry expects 1{64}; nothing was cached"):
        load_model("tiny-bad-hash")
    with pytest.raises(CheckpointError, match="returned an HTML page instead of the weights of tiny-drive"):
        load_model("tiny-drive")
    assert not (tmp_path / "home" / "checkpoints" / "tiny-bad-hash").exists() or _files(tmp_path / "home" / "checkpoints" / "tiny-bad-hash") == []
    assert _files(tmp_path / "home" / "checkpoints" / "tiny-drive") == []
    # a cached file that no longer matches its registry hash is reported, not used
    (tmp_path / "home" / "checkpoints" / "tiny-jem" / "tiny.pt").write_bytes(body[:-10])
    with pytest.raises(CheckpointError, match="has sha256 .* the registry expects .*delete it to download it again"):
        load_model("tiny-jem")


def test_manifest_validation(tmp_path, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[checkpoint]]\nname = "a"\nfamily = "jem"\narchitecture = "wrn"\ndataset = "c"\npaper = "p"\nurl_typo = "x"\n')
    with pytest.raises(CheckpointError, match=r"entry 'a' lacks \[\] or has unknown fields \['url_typo'\]"):
        load_manifest(bad)
    bad.write_text('[[checkpoint]]\nname = "a"\nfamily = "jemm"\narchitecture = "wrn"\ndataset = "c"\npaper = "p"\n')
    with pytest.raises(CheckpointError, match="has family 'jemm'"):
        load_manifest(bad)
    bad.write_text('[[checkpoint]]\nname = "a"\nfamily = "jem"\narchitecture = "wrn"\ndataset = "c"\npaper = "p"\nsha256 = "abc"\n')
    with pytest.raises(CheckpointError, match="expected 64 hex digits"):
        load_manifest(bad)
    entry = '[[checkpoint]]\nname = "a"\nfamily = "jem"\narchitecture = "wrn"\ndataset = "c"\npaper = "p"\n'
    bad.write_text(entry + entry)
    with pytest.raises(CheckpointError, match="appears twice"):
        load_manifest(bad)
    bad.write_text("not = [valid")
    with pytest.raises(CheckpointError, match="not valid TOML"):
        load_manifest(bad)


def test_the_shipped_manifest_is_valid_and_honest():
    entries = load_manifest()
    names = set(entries)
    assert {"jem-cifar10", "jempp-cifar10", "sadajem-cifar10", "Standard", "Rice2020Overfitting",
            "Zhang2019Theoretically", "Wang2023Better_WRN-28-10", "Engstrom2019Robustness"} <= names
    for e in entries.values():
        assert e.url or e.page, e.name  # every entry says where the file comes from
        assert e.sha256 == "" or len(e.sha256) == 64
        assert e.metrics, e.name
    assert entries["Rice2020Overfitting"].metrics == {"clean_acc": 85.34, "autoattack_acc": 53.42}
    assert entries["Zhang2019Theoretically"].metrics == {"clean_acc": 84.92, "autoattack_acc": 53.08}


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("LANDSCAPE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert landscape_home() == tmp_path / "xdg" / "landscape"
    monkeypatch.setenv("LANDSCAPE_HOME", str(tmp_path / "lh"))
    assert landscape_home() == tmp_path / "lh"


def test_bundled_models_load_by_registry_name_offline_and_check_their_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_OFFLINE", "1")  # the shipped files need no cache and no network
    for name in ("standard", "pgdat", "trades", "jem", "ebjdat"):
        by_name = load_model(f"fmnist-{name}")
        by_path = load_model(str(Path(__file__).resolve().parents[2] / "checkpoints" / "fmnist" / f"{name}.safetensors"))
        x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        assert torch.equal(by_name.logits(x), by_path.logits(x)), name
        assert by_name.metadata["registry"]["name"] == f"fmnist-{name}"
    assert _files(tmp_path / "home") == []
    # a shipped file that disagrees with its entry is refused with a message naming both
    shipped = Path(__file__).resolve().parents[2] / "checkpoints" / "fmnist" / "standard.safetensors"
    (tmp_path / "fmnist").mkdir()
    (tmp_path / "fmnist" / "standard.safetensors").write_bytes(shipped.read_bytes()[:-1] + b" ")
    manifest = tmp_path / "manifest.toml"
    manifest.write_text('[[checkpoint]]\nname = "mine"\nfamily = "native"\narchitecture = "smallcnn"\n'
                        f'dataset = "fashion-mnist"\npaper = "p"\nlocal = "fmnist/standard.safetensors"\nsha256 = "{"2" * 64}"\n')
    monkeypatch.setenv("LANDSCAPE_MANIFEST", str(manifest))
    with pytest.raises(CheckpointError, match=r"expects 2{64}: the bundled file and .*manifest.toml disagree"):
        load_model("mine")
    manifest.write_text(manifest.read_text().replace('local = "fmnist/', 'local = "../fmnist/'))
    with pytest.raises(CheckpointError, match="local must be a path inside the manifest's folder"):
        load_model("mine")
