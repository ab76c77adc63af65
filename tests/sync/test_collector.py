"""The cyclic garbage collector is paused during a sync and always comes back."""

from __future__ import annotations

import gc
import threading

import pytest

from directories.sync.collector import collector_paused


def test_the_collector_is_paused_inside_and_enabled_after() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_it_comes_back_after_an_error() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_overlapping_syncs_enable_it_only_when_the_last_one_ends() -> None:
    first_inside, release_first = threading.Event(), threading.Event()

    def first_sync() -> None:
        with collector_paused():
            first_inside.set()
            release_first.wait(5)

    thread = threading.Thread(target=first_sync)
    thread.start()
    first_inside.wait(5)
    with collector_paused():
        pass
    assert not gc.isenabled()  # the first sync is still running
    release_first.set()
    thread.join()
    assert gc.isenabled()


def test_a_process_that_disabled_it_itself_keeps_it_disabled() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
