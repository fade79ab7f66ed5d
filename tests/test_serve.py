"""`python -m pipeline serve` as a real subprocess on a free port: real uploads over HTTP, refusals, the page in
a real headless Chromium, Ctrl-C."""
import base64
import http.client
import io
import json
import re
import signal
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from pipeline.artifacts import trained_at
from pipeline.serve import MAX_UPLOAD
from tests.conftest import kill_group, run_cli, run_command, spawn_python
from tests.test_explain import course_run  # noqa: F401
from tests.test_images import quadrants
from tests.test_sweep_report import CHROMIUM_FLAGS, chromium


def start(*args, env=None):
    """Start `python -m pipeline serve ARGS --port 0`; return (process, base URL) once it listens."""
    proc = spawn_python("-m", "pipeline", "serve", *args, "--port", "0", env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
    line = proc.stderr.readline()
    found = re.fullmatch(r"serving (http://127\.0\.0\.1:\d+/) with .*; Ctrl-C to stop\n", line)
    if not found:
        kill_group(proc)
        pytest.fail(f"the server did not start: {line}{proc.communicate()[1]}")
    return proc, found.group(1)


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """A private TMPDIR for the server (to see that uploads leave nothing there)."""
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def server(course_run, uploads):  # noqa: F811

    proc, url = start("--model", course_run, env={"TMPDIR": str(uploads)})
    try:
        yield url
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        kill_group(proc)


def post(url, data, name=None, path="predict"):
    """POST data to url+path; return (status, headers, decoded JSON)."""
    request = urllib.request.Request(url + path, data=data, method="POST",
                                     headers={"X-File-Name": name} if name else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def get(url, path=""):
    with urllib.request.urlopen(url + path, timeout=60) as response:
        return response.headers, response.read()


def pixels_of(data_uri):
    head, _, data = data_uri.partition(",")
    assert head == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return np.asarray(image.convert("RGB"))


def photos(folder, course_dir):
    """Real files of several kinds: PNGs of test images, an enlarged JPEG, one stored sideways, a sticker."""
    from pipeline.data import load_split

    test = load_split(course_dir / "test_catvnoncat.h5", "test")
    folder.mkdir()
    Image.fromarray(test.x[0]).save(folder / "test0.png")
    Image.fromarray(test.x[5]).save(folder / "test5.png")
    Image.fromarray(test.x[7]).resize((640, 480)).save(folder / "big.jpg", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    quadrants(300, 200).save(folder / "sideways.jpg", exif=exif)
    sticker = Image.new("RGBA", (120, 80), (0, 0, 0, 0))
    sticker.paste((200, 30, 30, 255), (30, 20, 90, 60))
    sticker.save(folder / "sticker.png")
    return sorted(folder.iterdir())


def test_every_probability_is_predicts_and_the_contributions_add_up(server, course_run, course_dir, tmp_path):  # noqa: F811
    files = photos(tmp_path / "photos", course_dir)
    expected = json.loads(run_cli("predict", "--model", course_run, *files, "--json", "--save-input",
                                  tmp_path / "seen", check=0).stdout)
    seen = sorted((tmp_path / "seen").iterdir())
    for path, want, saved in zip(files, expected, seen):
        status, headers, got = post(server, path.read_bytes(), name=path.name)
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert (got["path"], got["label"]) == (path.name, want["label"])
        assert got["probability"] == want["probability"]
        assert got["bias"] + got["contributions_sum"] == pytest.approx(got["z"], abs=1e-12)
        assert np.log(got["probability"] / (1 - got["probability"])) == pytest.approx(got["z"], abs=1e-9)
        with Image.open(saved) as image:  # the image as the neuron saw it is predict's --save-input
            assert np.array_equal(pixels_of(got["images"]["input"]), np.asarray(image))
        assert pixels_of(got["images"]["contributions"]).shape == (64, 64, 3)
        assert pixels_of(got["images"]["weights"]).shape == (64, 64, 3)
    assert len({round(r["probability"], 6) for r in expected}) == len(files)  # the files really differ


def test_model_tells_where_the_model_comes_from(server, course_run):  # noqa: F811
    _, body = get(server, "model")
    info = json.loads(body)
    record = json.loads((course_run / "run.json").read_text())
    assert record["started"][:10] in info["trained"]  # when the run finished, as predict names it
    assert info == {"model": str(course_run), "run": course_run.name, "trained": trained_at(course_run),
                    "image_shape": [64, 64, 3], "classes": ["non-cat", "cat"], "threshold": 0.5,
                    "scaling": "divide255", "fit": "squash", "resample": "bilinear", "max_upload": MAX_UPLOAD}


def test_bad_uploads_are_refused_in_the_loaders_words_and_leave_no_file(server, uploads, tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    bomb = io.BytesIO()
    Image.new("1", (10000, 10000)).save(bomb, format="PNG")  # 10 kB declaring 100 megapixels
    cases = [(b"holiday pictures\n", "notes.txt", "notes.txt: not an image (a text file)"),
             (b"<!DOCTYPE html><html></html>", "download.jpg", "download.jpg: not an image (an HTML page)"),
             (b"", None, "upload: empty file"),
             (buf.getvalue()[:60], "cut.png", "cut.png: truncated or corrupt image ("),
             (bomb.getvalue(), "bomb.png", "bomb.png: refused: 10000x10000 pixels is over the limit of 89478485 "
                                           "pixels, could be a decompression bomb"),
             (bytes(range(128, 256)), "a%0Ab%1B%E2%80%AE.png", "a\\nb\\x1b\\u202e.png: not an image (unknown format)")]
    for data, name, words in cases:
        status, headers, body = post(server, data, name)
        assert status == (413 if name == "bomb.png" else 400) and body["error"].startswith(words), body
        assert "Access-Control-Allow-Origin" not in headers
    assert list(uploads.iterdir()) == []  # each upload's private folder is removed


def test_too_large_is_413_before_the_body_is_read_no_length_411_and_unknown_paths_404(server):
    host, port = server[len("http://"):-1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Length", str(MAX_UPLOAD + 1))
    connection.endheaders()  # and no body: the server must answer without waiting for it
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read()) == {"error": f"upload: {MAX_UPLOAD + 1} bytes is over the limit of "
                                                    f"{MAX_UPLOAD} bytes"}
    connection.close()
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Content-Length", "9" * 5000)  # more digits than int() converts
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"].startswith("upload: 999")
    connection.close()
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/predict")
    connection.putheader("Transfer-Encoding", "chunked")  # a length the server would have to trust as it reads
    connection.endheaders()
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (411, {"error": "upload: a Content-Length header is "
                                                                             "required"})
    connection.close()
    assert post(server, b"x", path="upload")[::2] == (404, {"error": "/upload: no such page (POST image bytes to "
                                                                     "/predict)"})
    with pytest.raises(urllib.error.HTTPError) as e:
        get(server, "etc/passwd")
    assert e.value.code == 404 and json.loads(e.value.read()) == {"error": "/etc/passwd: no such page"}


def test_a_request_for_another_host_name_is_refused(server):
    # DNS rebinding: evil.example made to resolve to 127.0.0.1 would send its own name as Host
    request = urllib.request.Request(server + "model", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=60)
    assert e.value.code == 403 and json.loads(e.value.read())["error"].startswith("Host evil.example: not this server's")
    request = urllib.request.Request(server + "model", headers={"Host": "[::1"})  # not even a host name
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=60)
    assert e.value.code == 403 and json.loads(e.value.read())["error"].startswith("Host [::1: not this server's")
    port = server.rsplit(":", 1)[1].strip("/")
    request = urllib.request.Request(server + "model", headers={"Host": f"localhost:{port}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


def test_the_page_is_self_contained_and_not_readable_cross_origin(server):
    request = urllib.request.Request(server, headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as e:  # not served to another site at all (test_serve_limits.py)
        urllib.request.urlopen(request, timeout=60)
    e.value.close()
    assert e.value.code == 403 and "Access-Control-Allow-Origin" not in e.value.headers
    with urllib.request.urlopen(server, timeout=60) as response:
        headers, page = response.headers, response.read().decode("utf-8")
    assert "Access-Control-Allow-Origin" not in headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert not re.search(r"(src|href)=\"(?!data:)|https?://|url\(", page)  # nothing loaded from elsewhere
    assert 'id="file"' in page and 'id="threshold"' in page


class Dom(HTMLParser):
    """{id: (attributes, text)} of the elements of a dumped DOM that have an id."""

    def __init__(self, text):
        super().__init__()
        self.ids, self.open = {}, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] = [attrs, ""]
            self.open.append(attrs["id"])
        elif tag not in ("img", "input", "br", "meta"):
            self.open.append(None)

    def handle_endtag(self, tag):
        if self.open and tag not in ("img", "input", "br", "meta"):
            self.open.pop()

    def handle_data(self, data):
        for key in self.open:
            if key:
                self.ids[key][1] += data


def dump_dom(url, tmp_path):
    result = run_command([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=10000", "--dump-dom", url], timeout=180, text=True)
    assert result.returncode == 0, result.stderr
    return Dom(result.stdout).ids


def test_the_demo_runs_the_pages_upload_in_headless_chromium(server, course_run, tmp_path):  # noqa: F811
    _, example = get(server, "example.png")
    (tmp_path / "example.png").write_bytes(example)
    want = json.loads(run_cli("predict", "--model", course_run, tmp_path / "example.png", "--json",
                              check=0).stdout)[0]
    dom = dump_dom(server + "?demo=1", tmp_path)
    assert dom["status"][1] == "example.png: done", dom["status"]
    assert float(dom["probability"][0]["data-value"]) == want["probability"]
    assert dom["label"][1] == want["label"] and dom["name"][1] == "example.png"
    z, total, bias = (float(dom[k][0].get("data-value", dom[k][1])) for k in ("z", "sum", "bias"))
    assert total + bias == pytest.approx(z, abs=1e-3)  # bias is shown to 4 decimals
    assert all(dom[k][0]["src"].startswith("data:image/png;base64,") for k in ("input", "contributions", "weights"))
    assert len(re.findall(r"towards (cat|non-cat)", dom["cells"][1])) == 5
    # the heading asks about the answer given; the slider says what it does
    assert dom["heading"][1] == "Why did it say cat?"
    assert " ".join(dom["threshold-label"][1].split()) == "call it cat when p is above"
    # the regions that weigh most: numbered boxes on the contribution map, where the server's top_cells are
    _, _, served = post(server, example, "example.png")
    h, w = 64, 64  # the course model's images
    for k, cell in enumerate(served["top_cells"], 1):
        attrs, text = dom[f"box-{k}"]
        assert text == str(k) and {key: int(attrs[f"data-{key}"]) for key in ("top", "left", "height", "width")} \
            == {key: cell[key] for key in ("top", "left", "height", "width")}
        style = dict(part.split(":") for part in attrs["style"].replace(" ", "").rstrip(";").split(";"))
        assert style == {"top": f"{100 * cell['top'] / h:g}%", "left": f"{100 * cell['left'] / w:g}%",
                         "height": f"{100 * cell['height'] / h:g}%", "width": f"{100 * cell['width'] / w:g}%"}
    assert "box-6" not in dom
    # the slider relabels without a new request: a threshold just above p flips cat to non-cat
    assert want["label"] == "cat" and want["probability"] < 0.99  # the example is a cat the model finds likely
    threshold = float(f"{want['probability'] + 1e-6:.9f}")  # off the 0.01 grid: the slider keeps every digit
    dom = dump_dom(server + f"?demo=1&threshold={threshold}", tmp_path)
    assert dom["threshold-value"][1] == f"{threshold:.2f}"
    assert dom["label"][1] == "non-cat" and float(dom["probability"][0]["data-value"]) == want["probability"]
    assert dom["heading"][1] == "Why did it say non-cat?"  # relabelled with the answer


def test_ctrl_c_stops_the_server_cleanly(course_run):  # noqa: F811
    proc, url = start("--model", course_run)
    assert json.loads(get(url, "model")[1])["run"] == course_run.name
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and err == "stopped\n" and out == ""


def test_sigterm_stops_the_server_with_143(course_run):  # noqa: F811
    proc, url = start("--model", course_run)
    assert json.loads(get(url, "model")[1])["run"] == course_run.name  # serving
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and err == "stopped\nterminated\n" and out == ""


def test_port_in_use_and_bad_model_are_one_line_errors(server, course_run, tmp_path):  # noqa: F811
    port = server.rsplit(":", 1)[1].strip("/")
    result = run_cli("serve", "--model", course_run, "--port", port)
    assert result.returncode == 1
    assert result.stderr == f"error: 127.0.0.1:{port}: port already in use; choose another with --port\n"
    (tmp_path / "model.npz").write_text("not a zip")
    result = run_cli("serve", "--model", tmp_path / "model.npz", "--port", "0")
    assert result.returncode == 1 and result.stderr == f"error: {tmp_path / 'model.npz'}: not a model file (.npz)\n"


def test_other_methods_are_refused_in_json(server):
    request = urllib.request.Request(server + "predict", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=30)
    assert e.value.code == 501 and e.value.headers["Content-Type"] == "application/json"
    assert json.loads(e.value.read())["error"] == "Unsupported method ('PUT')"
