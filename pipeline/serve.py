"""`python -m pipeline serve`: a local page to drop a photo on, on the standard library's threading HTTP server.

GET /             the page (pipeline/webpage.py): one self-contained document, no external resources
GET /model        the model's metadata as JSON
GET /example.png  the example image the page's demo (/?demo=1) uploads
POST /predict     an image file's bytes -> predict --json's fields plus the explanation (pipeline/explain.py)

Uploads are written to a private temporary folder (removed after the request) and read by
pipeline/images.load_image, with its policy and limits; refusals are JSON {"error": "..."} in the loader's words.

Bounded in memory and time: at most MAX_BODIES uploads are held and DECODERS decoded at once (each within the
loader's DECODE_BUDGET bytes; an image over it is 413), the rest wait QUEUE_SECONDS, then get 503; every request
ends within REQUEST_SECONDS however slowly its client sends; a request from another site (its Origin or
Sec-Fetch-Site) gets 403, so that no web page can make this machine work (docs/security.md).
"""
import contextlib
import errno
import ipaddress
import json
import socket
import sys
import tempfile
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image

from pipeline import PipelineError
from pipeline.artifacts import load_model, read_record, run_config, trained_at
from pipeline.explain import contribution_pixels, explain
from pipeline.files import png_bytes
from pipeline.images import TooLarge, load_image
from pipeline.names import printable
from pipeline.page import data_uri
from pipeline.pictures import weights_pixels
from pipeline.webpage import PAGE

MAX_UPLOAD = 20 * 2**20  # bytes: far above any phone photo, and refused before a byte of the body is read
LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")  # what a browser on this machine sends as Host
MAX_SHOWN = 200  # characters of a client's file name or path repeated back to it
MAX_BODIES = 8  # uploads held in memory at once: 160 MiB at most
DECODERS = 2  # uploads decoded at once, each within images.DECODE_BUDGET (256 MiB)
QUEUE_SECONDS = 5  # how long a request waits for its turn before a 503
REQUEST_SECONDS = 20  # a whole request, however slowly it trickles in: a 20 MiB upload over a slow Wi-Fi fits
# the page may load nothing from anywhere else and talk only to this server
POLICY = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class App:
    """What every request needs: the model and what is computed once from it."""

    def __init__(self, source):
        self.source = Path(source)
        self.model = load_model(self.source)
        self.run = self.source if self.source.is_dir() else self.source.parent
        self.trained = trained_at(self.run) if read_record(self.run) else None  # read once: a bad run.json stops here
        self.weights = data_uri(png_bytes(Image.fromarray(weights_pixels(self.model.w, self.model.image_shape))),
                                "image/png")
        self.example = png_bytes(Image.fromarray(self._example_pixels(), "RGB"))

    def info(self):
        """GET /model: where the model comes from and what it expects."""
        m = self.model
        return {"model": str(self.source), "run": self.run.name if self.trained else None,
                "trained": self.trained, "image_shape": list(m.image_shape), "classes": list(m.classes),
                "threshold": m.threshold, "scaling": m.scaler.kind, "fit": m.fit, "resample": m.resample,
                "max_upload": MAX_UPLOAD}

    def _example_pixels(self):
        """The run's first test image of class 1, or, for a model without its run's data, its weights drawn
        as an image (the picture that pushes hardest towards class 1 under divide255)."""
        from pipeline.report import saved_splits

        try:
            _, test = saved_splits(run_config(self.run))
            cats = np.flatnonzero(test.y[0] == 1)
            pixels = np.asarray(test.x[int(cats[0]) if len(cats) else 0])  # (h, w, 3)
            if pixels.shape == self.model.image_shape:
                return pixels
        except (PipelineError, OSError):
            pass
        return weights_pixels(self.model.w, self.model.image_shape)

    def predict(self, data, name):
        """The bytes of an uploaded file -> the JSON record of POST /predict; a refusal names the file as name."""
        h, w, _ = self.model.image_shape
        with tempfile.TemporaryDirectory(prefix="catneuron-upload-") as folder:  # mode 0700: private to us
            upload = Path(folder) / "upload"
            upload.write_bytes(data)
            try:
                pixels = load_image(upload, (h, w), self.model.fit, self.model.resample)  # (h, w, 3)
            except PipelineError as e:
                raise type(e)(str(e).replace(str(upload), name, 1)) from None  # TooLarge stays TooLarge
        record, c = explain(self.model, pixels, self.model.threshold, name)
        record["images"] = {"input": data_uri(png_bytes(Image.fromarray(pixels, "RGB")), "image/png"),
                            "contributions": data_uri(png_bytes(Image.fromarray(
                                contribution_pixels(c, record["scale"]), "RGB")), "image/png"),
                            "weights": self.weights}
        return record


def shown(text):
    """Client-supplied text fit to be repeated back: control and format characters escaped, bounded length."""
    return printable(text)[:MAX_SHOWN]


