"""`serve` bounded in memory and time, and answering only its own page: big images refused by the loader's
decoding budget (413) with the server's peak memory under 1 GiB, requests from other sites refused (403), slow
clients cut off, clients that hang up leaving no trace on stderr. A real server on a small trained model."""
import concurrent.futures
import http.client
import json
import select
import signal
import socket
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline.images import DECODE_BUDGET, load_image
from pipeline.serve import MAX_BODIES, REQUEST_SECONDS
from tests.conftest import run_cli
from tests.test_data import write_split
from tests.test_hostile_inputs import refused
from tests.test_serve import start


def png(width, height, colour_type=6):
    """A PNG of width x height black pixels (colour type 6: RGBA, 2: RGB) written row by row, never held whole:
    9000x9000 RGBA is about 315 KB."""
    channels = {2: 3, 6: 4}[colour_type]
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    row = bytes(1 + width * channels)  # filter byte 0, then the row's samples
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-limits")
    rng = np.random.default_rng(0)
    for split, m in (("train", 20), ("test", 8)):
        y = np.arange(m) % 2
        x = rng.integers(0, 160, size=(m, 8, 8, 3)) + 60 * y[:, None, None, None]  # (m, h, w, 3)
        write_split(folder / f"{split}_catvnoncat.h5", split, x.astype(np.uint8), y)
    run_cli("train", "--set", f"data.dir={folder}", "--set", "train.num_iterations=20", "--run-dir", folder / "run",
            check=0)
    return folder / "run"


@pytest.fixture
def server(model_run):
    """(process, host, port) of a fresh server; stopped (killed if it must be) after the test."""
    proc, url = start("--model", model_run)
    host, port = url[len("http://"):-1].split(":")
    yield proc, host, int(port)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=30)
    except Exception:
        proc.kill()
        raise


def post(host, port, data, headers=()):
    """POST data to /predict: (status, decoded JSON)."""
    connection = http.client.HTTPConnection(host, port, timeout=120)
    try:
        connection.request("POST", "/predict", body=data, headers={"X-File-Name": "big.png", **dict(headers)})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def status(pid, key):
    """A number of /proc/<pid>/status (VmHWM in kB, Threads)."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith(key + ":")))


def test_the_loader_refuses_what_would_take_more_than_its_budget_to_decode(tmp_path):
    (tmp_path / "big.png").write_bytes(png(9000, 9000))
    with pytest.raises(Exception, match=rf"big.png: refused: decoding 9000x9000 RGBA pixels would take about 1544 "
                                        rf"MiB, over the budget of {DECODE_BUDGET // 2**20} MiB for one image"):
        load_image(tmp_path / "big.png", (64, 64))
    (tmp_path / "ok.png").write_bytes(png(3000, 3000, 2))  # 72 MB to decode: well within
    assert load_image(tmp_path / "ok.png", (64, 64)).shape == (64, 64, 3)


def test_predict_has_the_same_bound(model_run, tmp_path):
    (tmp_path / "big.png").write_bytes(png(9000, 9000))
    refused(run_cli("predict", "--model", model_run, tmp_path / "big.png"),
            f"{tmp_path / 'big.png'}: refused: decoding 9000x9000 RGBA pixels")


def test_parallel_big_uploads_are_refused_413_and_memory_stays_under_1_gib(server):
    proc, host, port = server
    big, fits = png(9000, 9000), png(5000, 5000, 2)  # 1.5 GiB to decode; 190 MiB, within the budget
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda data: post(host, port, data), [big] * 4 + [fits] * 4))
    for code, body in answers[:4]:
        assert code == 413 and body["error"].startswith("big.png: refused: decoding 9000x9000 RGBA pixels"), body
    assert all(code == 200 for code, _ in answers[4:]), answers[4:]
    assert status(proc.pid, "VmHWM") < 2**20  # kB: the serve process's peak resident memory


def test_requests_from_other_sites_are_refused(server):
    _, host, port = server
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}, {"Origin": "null"}):
        code, body = post(host, port, png(8, 8, 2), headers)
        assert code == 403 and "a request from another site; this server answers only its own page" in body["error"]
    own = {"Origin": f"http://{host}:{port}", "Sec-Fetch-Site": "same-origin"}
    assert post(host, port, png(8, 8, 2), own)[0] == 200
    assert post(host, port, png(8, 8, 2), {"Sec-Fetch-Site": "none"})[0] == 200  # typed in, or not a browser


def test_a_slow_client_is_cut_off_at_the_request_deadline(server):
    _, host, port = server
    with socket.create_connection((host, port), timeout=60) as s:
        s.sendall(f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 1000\r\n\r\n".encode())
        for _ in range(4 * REQUEST_SECONDS):  # a byte every half second: each read is quick, the request is not
            try:
                s.sendall(b"x")
                if select.select([s], [], [], 0.5)[0] and s.recv(100) == b"":
                    break  # the server closed the connection
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            pytest.fail("the server kept reading a request that never ends")


def test_uploads_beyond_the_limit_get_503_rather_than_memory(server):
    proc, host, port = server
    threads = status(proc.pid, "Threads")
    held = [socket.create_connection((host, port), timeout=60) for _ in range(MAX_BODIES)]
    try:
        for s in held:  # each holds a place while its 20 MiB body has not arrived
            s.sendall(f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {20 * 2**20}\r\n\r\nx".encode())
        for _ in range(600):  # until each is read by its thread (and its deadline's timer thread started)
            if status(proc.pid, "Threads") >= threads + 2 * MAX_BODIES:
                break
            time.sleep(0.1)
        code, body = post(host, port, png(8, 8, 2))
        assert code == 503 and body == {"error": "big.png: the server is busy with other images; try again in a "
                                                 "moment"}
    finally:
        for s in held:
            s.close()


def test_clients_that_hang_up_leave_no_trace(server):
    proc, host, port = server
    threads = status(proc.pid, "Threads")
    request = (f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(png(64, 64, 2))}\r\n\r\n"
               .encode() + png(64, 64, 2))
    for cut in [len(request)] * 8 + [len(request) // 2] * 2:  # hung up before the answer, or mid-upload
        s = socket.create_connection((host, port), timeout=60)
        s.sendall(request[:cut])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset, not a goodbye
        s.close()
    for _ in range(600):  # until the server's request threads are done with them
        if status(proc.pid, "Threads") <= threads:
            break
        time.sleep(0.1)
    assert post(host, port, png(8, 8, 2))[0] == 200
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert err.splitlines() == ["stopped"], err
