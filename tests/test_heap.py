"""The mmap threshold fixed before a fit on the CPU: once, on glibc, never over the user's own setting."""

import sys

import pytest

from sktextae import heap


@pytest.fixture
def calls(monkeypatch):
    """The calls heap makes to mallopt, with the once-per-process state reset."""
    made = []

    def mallopt(parameter, value):
        made.append((parameter, value))
        return 1

    monkeypatch.setattr(heap, "_state", {"set": False})
    monkeypatch.setattr(heap, "_mallopt", lambda: mallopt)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    return made


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_the_threshold_is_fixed_once_per_process(calls):
    assert heap.limit_fragmentation() is True
    assert heap.limit_fragmentation() is True
    assert calls == [(-3, 1 << 20)]  # M_MMAP_THRESHOLD, 1 MiB


def test_the_users_own_setting_is_left_alone(calls, monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert heap.limit_fragmentation() is False
    assert calls == []


def test_a_c_library_without_mallopt_changes_nothing(calls, monkeypatch):
    monkeypatch.setattr(heap, "_mallopt", lambda: None)
    assert heap.limit_fragmentation() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_the_real_mallopt_accepts_it():
    assert heap._mallopt() is not None
    assert heap.limit_fragmentation() is True  # this test process: a fixed threshold harms nothing here


def test_a_fit_on_the_cpu_sets_it(monkeypatch, tiny, texts):
    asked = []
    monkeypatch.setattr(heap, "limit_fragmentation", lambda: asked.append(True))
    tiny(max_epochs=1, device="cpu").fit(texts)
    assert asked == [True]
