"""Worker processes that always end, for prepare's decoding and sweep's runs.

multiprocessing.Pool shares one task queue and one result queue between its workers, each behind a lock: a
worker killed while it holds one (SIGTERM to the process group) leaves the parent waiting forever in
terminate(). Here each worker has its own pipe to the parent, so the parent never waits on anything a worker
holds. Workers ignore SIGINT and SIGTERM: the parent alone handles a signal, stops feeding work, closes the
pipes (an idle worker then ends at once) and kills with SIGKILL any worker still busy after GRACE_S.
"""
import multiprocessing
import os
import pickle
import signal
import time
from multiprocessing.connection import wait

from pipeline import PipelineError
from pipeline.files import signals_held

GRACE_S = 1.0  # seconds a worker has to end by itself once its pipe is closed


class Workers:
    """n worker processes; use as a context manager so that they end however the block ends."""

    def __init__(self, n, initializer=None, initargs=(), context=None):
        self.context = context or multiprocessing.get_context()
        fork = self.context.get_start_method() == "fork"
        self.procs, self.conns = [], []
        try:
            with signals_held():  # a worker starts with them blocked, and unblocks them once it ignores them
                for _ in range(n):
                    mine, theirs = self.context.Pipe()
                    # a forked worker closes its copies of the parent's ends, or no worker would ever see EOF
                    inherited = (mine, *self.conns) if fork else ()
                    proc = self.context.Process(target=_serve, args=(theirs, inherited, initializer, initargs))
                    proc.start()
                    theirs.close()
                    self.procs.append(proc)
                    self.conns.append(mine)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def imap(self, func, items, chunksize=1, ordered=True):
        """func(item) for each of the list items, computed by the workers chunksize items at a time; yielded in
        the order of items, or as they finish when ordered is False. An exception in func is raised here."""
        chunks = iter(enumerate(items[i:i + chunksize] for i in range(0, len(items), chunksize)))
        busy = dict.fromkeys(self.conns, 0)  # chunks sent to each worker and not yet answered
        waiting, first = {}, 0  # ordered: finished chunks by index, and the index to yield next

        def feed(conn):
            chunk = next(chunks, None)
            if chunk is not None:
                conn.send((func, *chunk))
                busy[conn] += 1

        for conn in self.conns * 2:  # two chunks each: a worker has its next one while its answer travels
            feed(conn)
        while any(busy.values()):
            for conn in wait([c for c, n in busy.items() if n]):
                try:
                    index, ok, result = conn.recv()
                except (EOFError, OSError):
                    raise PipelineError("a worker process ended unexpectedly (killed, or out of memory?)") from None
                busy[conn] -= 1
                if not ok:
                    raise result
                feed(conn)
                if not ordered:
                    yield from result
                    continue
                waiting[index] = result
                while first in waiting:
                    yield from waiting.pop(first)
                    first += 1

    def close(self):
        """End every worker: close its pipe, wait GRACE_S at most, then SIGKILL; never waits on a worker's lock."""
        with signals_held():  # a second Ctrl-C must not leave workers behind
            for conn in self.conns:
                conn.close()
            deadline = time.monotonic() + GRACE_S
            for proc in self.procs:
                proc.join(max(0.0, deadline - time.monotonic()))
                if proc.exitcode is None:
                    proc.kill()
                    proc.join()
            self.procs, self.conns = [], []


def _serve(conn, inherited, initializer, initargs):
    """A worker: run (func, index, chunk) messages until the pipe closes, then end without a word."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    for other in inherited:
        other.close()
    try:
        if initializer:
            initializer(*initargs)
        while True:
            func, index, chunk = conn.recv()
            try:
                answer = index, True, [func(item) for item in chunk]
            except Exception as e:  # raised again in the parent
                answer = index, False, e
            try:
                conn.send(answer)
            except (pickle.PicklingError, TypeError, AttributeError) as e:  # an exception that cannot be pickled
                conn.send((index, False, RuntimeError(f"{answer[2]!r} (and it cannot be sent: {e})")))
    except BaseException:  # EOF: the parent closed the pipe (it is stopping) or ended; say nothing
        pass
    os._exit(0)  # no atexit handlers or stream flushes inherited from the parent
