"""`smartcity up`'s decisions, with the clock in the test's hand: backoff, hang detection,
the degraded state and recovery from it, and a stop that restarts nothing."""

from __future__ import annotations

from launcher.supervision import Kill, Policy, Start, State, Supervision

POLICY = Policy(backoff_first_s=1, backoff_max_s=30, stable_after_s=60, degraded_after=5,
                hang_after_s=30)


def running(*names: str, now: float = 0.0) -> Supervision:
    s = Supervision(POLICY)
    for name in names:
        s.add(name, now)
        assert s.due(now) == [Start(name, 0)]
        s.started(name, now)
    return s


def test_backoff_doubles_from_one_second_to_thirty() -> None:
    assert [POLICY.backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_an_exited_child_is_restarted_after_its_backoff_and_counted() -> None:
    s = running("ingest")
    child = s.exited("ingest", "killed by SIGKILL", now=10)
    assert child.state is State.WAITING and child.last_exit == "killed by SIGKILL"
    assert s.due(10.5) == []
    assert s.due(11.0) == [Start("ingest", 1)]
    s.started("ingest", 11.0)
    assert s.children["ingest"].restarts == 1
    # Again soon after: the backoff doubles.
    s.exited("ingest", "exited with code 1", now=12)
    assert s.due(13.9) == [] and s.due(14.0) == [Start("ingest", 2)]


def test_a_child_silent_past_hang_after_is_killed_once_then_restarted() -> None:
    s = running("api")
    s.alive("api", 5.0)
    assert s.due(35.0) == []  # silent for exactly 30 s: not yet
    assert s.due(35.5) == [Kill("api", "no sign of life for 30s")]
    assert s.due(40.0) == []  # killed once; its exit is awaited
    child = s.exited("api", "killed by SIGKILL", now=40.0)
    assert "hung" in (child.last_exit or "")
    assert s.due(41.0) == [Start("api", 1)]


def test_a_freshly_started_child_has_hang_after_to_show_life() -> None:
    s = running("rules", now=100.0)
    assert s.due(129.0) == []
    s.alive("rules", 50.0)  # a heartbeat from before the start does not count
    assert s.due(131.0) == [Kill("rules", "no sign of life for 31s")]


def test_a_child_without_a_probe_is_never_judged_hung() -> None:
    s = Supervision(POLICY)
    s.add("simulators", 0.0, watched=False)
    s.due(0.0)
    s.started("simulators", 0.0)
    assert s.due(1000.0) == []


def test_repeated_failures_degrade_the_city_without_stopping_it_then_it_recovers() -> None:
    s = running("influxd", "ingest")
    now = 0.0
    for n in range(1, 6):
        now += 1
        s.exited("influxd", "exited with code 1", now)
        now = s.children["influxd"].next_start
        s.alive("ingest", now)
        assert s.due(now) == [Start("influxd", n)]
        s.started("influxd", now)
    assert s.degraded() == ["influxd"]
    assert s.children["ingest"].state is State.RUNNING  # the rest of the city runs on
    # Still retried, at the longest backoff.
    s.exited("influxd", "exited with code 1", now + 1)
    assert s.children["influxd"].state is State.DEGRADED
    assert s.children["influxd"].next_start == now + 1 + 30
    restart = now + 31
    s.alive("ingest", restart)
    assert s.due(restart) == [Start("influxd", 6)]
    s.started("influxd", restart)
    s.alive("ingest", restart + 61)
    s.alive("influxd", restart + 61)
    assert s.due(restart + 61) == []  # ran a minute without failing: whole again
    assert s.degraded() == []
    s.exited("influxd", "exited with code 1", restart + 62)
    assert s.children["influxd"].next_start == restart + 63  # backoff from the start


def test_a_failed_start_counts_as_a_failure() -> None:
    s = running("mosquitto")
    s.exited("mosquitto", "killed by SIGKILL", 1.0)
    assert s.due(2.0) == [Start("mosquitto", 1)]
    child = s.start_failed("mosquitto", "could not start: port taken", 2.0)
    assert child.failures == 2 and child.next_start == 4.0


def test_nothing_is_restarted_once_the_city_stops() -> None:
    s = running("ingest", "api")
    s.stop()
    s.exited("ingest", "exited with code 0", 5.0)
    assert s.due(100.0) == []
    assert {c["state"] for c in s.summary().values()} == {"stopped"}
