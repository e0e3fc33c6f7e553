"""The throttle of failed dashboard logins: back-off per name and per address, refusals
that do not count, reset on success, forgetting, and bounded memory."""

from __future__ import annotations

import threading

import pytest

from dashboard.login_throttle import LoginThrottle


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


FREE, BASE, MAX = 3, 2.0, 30.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gate(clock: Clock) -> LoginThrottle:
    return LoginThrottle(
        free_failures=FREE, base_delay_s=BASE, max_delay_s=MAX, forget_after_s=600, clock=clock
    )


def _fail(gate: LoginThrottle, times: int, name: str = "alice", address: str = "1.2.3.4") -> None:
    for _ in range(times):
        assert gate.attempt(name, address).allowed


def test_free_failures_then_doubling_locks_up_to_the_cap(gate: LoginThrottle, clock: Clock) -> None:
    _fail(gate, FREE)
    assert gate.attempt("alice", "1.2.3.4").allowed  # the last free one: checked, failed
    delays = []
    for _ in range(6):
        verdict = gate.attempt("alice", "1.2.3.4")
        assert not verdict.allowed
        delays.append(verdict.retry_after_s)
        clock.now += verdict.retry_after_s  # wait the lock out, then fail again
        assert gate.attempt("alice", "1.2.3.4").allowed
    assert delays == [BASE, 2 * BASE, 4 * BASE, 8 * BASE, MAX, MAX]


def test_refused_attempts_do_not_count_or_extend_the_lock(
    gate: LoginThrottle, clock: Clock
) -> None:
    _fail(gate, FREE + 1)
    first = gate.attempt("alice", "1.2.3.4")
    clock.now += 0.5
    again = gate.attempt("alice", "1.2.3.4")
    assert not again.allowed and again.retry_after_s == pytest.approx(first.retry_after_s - 0.5)
    assert gate.failures("alice", "1.2.3.4") == (FREE + 1, FREE + 1)


def test_the_name_is_throttled_from_any_address(gate: LoginThrottle) -> None:
    for n in range(FREE + 1):
        assert gate.attempt("alice", f"10.0.0.{n}").allowed
    verdict = gate.attempt("Alice ", "10.0.0.99")  # a new address, the name as typed
    assert not verdict.allowed and verdict.locked == "name"
    assert gate.attempt("bob", "10.0.0.99").allowed  # another name from that address


def test_the_address_is_throttled_for_any_name(gate: LoginThrottle) -> None:
    for n in range(FREE + 1):
        assert gate.attempt(f"user{n}", "6.6.6.6").allowed
    verdict = gate.attempt("alice", "6.6.6.6")
    assert not verdict.allowed and verdict.locked == "address"
    assert gate.attempt("alice", "7.7.7.7").allowed
    assert gate.attempt("alice", None).allowed  # unknown address: its own key


def test_success_clears_both_keys(gate: LoginThrottle) -> None:
    _fail(gate, FREE)
    gate.succeeded("alice", "1.2.3.4")
    assert gate.failures("alice", "1.2.3.4") == (0, 0)
    _fail(gate, FREE + 1)  # a full free budget again
    assert not gate.attempt("alice", "1.2.3.4").allowed


def test_quiet_keys_are_forgotten_but_not_while_locked(clock: Clock) -> None:
    gate = LoginThrottle(
        free_failures=FREE, base_delay_s=BASE, max_delay_s=MAX, forget_after_s=10, clock=clock
    )
    _fail(gate, FREE + 1)
    for _ in range(6):  # fail each time the lock lapses, until it is MAX long
        clock.now += gate.attempt("alice", "1.2.3.4").retry_after_s
        _fail(gate, 1)
    clock.now += 20  # quiet for longer than forget_after_s, but within the lock
    assert not gate.attempt("alice", "1.2.3.4").allowed
    clock.now += MAX  # the lock lapsed, and nothing failed since
    assert gate.failures("alice", "1.2.3.4") == (0, 0)
    _fail(gate, FREE + 1)


def test_memory_is_bounded_against_sprayed_names(clock: Clock) -> None:
    gate = LoginThrottle(free_failures=FREE, max_keys=50, clock=clock)
    for n in range(1_000):
        clock.now += 0.001
        gate.attempt(f"guess{n}", f"10.1.{n // 256}.{n % 256}")
    assert len(gate._records) <= 50


def test_parallel_attempts_cannot_share_one_check(clock: Clock) -> None:
    gate = LoginThrottle(free_failures=FREE, clock=clock)
    allowed: list[bool] = []
    barrier = threading.Barrier(20)

    def guess() -> None:
        barrier.wait()
        allowed.append(gate.attempt("alice", "1.2.3.4").allowed)

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == FREE + 1  # the free ones and the one that locks


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        LoginThrottle(base_delay_s=0)
    with pytest.raises(ValueError):
        LoginThrottle(base_delay_s=10, max_delay_s=5)
