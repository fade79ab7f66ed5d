"""train.engine dask on a real distributed.LocalCluster of 2 worker processes: the local solver's costs and the
same run folder, with learning_rate auto and class weights too; the local engine never imports Dask; a
train.scheduler that is not a Dask scheduler (real servers on 127.0.0.1) is one error line within seconds."""
import contextlib
import csv
import json
import logging
import os
import socketserver
import struct
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline import PipelineError
from pipeline.artifacts import load_model
from pipeline.config import TrainConfig
from pipeline.streaming import streams
from tests.conftest import run_cli, run_python
from tests.test_data import images

NO_DASK = ("import sys; sys.modules['dask'] = sys.modules['distributed'] = None; "  # any import of them fails
           "from pipeline.cli import main; sys.exit(main())")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Course-schema files: 90 training images of 8 x 8 stored in HDF5 chunks of 8 examples, 20 test images."""
    folder = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(4)
    for split, m, chunks in (("train", 90, (8, 8, 8, 3)), ("test", 20, None)):
        with h5py.File(folder / f"{split}_catvnoncat.h5", "w") as f:
            f.create_dataset(f"{split}_set_x", data=images(m, size=8, seed=m), chunks=chunks)
            f.create_dataset(f"{split}_set_y", data=rng.integers(0, 2, m))
            f.create_dataset("list_classes", data=np.array([b"non-cat", b"cat"]))
    return folder


def train(data_dir, run_dir, *sets, runner=run_cli):
    args = ["train", "--quiet", "--set", f"data.dir={data_dir}", "--run-dir", run_dir, "--set", "train.chunk_size=16",
            "--set", "train.num_iterations=20", "--set", "train.print_every=5", "--set", "train.l2=0.5"]
    for s in sets:
        args += ["--set", s]
    return runner(*args)


def costs(run_dir):
    with open(run_dir / "costs.csv") as f:
        return [float(row["cost"]) for row in csv.DictReader(f)]


def test_dask_engine_gives_the_local_costs_and_run_folder(data_dir, tmp_path):
    distributed = pytest.importorskip("distributed")  # the [test] extra installs it: this skip is not a pass
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster:
        on_dask = train(data_dir, tmp_path / "dask", "train.engine=dask",
                        f"train.scheduler={cluster.scheduler_address}")
        assert on_dask.returncode == 0, on_dask.stderr
        prefixes = set(cluster.scheduler.task_prefixes)  # what this cluster ran: reads of the file and the sums
        assert "array" in prefixes and any(p.startswith("sum") for p in prefixes), prefixes
        plain_sums = cluster.scheduler.task_prefixes["sum-partial"].state_counts["memory"]  # partial sums computed
        weighted = ("train.learning_rate=auto", "train.class_weight=balanced")
        auto_dask = train(data_dir, tmp_path / "auto-dask", "train.engine=dask",
                          f"train.scheduler={cluster.scheduler_address}", *weighted)
        assert auto_dask.returncode == 0, auto_dask.stderr
        sums = cluster.scheduler.task_prefixes["sum-partial"].state_counts["memory"] - plain_sums
        assert sums > plain_sums  # the same 20 iterations and more: L's products were summed on the workers
    local = train(data_dir, tmp_path / "local", "train.solver=primal")
    auto_local = train(data_dir, tmp_path / "auto-local", "train.solver=primal", *weighted)
    assert auto_local.returncode == 0 and auto_dask.stdout == auto_local.stdout, auto_local.stderr
    np.testing.assert_allclose(costs(tmp_path / "auto-dask"), costs(tmp_path / "auto-local"), rtol=0, atol=1e-9)
    rates = [json.loads((tmp_path / name / "run.json").read_text())["training"]["learning_rate"]
             for name in ("auto-dask", "auto-local")]
    assert rates[0] == pytest.approx(rates[1], rel=1e-9) and rates[0] != 0.005  # the same L, not the default rate
    assert local.returncode == 0, local.stderr
    assert on_dask.stdout == local.stdout  # the printed costs and accuracies
    np.testing.assert_allclose(costs(tmp_path / "dask"), costs(tmp_path / "local"), rtol=0, atol=1e-9)
    assert len(costs(tmp_path / "dask")) == 4
    np.testing.assert_allclose(load_model(tmp_path / "dask").w, load_model(tmp_path / "local").w, rtol=0, atol=1e-9)
    files = {name: sorted(p.name for p in (tmp_path / name).iterdir()) for name in ("dask", "local")}
    assert files["dask"] == files["local"]


def test_an_empty_scheduler_starts_a_local_cluster(data_dir, tmp_path):
    pytest.importorskip("distributed")
    on_dask = train(data_dir, tmp_path / "dask", "train.engine=dask", "train.dtype=float32")
    local = train(data_dir, tmp_path / "local", "train.solver=primal", "train.dtype=float32")
    assert on_dask.returncode == 0 and local.returncode == 0, on_dask.stderr + local.stderr
    np.testing.assert_allclose(costs(tmp_path / "dask"), costs(tmp_path / "local"), rtol=1e-6)


def test_lbfgs_on_dask_reaches_sklearns_optimum_as_in_memory_and_streamed(data_dir, tmp_path):
    """train.solver lbfgs at l2 0.5 on its own local cluster, in memory and streamed: the objective scikit-learn
    minimises (tests/test_lbfgs.py) to 1e-6 relative, the same weights, and run.json says it converged."""
    pytest.importorskip("distributed")
    from tests.test_lbfgs import objective, sklearn_optimum

    lbfgs = ("train.solver=lbfgs", "train.tol=1e-9", "train.num_iterations=1000")
    runs = {"dask": train(data_dir, tmp_path / "dask", "train.engine=dask", *lbfgs),
            "memory": train(data_dir, tmp_path / "memory", *lbfgs),
            "streamed": train(data_dir, tmp_path / "streamed", "train.streaming=true", *lbfgs)}
    with h5py.File(data_dir / "train_catvnoncat.h5", "r") as f:
        X = f["train_set_x"][()].reshape(90, -1).T / 255  # (n_x, m)
        Y = f["train_set_y"][()].reshape(1, -1)
    w_ref, b_ref = sklearn_optimum(X, Y, 0.5)
    J_ref = objective(w_ref, b_ref, X, Y, 0.5)
    for name, result in runs.items():
        assert result.returncode == 0, result.stderr
        training = json.loads((tmp_path / name / "run.json").read_text())["training"]
        assert training["converged"] is True and training["passes"] >= training["iterations"] > 5
        assert abs(costs(tmp_path / name)[-1] - J_ref) <= 1e-6 * J_ref
        model = load_model(tmp_path / name)
        np.testing.assert_allclose(model.w, w_ref, atol=1e-5)
        assert model.b == pytest.approx(b_ref, abs=1e-5)


def test_dask_engine_without_dask_says_how_to_install_it(data_dir, tmp_path):
    result = train(data_dir, tmp_path / "run", "train.engine=dask",
                   runner=lambda *args: run_python("-c", NO_DASK, *args))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("error: train.engine dask needs Dask: pip install -e '.[dask]' "
                             "(or pip install 'dask[array]' distributed)\n")
    assert not (tmp_path / "run").exists()


def test_local_training_never_imports_dask(data_dir, tmp_path):
    result = train(data_dir, tmp_path / "run", "train.streaming=true",
                   runner=lambda *args: run_python("-c", NO_DASK, *args))  # an import of dask would fail here
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "run.json").is_file()


def test_an_unreachable_scheduler_is_one_error_line(data_dir, tmp_path):
    pytest.importorskip("distributed")
    result = train(data_dir, tmp_path / "run", "train.engine=dask", "train.scheduler=tcp://127.0.0.1:9")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: train.scheduler tcp://127.0.0.1:9: cannot reach the Dask scheduler (")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "run").exists()


def test_dask_engine_refuses_the_gram_solver():
    with pytest.raises(PipelineError,
                       match=r"^train.engine dask runs the primal solver or lbfgs; use train.solver primal, lbfgs or auto$"):
        streams(TrainConfig(engine="dask", solver="gram"), 10, 12)
    assert streams(TrainConfig(engine="dask"), 10, 12) is True  # the workers read the file: none of it held here


def run_briefly(*args):
    """run_cli with a deadline of 15 s: a hang fails the test (its process group killed) instead of stalling
    the suite."""
    return run_cli(*args, timeout=15)


@contextlib.contextmanager
def server(answer):
    """A real TCP server on a free port of 127.0.0.1 that sends `answer` (bytes) to each connection and closes
    it, or with answer None accepts and never writes. Yields its tcp:// address and the list of connections it
    accepted."""
    accepted, done = [], threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            accepted.append(self.client_address)
            if answer is None:
                done.wait()  # silent: the connection stays open until the test ends
            else:
                self.request.sendall(answer)

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as listener:
        threading.Thread(target=listener.serve_forever, args=(0.05,), daemon=True).start()  # quick to shut down
        try:
            yield f"tcp://127.0.0.1:{listener.server_address[1]}", accepted
        finally:
            done.set()
            listener.shutdown()


def test_a_silent_scheduler_is_one_error_line_within_seconds(data_dir, tmp_path):
    pytest.importorskip("distributed")
    with server(None) as (address, accepted):
        result = train(data_dir, tmp_path / "run", "train.engine=dask", f"train.scheduler={address}",
                       runner=run_briefly)  # distributed alone waits for the handshake for ever
    assert accepted  # it did accept: the connect succeeded and the answer never came
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"error: train.scheduler {address}: cannot reach the Dask scheduler "
                             "(no answer within 3 s)\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("scheme", ["ws", "wss", "tls", "ucx", "inproc"])
def test_a_scheme_that_cannot_be_checked_first_is_refused_in_one_line(data_dir, tmp_path, scheme):
    pytest.importorskip("distributed")
    with server(None) as (address, accepted):  # silent: distributed alone would wait for its handshake for ever
        address = address.replace("tcp://", f"{scheme}://")
        result = train(data_dir, tmp_path / "run", "train.engine=dask", f"train.scheduler={address}",
                       runner=run_briefly)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"error: train.scheduler {address}: {scheme}:// is not supported, only tcp:// (a "
                             "scheduler that never answers would hang training with no message: only tcp:// is "
                             "checked first); reach a remote scheduler through an SSH tunnel to a tcp:// address\n")
    assert not (tmp_path / "run").exists()


def listening(pids):
    """The (address, port) of every TCP socket listening in the processes pids, from /proc/net/tcp and tcp6."""
    inodes = set()
    for pid in pids:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.append((address, int(port, 16)))
    return found


def test_a_local_cluster_listens_on_the_loopback_only_and_has_no_dashboard():
    pytest.importorskip("distributed")
    from pipeline.dask_engine import connect
    client = connect("")
    try:
        workers = [w["pid"] if "pid" in w else None for w in client.scheduler_info()["workers"].values()]
        pids = [os.getpid(), *client.run(os.getpid).values(), *(p for p in workers if p)]
        sockets = listening(set(pids))
        http = client.cluster.scheduler.http_server  # started even without a dashboard: its routes
        assert len(sockets) >= 2 + len(workers) and all(address == "0100007F" for address, _ in sockets), sockets
        assert client.cluster.scheduler.services["dashboard"] is http and not any(
            "/status" in str(rule.matcher) for rule in http.request_callback.default_router.rules)  # no dashboard
    finally:
        client.close()
        client.cluster.close()


def test_an_http_server_is_not_a_dask_scheduler(data_dir, tmp_path):
    pytest.importorskip("distributed")
    with server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as (address, accepted):
        result = train(data_dir, tmp_path / "run", "train.engine=dask", f"train.scheduler={address}",
                       runner=run_briefly)  # distributed alone reads b'HTTP/1.1' as a length of 3 EiB
    assert accepted and result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"error: train.scheduler {address}: not a Dask scheduler "
                             "(its answer starts with b'HTTP/1.1')\n")
    assert not (tmp_path / "run").exists()


def framed(*frames):
    """frames as distributed's tcp comm sends them: the byte count, the number of frames and their lengths."""
    body = struct.pack(f"Q{len(frames)}Q", len(frames), *map(len, frames)) + b"".join(frames)
    return struct.pack("Q", len(body)) + body


