"""The watchdog's lag measure on a real event loop, stalled on purpose."""

import asyncio
import time

from bridge.server.watchdog import LoopWatchdog


async def test_every_stall_of_40_ms_is_measured_as_one_over_25_ms():
    lags: list[float] = []
    watchdog = LoopWatchdog(threshold_s=1.0, on_lag=lags.append)
    watchdog.start()
    for _ in range(10):
        await asyncio.sleep(0.073)  # not in step with the tick: stalls start anywhere in it
        time.sleep(0.04)  # blocks the loop, as CPU-bound code in a hook would
    await asyncio.sleep(0.05)
    await watchdog.stop()
    # with a 50 ms tick (as before) most of them were missed: a stall shows only if it covers a tick
    assert sum(lag > 0.025 for lag in lags) >= 10
    assert watchdog.blocked == []  # none reached the 1 s threshold


async def test_a_long_stall_is_reported_whole_once_the_loop_runs_again(caplog):
    watchdog = LoopWatchdog(threshold_s=0.1)
    watchdog.start()
    await asyncio.sleep(0.05)
    time.sleep(1.0)  # far past the threshold: named after ~0.1 s, measured when it ends
    await asyncio.sleep(0.2)
    await watchdog.stop()
    assert len(watchdog.blocked) == 1
    (stall,) = watchdog.stalls_s
    assert 1.0 <= stall < 1.5
    ends = [r.getMessage() for r in caplog.records if "ran again after" in r.getMessage()]
    assert ends == [
        f"the event loop ran again after {stall * 1000:.0f} ms blocked by {watchdog.blocked[0]}"
    ]