class Handler(BaseHTTPRequestHandler):
    timeout = REQUEST_SECONDS  # seconds a silent client may hold its thread (and a slow one: handle_one_request)

    def handle_one_request(self):
        """One request, cut off (its connection shut) once REQUEST_SECONDS have passed: the socket's timeout only
        bounds each read, and a client sending one byte every few seconds would hold its thread for ever."""
        deadline = threading.Timer(REQUEST_SECONDS, self._cut)
        deadline.start()
        try:
            super().handle_one_request()
        finally:
            deadline.cancel()

    def _cut(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)  # the blocked read returns; the answer has nowhere to go
        except OSError:
            pass

    def do_GET(self):
        path = urlsplit(self.path).path
        if not (self._local_host() and self._same_origin()):
            return
        if path == "/":
            self._send(200, PAGE.encode("utf-8"), "text/html; charset=utf-8", {"Content-Security-Policy": POLICY})
        elif path == "/model":
            self._json(200, self.server.app.info())
        elif path == "/example.png":
            self._send(200, self.server.app.example, "image/png")
        else:
            self._json(404, {"error": f"{shown(path)}: no such page"})

    def do_POST(self):
        path = urlsplit(self.path).path
        if not (self._local_host() and self._same_origin()):
            return
        if path != "/predict":
            return self._json(404, {"error": f"{shown(path)}: no such page (POST image bytes to /predict)"})
        name = shown(unquote(self.headers.get("X-File-Name", ""))) or "upload"
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self.close_connection = True  # the body, if any, is never read: the connection cannot be reused
            return self._json(411, {"error": f"{name}: a Content-Length header is required"})
        if len(length) > 15 or int(length) > MAX_UPLOAD:  # 15 digits: int() of thousands would be slow and refused
            self.close_connection = True
            return self._json(413, {"error": f"{name}: {shown(length)} bytes is over the limit of {MAX_UPLOAD} bytes"})
        with self._turn(self.server.bodies, name) as turn:
            if turn:
                self._predict(name, int(length))

    def _predict(self, name, length):
        data = self.rfile.read(length)
        if len(data) < length:
            return self._json(400, {"error": f"{name}: the upload was cut short"})
        with self._turn(self.server.decoders, name) as turn:
            if not turn:
                return
            try:
                self._json(200, self.server.app.predict(data, name))
            except TooLarge as e:  # decoding it would take more memory than a request may: its size alone
                self._json(413, {"error": str(e)})
            except PipelineError as e:
                self._json(400, {"error": str(e)})
            except (OSError, MemoryError) as e:  # this machine's trouble (a full disk), not the upload's
                self._json(500, {"error": f"{name}: could not be processed here ({e})"})

    @contextlib.contextmanager
    def _turn(self, gate, name):
        """Yield True holding a place of gate (a semaphore), waiting QUEUE_SECONDS at most; else answer 503
        and yield False."""
        if not gate.acquire(timeout=QUEUE_SECONDS):
            self.close_connection = True  # the body is not read
            self._json(503, {"error": f"{name}: the server is busy with other images; try again in a moment"},
                       {"Retry-After": "5"})
            yield False
            return
        try:
            yield True
        finally:
            gate.release()

    def _same_origin(self):
        """Answer only requests from this server's own page (or typed in, or from a program): a page of another
        site may still POST here (a 'simple' request needs no permission) and make this machine decode images,
        though it cannot read the answer. Browsers say where a request comes from in Origin and Sec-Fetch-Site."""
        own = f"http://{self.headers.get('Host', '')}"
        origin, site = self.headers.get("Origin"), self.headers.get("Sec-Fetch-Site", "none")
        if (origin is None or origin == own) and site in ("same-origin", "none"):
            return True
        self.close_connection = True
        self._json(403, {"error": f"Origin {shown(origin or '')} (Sec-Fetch-Site {shown(site)}): a request from "
                                  f"another site; this server answers only its own page, {shown(own)}/"})
        return False

    def _local_host(self):
        """Served on a loopback address, answer only requests addressed to it by a local name: a page of another
        site whose name was made to point at 127.0.0.1 (DNS rebinding) sends that name as Host, and is refused."""
        try:
            host = urlsplit("//" + self.headers.get("Host", "")).hostname or ""
        except ValueError:  # e.g. an unclosed "[" of an IPv6 address
            host = ""
        if self.server.loopback and host not in LOCAL_NAMES:
            self.close_connection = True
            self._json(403, {"error": f"Host {shown(self.headers.get('Host', ''))}: not this server's name; "
                                      f"open http://127.0.0.1:{self.server.server_port}/"})
            return False
        return True

    def send_error(self, code, message=None, explain=None):
        """The HTTP server's own refusals (an unsupported method, a malformed request line) as JSON too."""
        self.close_connection = True
        self._json(code, {"error": shown(message or HTTPStatus(code).phrase)})

    def _json(self, status, value, headers=None):
        self._send(status, (json.dumps(value) + "\n").encode("utf-8"), "application/json", headers)

    def _send(self, status, body, content_type, headers=None):
        self.send_response(status)
        for key, value in {"Content-Type": content_type, "Content-Length": str(len(body)),
                           "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", **(headers or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def version_string(self):
        return "catneuron"  # not the Python version: nothing a visitor needs

    def log_message(self, format, *args):
        pass  # quiet: a request line repeats what the client sent, and the page is for one person at a time


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that hung up (or went silent) before its answer is its own business: no traceback."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(source, host="127.0.0.1", port=8000, log=print):
    """Serve the model at source (a run folder or model.npz) until Ctrl-C; port 0 picks a free port."""
    app = App(source)
    try:
        server = Server((host, port), Handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise PipelineError(f"{host}:{port}: port already in use; choose another with --port") from None
        raise PipelineError(f"{host}:{port}: cannot listen there ({e.strerror or e})") from None
    server.app = app
    server.bodies, server.decoders = threading.BoundedSemaphore(MAX_BODIES), threading.BoundedSemaphore(DECODERS)
    server.loopback = host == "localhost" or _is_loopback(host)
    log(f"serving http://{host}:{server.server_port}/ with {source}; Ctrl-C to stop")
    try:
        server.serve_forever()
    except KeyboardInterrupt as e:
        log("stopped")
        if type(e) is not KeyboardInterrupt:
            raise  # SIGTERM (cli.Terminated) ends with 143 as every command does; Ctrl-C is the normal stop
    finally:
        server.server_close()
