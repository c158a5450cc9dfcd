"""The public pages' rate limit: a moving window per client address (services/backpack/web.py)."""

from __future__ import annotations

from services.backpack.web import MovingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_at_most_the_amount_within_any_window_and_refusals_do_not_count() -> None:
    clock = Clock()
    window = MovingWindow(3, 60, clock)
    for second in (0, 10, 20):
        clock.now = 1000 + second
        assert window.hit("198.51.100.7")
    clock.now = 1059.9
    assert not window.hit("198.51.100.7")  # three hits in the last 60 s
    assert window.hit("203.0.113.9")  # another address has its own count
    clock.now = 1060.1  # the first hit left the window: one more, and only one
    assert window.hit("198.51.100.7")
    assert not window.hit("198.51.100.7")
    clock.now = 1070.1  # the refused hits did not count: the one at 10 s has left as well
    assert window.hit("198.51.100.7")


def test_a_high_limit_keeps_only_what_it_needs_and_idle_addresses_are_forgotten() -> None:
    clock = Clock()
    window = MovingWindow(1_000_000, 60, clock)
    for n in range(5000):
        clock.now = 1000 + n / 1000
        assert window.hit(f"10.0.{n % 50}.1")
    clock.now = 1200  # past a sweep: nobody hit for more than a window
    assert window.hit("192.0.2.1")
    assert list(window._hits) == ["192.0.2.1"]
