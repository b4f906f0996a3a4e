from claude_e2b.agent.watchdog import Heartbeat, Stop, TimeWarning, Watchdog, WatchdogConfig


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_warnings_in_order_then_stop_at_the_limit():
    """Marks fire once each, in order; the limit stops once; nothing after the stop."""
    clock = Clock()
    dog = Watchdog(WatchdogConfig(hard_limit_s=60, warn_at_s=(50, 30), heartbeat_s=1000), clock)
    assert dog.poll(0) == []
    clock.now += 31
    assert dog.poll(0) == [TimeWarning(30, 60)]
    clock.now += 25
    assert dog.poll(0) == [TimeWarning(50, 60)]
    clock.now += 10
    actions = dog.poll(0)
    assert len(actions) == 1
    assert isinstance(actions[0], Stop)
    assert actions[0].reason == "timeout"
    assert dog.poll(0) == []


def test_skipped_marks_all_fire_at_once():
    """A poll late past several marks reports each of them."""
    clock = Clock()
    dog = Watchdog(WatchdogConfig(hard_limit_s=100, warn_at_s=(10, 20), heartbeat_s=1000), clock)
    clock.now += 25
    assert dog.poll(0) == [TimeWarning(10, 100), TimeWarning(20, 100)]


def test_budget_stop():
    """A running cost over the budget stops the agent with reason budget."""
    clock = Clock()
    dog = Watchdog(WatchdogConfig(hard_limit_s=100, budget_usd=1.0, heartbeat_s=1000), clock)
    assert dog.poll(1.0) == []
    [stop] = dog.poll(1.01)
    assert isinstance(stop, Stop)
    assert (stop.reason, stop.cost_usd) == ("budget", 1.01)
    assert "budget" in stop.message()


def test_heartbeat_every_interval():
    """A heartbeat comes once per interval, not once per poll."""
    clock = Clock()
    dog = Watchdog(WatchdogConfig(hard_limit_s=1000, heartbeat_s=60), clock)
    clock.now += 61
    assert dog.poll(0) == [Heartbeat(61)]
    clock.now += 1
    assert dog.poll(0) == []
    clock.now += 60
    assert [type(a) for a in dog.poll(0)] == [Heartbeat]


def test_warning_message_says_what_happens():
    """The warning tells how much time is left and that work is kept."""
    text = TimeWarning(30 * 60, 60 * 60).message()
    assert "30.0 min" in text
    assert "kept" in text


def test_cancel_is_a_stop_given_once():
    """A cancel stops with reason "cancelled"; after it the watchdog says nothing more."""
    clock = Clock()
    dog = Watchdog(WatchdogConfig(hard_limit_s=60, heartbeat_s=1000), clock)
    clock.now += 12
    stop = dog.cancel(0.25)
    assert (stop.reason, stop.elapsed_s, stop.cost_usd) == ("cancelled", 12, 0.25)
    assert "cancelled after 12 s" in stop.message()
    assert stop.message() == "the run was cancelled after 12 s of the agent's work"
    clock.now += 100
    assert dog.poll(1.0) == []
    assert dog.cancel(9.9) is stop


def test_cancel_after_a_stop_keeps_the_first_reason():
    """A cancel that comes after the time limit stopped the agent changes nothing."""
    clock = Clock()
    dog = Watchdog(WatchdogConfig(hard_limit_s=10, heartbeat_s=1000), clock)
    clock.now += 11
    (stop,) = dog.poll(0)
    assert dog.cancel(0) is stop
    assert stop.reason == "timeout"
