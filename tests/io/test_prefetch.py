"""Background-thread prefetching: order, errors, early stop."""

import threading

import pytest

from m3ddm.io.prefetch import prefetch


def test_items_in_order_and_produced_ahead():
    produced = []
    ahead = threading.Event()

    def source():
        for i in range(20):
            produced.append(i)
            if i == 3:
                ahead.set()  # the producer got this far while the consumer still holds item 0
            yield i

    out = []
    for item in prefetch(source(), depth=4):
        if item == 0:
            assert ahead.wait(timeout=60)
            # 0 is out, up to `depth` more wait in the queue and one more may be blocked on a full queue
            assert 4 <= len(produced) <= 6
        out.append(item)
    assert out == list(range(20))


def test_producer_error_reaches_the_consumer():
    def broken():
        yield 1
        raise OSError("disk gone")

    it = prefetch(broken())
    assert next(it) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(it)


def test_consumer_stopping_early_stops_the_producer():
    cleaned = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            cleaned.set()

    it = prefetch(endless(), depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert cleaned.wait(5)
    assert not any(t.name == "m3ddm-prefetch" and t.is_alive() for t in threading.enumerate())


def test_depth_must_be_positive():
    with pytest.raises(ValueError):
        next(prefetch([1], depth=0))
