"""Run a producer (video decoding, canvas building, VAE decoding) on a background thread, a few items ahead.

PyAV, OpenCV and torch release the GIL in their heavy calls, so reading and preparing the next frames overlaps
the model's work on the current ones. Items come out in order; an exception in the producer is raised in the
consumer; a consumer that stops early (``close()``, garbage collection, an exception) stops the producer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Yield ``items`` while a daemon thread produces up to ``depth`` of them ahead."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                buffer.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failure(error))
        finally:
            close = getattr(items, "close", None)
            if stop.is_set() and close is not None:
                close()  # a generator left early: run its cleanup on the thread that ran it

    worker = threading.Thread(target=produce, name="m3ddm-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
