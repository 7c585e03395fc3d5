"""Values kept between requests: one computation per key however many ask at once."""

from __future__ import annotations

import threading
import time

from service.web.kept import Identity, Kept


def test_requests_asking_at_once_share_one_computation():
    kept: Kept[int] = Kept()
    calls: list[int] = []
    started = threading.Event()

    def slow() -> int:
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return 42

    answers: list[int] = []
    first = threading.Thread(target=lambda: answers.append(kept.get("k", slow)))
    first.start()
    started.wait(5)
    others = [threading.Thread(target=lambda: answers.append(kept.get("k", slow)))
              for _ in range(5)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(5)
    assert answers == [42] * 6
    assert len(calls) == 1


def test_each_key_is_computed_and_the_limit_drops_old_ones():
    kept: Kept[str] = Kept(limit=2)
    assert kept.get("a", lambda: "A") == "A"
    assert kept.get("a", lambda: "changed") == "A"
    assert kept.get("b", lambda: "B") == "B"
    assert kept.get("c", lambda: "C") == "C"  # full: a and b dropped
    assert kept.get("a", lambda: "A again") == "A again"


def test_identity_keys_match_the_same_object_only():
    one, equal = {"x": 1}, {"x": 1}
    assert Identity(one) == Identity(one) and hash(Identity(one)) == hash(Identity(one))
    assert Identity(one) != Identity(equal)
    kept: Kept[str] = Kept()
    assert kept.get(Identity(one), lambda: "one") == "one"
    assert kept.get(Identity(equal), lambda: "equal") == "equal"