GIB = struct.pack("Q", 1 << 30)  # a byte count of 1 GiB
NOT_DASK = framed(b"\x81\xa5hello\x01")  # msgpack {"hello": 1}: well framed, not Dask's handshake
TRUNCATED = framed(b"\x81\xafpickle-protocol")  # a msgpack map cut after its first key


@pytest.mark.parametrize("answer, said", [
    (GIB + bytes(64), f"its answer starts with {GIB!r}"),  # only the count is read: nothing allocated
    (NOT_DASK, f"its answer starts with {NOT_DASK[:24]!r}"),
    (TRUNCATED, f"its answer starts with {TRUNCATED[:24]!r}"),
    (b"", "it closed the connection without answering"),
], ids=["1 GiB claimed", "not Dask's msgpack", "truncated msgpack", "no answer"])
def test_only_a_dask_handshake_passes_the_check(answer, said):
    pytest.importorskip("distributed")
    from pipeline import dask_engine
    with server(answer) as (address, accepted):
        with pytest.raises(PipelineError) as refusal:
            dask_engine.check_scheduler(address)
    assert accepted and str(refusal.value) == f"train.scheduler {address}: not a Dask scheduler ({said})"


def test_a_real_scheduler_passes_the_check_and_logs_nothing(caplog):
    distributed = pytest.importorskip("distributed")
    from pipeline.dask_engine import check_scheduler
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=":0") as cluster:
        with caplog.at_level(logging.INFO, logger="distributed"):
            check_scheduler(cluster.scheduler_address)
            distributed.Client(cluster.scheduler_address).close()  # round trips: the check's connection is done
    assert "handshake" not in caplog.text  # it answered the scheduler's handshake: not a half-open connection
    assert "Remove client" in caplog.text  # the log was captured
