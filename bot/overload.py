"""Admission control for the WeChat callback: above capacity, answer "success" in time and reply later.

WeChat waits 5 s for an answer, then drops the connection and sends the message again (three tries). Under
more load than a process can answer, requests queue before the handler even starts (the event loop is busy
parsing and decrypting the ones before them, and the pipeline's threads take the CPU), so a deadline timed
from the handler's start is already lost: measured at 500 callbacks/s on 2 SQLite workers, 863 of 2,000
passive replies came after 5 s and none went out through the customer-service API.

So each callback is judged on arrival, from what this process can see:
- `inline`: the normal path (wait for the pipeline up to the deadline, less the event loop's current lag);
- `defer`: the pipeline's queue is long, or the event loop lags: acknowledge "success" now, and the same
  pipeline runs in its turn and sends the replies through the customer-service API (the labourer gets the
  answer late, never not at all). The ack costs only the signature check, so the loop keeps up;
- `shed`: the queue is at its cap: answer 503 before anything is read or stored, so WeChat's own retry
  brings the message back later (nothing is lost, nothing waits without bound in memory).

A deferred message is held in memory until its turn (a killed process loses what it had queued: the cap
bounds how much); `gongyou_wechat_admission_total{verdict}` counts the verdicts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.settings import Settings

INLINE, DEFER, SHED = "inline", "defer", "shed"
LAG_PERIOD = 0.05  # how often the event loop's lag is sampled


class Admission:
    def __init__(self, *, defer_queue: int, max_queue: int, defer_lag: float) -> None:
        self.defer_queue, self.max_queue, self.defer_lag = defer_queue, max_queue, defer_lag
        self.queued = 0  # pipeline runs submitted and not finished, in this process
        self.lag = 0.0  # seconds the event loop is behind (sampled, decays when it catches up)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        return cls(defer_queue=settings.wechat_queue_defer, max_queue=settings.wechat_queue_max,
                   defer_lag=settings.wechat_loop_lag_defer_seconds)

    def verdict(self) -> str:
        queued = self.queued
        if queued >= self.max_queue:
            return SHED
        if queued >= self.defer_queue or self.lag >= self.defer_lag:
            return DEFER
        return INLINE

    def track(self, work: Callable[..., Any]) -> Callable[..., Any]:
        """`work` counted in the queue from now until it has run."""
        with self._lock:
            self.queued += 1

        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return work(*args, **kwargs)
            finally:
                with self._lock:
                    self.queued -= 1

        return run

    async def watch_loop(self) -> None:
        """Sample the event loop's lag: how late a short sleep wakes up is how long a new request waits."""
        while True:
            expected = time.perf_counter() + LAG_PERIOD
            await asyncio.sleep(LAG_PERIOD)
            late = max(0.0, time.perf_counter() - expected)
            self.lag = late if late > self.lag else self.lag * 0.7 + late * 0.3
