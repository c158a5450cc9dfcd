"""The public pages' rate limit: a moving window per client address (services/backpack/web.py)."""

from __future__ import annotations

from services.backpack.web import MovingWindow, client_key


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


def test_a_flood_of_new_addresses_keeps_at_most_the_cap_and_an_old_key_starts_again() -> None:
    clock = Clock()
    window = MovingWindow(2, 60, clock, max_keys=100)
    assert window.hit("198.51.100.7") and window.hit("198.51.100.7")
    assert not window.hit("198.51.100.7")
    for n in range(1000):  # within one window: no sweep forgets them
        assert window.hit(f"10.0.{n // 250}.{n % 250}")
    assert len(window._hits) == 100
    assert window.hit("198.51.100.7")  # dropped for the newer keys: its count started again


def test_ipv6_clients_are_counted_by_their_64_network() -> None:
    clock = Clock()
    window = MovingWindow(2, 60, clock)
    assert window.hit(client_key("2001:db8:1:2::1")) and window.hit(client_key("2001:db8:1:2:ffff::9"))
    assert not window.hit(client_key("2001:db8:1:2:abcd::42"))  # the same /64, another address
    assert window.hit(client_key("2001:db8:1:3::1"))  # the next /64 is another client
    assert client_key("::ffff:198.51.100.7") == client_key("198.51.100.7") == "198.51.100.7"
    assert client_key("testclient") == "testclient"
