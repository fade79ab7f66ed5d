"""fetch against a real HTTP server on 127.0.0.1, file:// URLs and folders; a bad file never lands."""
import functools
import hashlib
import http.server
import threading

import pytest

from pipeline import PipelineError
from pipeline.fetch import SHA256, fetch
from tests.conftest import COURSE_FILES, run_cli

FILES = {"a.h5": b"first file", "b.h5": b"second file"}
HASHES = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


@pytest.fixture
def mirror(tmp_path):
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def server(mirror):
    """A real http.server serving the mirror folder on 127.0.0.1; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(mirror))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def fetched(dest):
    return {p.name: p.read_bytes() for p in dest.iterdir()}


def test_http_download_lands_verified_files(server, tmp_path):
    dest = tmp_path / "raw"
    fetch(server, dest, HASHES, log=lambda m: None)
    assert fetched(dest) == FILES


def test_file_url_and_folder_sources(mirror, tmp_path):
    fetch(mirror.as_uri(), tmp_path / "one", HASHES, log=lambda m: None)
    fetch(str(mirror), tmp_path / "two", HASHES, log=lambda m: None)
    assert fetched(tmp_path / "one") == fetched(tmp_path / "two") == FILES


def test_wrong_hash_names_file_and_both_hashes_and_leaves_nothing(server, mirror, tmp_path):
    (mirror / "b.h5").write_bytes(b"tampered")
    dest = tmp_path / "raw"
    actual = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(PipelineError, match=rf"b.h5: sha256 mismatch for b.h5: expected {HASHES['b.h5']}, got {actual}"):
        fetch(server, dest, HASHES, log=lambda m: None)
    assert fetched(dest) == {"a.h5": FILES["a.h5"]}  # the good one stays, no partial or temporary file


def test_404_is_reported_with_the_url(server, mirror, tmp_path):
    (mirror / "a.h5").unlink()
    with pytest.raises(PipelineError, match=r"127.0.0.1:\d+/a.h5: HTTP error 404"):
        fetch(server, tmp_path / "raw", HASHES, log=lambda m: None)
    assert not any((tmp_path / "raw").iterdir())


def test_a_mistyped_source_folder_is_refused_even_when_nothing_is_needed(mirror, tmp_path):
    fetch(str(mirror), tmp_path / "raw", HASHES, log=lambda m: None)
    with pytest.raises(PipelineError, match=r"mirorr: not a folder"):
        fetch(str(tmp_path / "mirorr"), tmp_path / "raw", HASHES, log=lambda m: None)


def test_verified_files_are_not_fetched_again(mirror, tmp_path):
    dest = tmp_path / "raw"
    fetch(str(mirror), dest, HASHES, log=lambda m: None)
    (mirror / "a.h5").unlink()  # the source is gone, yet nothing needs it
    messages = []
    fetch(str(mirror), dest, HASHES, log=messages.append)
    assert all("present, sha256 ok" in m for m in messages) and len(messages) == 2


def test_a_corrupted_local_copy_is_fetched_again(mirror, tmp_path):
    dest = tmp_path / "raw"
    fetch(str(mirror), dest, HASHES, log=lambda m: None)
    (dest / "a.h5").write_bytes(b"bit rot")
    messages = []
    fetch(str(mirror), dest, HASHES, log=messages.append)
    assert fetched(dest) == FILES and "fetching it again" in messages[0]


@pytest.mark.parametrize("source, message", [
    ("ftp://example.org/x/", r"only http://, https:// and file:// URLs are supported"),
    ("no/such/folder", r"no/such/folder: not a folder, nor an http\(s\):// or file:// URL"),
])
def test_bad_sources(source, message, tmp_path):
    with pytest.raises(PipelineError, match=message):
        fetch(source, tmp_path / "raw", HASHES, log=lambda m: None)


def test_unreachable_server_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PipelineError, match=rf"127.0.0.1:{port}/a.h5: cannot download"):
        fetch(f"http://127.0.0.1:{port}/", tmp_path / "raw", HASHES, log=lambda m: None)


def test_cli_fetches_the_real_course_files_over_http(course_dir, tmp_path):
    """The real files through a real server and the CLI, checked against the published hashes."""
    handler = functools.partial(QuietHandler, directory=str(course_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        result = run_cli("fetch", "--from", url, "--dest", tmp_path, check=0)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(COURSE_FILES)
    for name in COURSE_FILES:
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == SHA256[name]
        assert f"{name}: fetched from {url}/{name}, sha256 ok" in result.stderr


def test_cli_refuses_a_folder_with_wrong_files(mirror, tmp_path):
    (mirror / "train_catvnoncat.h5").write_bytes(b"not the course file")
    result = run_cli("fetch", "--from", mirror, "--dest", tmp_path / "raw")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "sha256 mismatch for train_catvnoncat.h5: expected fbe56ab67c3a" in result.stderr
    assert not (tmp_path / "raw" / "train_catvnoncat.h5").exists()
