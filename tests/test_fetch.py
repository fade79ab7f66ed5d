"""fetch against a real HTTP server on 127.0.0.1, file:// URLs and folders; a bad file never lands."""
import contextlib
import functools
import hashlib
import http.server
import os
import signal
import subprocess
import threading
import time

import pytest

from pipeline import PipelineError
from pipeline.fetch import SHA256, fetch
from tests.conftest import COURSE_FILES, run_cli, run_python, spawn_python

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


# --- bounded downloads, mirrors tried in turn, nothing partial left by an error or a signal ---

class Hostile(http.server.BaseHTTPRequestHandler):
    """Serves GET /<name> as the server's `bodies` say: bytes, or "endless" (zeros, without a length, as fast
    as taken), or "trickle" (a byte every 10 ms, forever), or ("announce", n): a Content-Length of n."""

    def do_GET(self):
        body = self.server.bodies.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        if isinstance(body, tuple):
            self.send_header("Content-Length", str(body[1]))
        self.end_headers()
        try:
            if isinstance(body, bytes):
                self.wfile.write(body)
            while body in ("endless", "trickle") or isinstance(body, tuple):
                self.wfile.write(bytes(1 << 16 if body != "trickle" else 1))
                time.sleep(0.01 if body == "trickle" else 0)
        except OSError:  # the client went away, as it should
            pass

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def hostile(**bodies):
    """A real HTTP server on 127.0.0.1 serving `bodies` (file name -> see Hostile); yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads, httpd.bodies = True, bodies
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


SMALL = {"a.h5": len(FILES["a.h5"]), "b.h5": len(FILES["b.h5"])}


@pytest.mark.parametrize("body, message", [
    ("endless", r"a.h5: more than the 10 bytes expected; stopped, nothing was written"),
    (("announce", 1 << 40), r"a.h5: announces 1099511627776 bytes, more than the 10 of a.h5; not downloaded"),
    (FILES["a.h5"] + b"!", r"a.h5: more than the 10 bytes expected; stopped"),
])
def test_a_source_sending_more_than_the_file_is_cut_off(body, message, tmp_path):
    with hostile(**{"a.h5": body}) as url:
        with pytest.raises(PipelineError, match=message):
            fetch(url, tmp_path / "raw", HASHES, log=lambda m: None, sizes=SMALL)
    assert list((tmp_path / "raw").iterdir()) == []


def test_mirrors_are_tried_in_turn_until_one_has_the_right_file(tmp_path):
    messages = []
    with hostile() as missing, hostile(**{"a.h5": b"tampered!!"}) as wrong, hostile(**FILES) as good:
        fetch([missing, wrong, good], tmp_path / "raw", HASHES, log=messages.append, sizes=SMALL)
    assert fetched(tmp_path / "raw") == FILES
    assert messages[0].startswith(f"{missing}a.h5: HTTP error 404") and messages[0].endswith("trying the next mirror")
    assert messages[1].startswith(f"{wrong}a.h5: sha256 mismatch") and messages[1].endswith("trying the next mirror")
    assert messages[2:] == [f"{tmp_path / 'raw' / 'a.h5'}: fetched from {good}a.h5, sha256 ok",  # b.h5: the good
                            f"{tmp_path / 'raw' / 'b.h5'}: fetched from {good}b.h5, sha256 ok"]  # mirror first


def test_when_every_mirror_fails_one_line_says_how_to_go_on(tmp_path):
    """Through the CLI, with the built-in mirrors replaced by local servers that fail."""
    with hostile() as missing, hostile(**{"train_catvnoncat.h5": b"x"}) as wrong:
        code = (f"import sys, pipeline.fetch; pipeline.fetch.DEFAULT_SOURCE = ({missing!r}, {wrong!r}); "
                f"from pipeline.cli import main; sys.exit(main(['fetch', '--dest', {str(tmp_path / 'raw')!r}]))")
        result = run_python("-c", code)
    assert result.returncode == 1 and result.stderr.count("\n") == 2, result.stderr  # a try, the error
    error = result.stderr.splitlines()[-1]
    assert error.startswith("error: train_catvnoncat.h5: none of the 2 known mirrors could provide it "
                            f"(the last said: {wrong}train_catvnoncat.h5: sha256 mismatch")
    assert error.endswith("to go on, put train_catvnoncat.h5 and test_catvnoncat.h5 in a folder or at a URL of "
                          "yours and run `make train DATA_FROM=<folder or URL>` or "
                          "`python -m pipeline fetch --from <folder or URL>`")
    assert list((tmp_path / "raw").iterdir()) == []


def test_sigterm_during_a_download_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "raw"
    with hostile(**{"train_catvnoncat.h5": "trickle"}) as url:
        proc = spawn_python("-m", "pipeline", "fetch", "--from", url, "--dest", dest, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not list(dest.glob(".train_catvnoncat.h5.*.tmp")):  # the partial file, being written
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        with proc.stderr:
            assert proc.wait(timeout=60) == 143 and proc.stderr.read() == "terminated\n"
    assert list(dest.iterdir()) == []


def test_a_full_disk_during_a_download_names_the_file_and_leaves_nothing(tmp_path):
    from tests.test_faults import tmpfs

    big = {"big.h5": os.urandom(1 << 20)}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.h5").write_bytes(big["big.h5"])
    with tmpfs(tmp_path / "disk", "512k") as disk:
        with pytest.raises(OSError) as e:
            fetch(str(tmp_path / "src"), disk / "raw", {"big.h5": hashlib.sha256(big["big.h5"]).hexdigest()},
                  log=lambda m: None)
        assert (e.value.filename, e.value.strerror) == (str(disk / "raw" / "big.h5"), "No space left on device")
        assert list((disk / "raw").iterdir()) == []
