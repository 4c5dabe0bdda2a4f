"""Admission control for the WeChat callback: above capacity, answer "success" in time and reply later.

WeChat waits 5 s for an answer, then drops the connection and sends the message again (three tries). Under
more load than a process can answer, requests queue before the handler even starts (the event loop is busy
parsing and decrypting the ones before them, and the pipeline's threads take the CPU), so a deadline timed
from the handler's start is already lost: measured at 500 callbacks/s on 2 SQLite workers, 863 of 2,000
passive replies came after 5 s and none went out through the customer-service API.

So each callback is judged on arrival, from what this process can see:
- `inline`: the normal path (wait for the pipeline up to the deadline, less the event loop's current lag);
- `defer`: the event loop lags, or the pipeline's queue is long — at least `defer_queue` runs, and the wait
  it predicts (runs queued × the measured time between two completions while busy, plus the lag) reaches
  `defer_wait`: acknowledge "success" now, and the same pipeline runs in its turn and sends the replies
  through the customer-service API (the labourer gets the answer late, never not at all). The ack costs
  only the signature check, so the loop keeps up. A queue the pipeline drains in time stays inline
  (measured at 250 callbacks/s on 2 SQLite workers: a plain 64-run threshold deferred 759 of 1,000
  messages that inline answered all in time; benchmarks/overload.py);
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
    def __init__(self, *, defer_queue: int, max_queue: int, defer_lag: float, defer_wait: float = 3.0) -> None:
        self.defer_queue, self.max_queue, self.defer_lag, self.defer_wait = defer_queue, max_queue, defer_lag, defer_wait
        self.queued = 0  # pipeline runs submitted and not finished, in this process
        self.lag = 0.0  # seconds the event loop is behind (sampled, decays when it catches up)
        # Seconds between two completions while the pipeline was busy throughout (1 / its throughput, all its
        # threads together); None until measured, and then a long queue is taken as too long.
        self.interval: float | None = None
        self._busy_since: float | None = None  # the last completion, when runs were still queued after it
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Admission:
        # The handler waits up to the reply deadline (4 s): defer what would wait most of it in the queue.
        return cls(defer_queue=settings.wechat_queue_defer, max_queue=settings.wechat_queue_max,
                   defer_lag=settings.wechat_loop_lag_defer_seconds,
                   defer_wait=max(0.0, settings.wechat_reply_deadline_seconds - 1.0))

    def predicted_wait(self) -> float | None:
        """How long a run submitted now would wait for the ones before it, from the measured throughput."""
        interval = self.interval
        return None if interval is None else self.queued * interval

    def verdict(self) -> str:
        queued = self.queued
        if queued >= self.max_queue:
            return SHED
        if self.lag >= self.defer_lag:
            return DEFER
        if queued >= self.defer_queue:
            wait = self.predicted_wait()
            if wait is None or wait + self.lag >= self.defer_wait:
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
                self._done()

        return run

    def _done(self) -> None:
        now = time.perf_counter()
        with self._lock:
            self.queued -= 1
            if self._busy_since is not None:  # busy since the last completion: a sample of the throughput
                sample = now - self._busy_since
                self.interval = sample if self.interval is None else self.interval * 0.9 + sample * 0.1
            self._busy_since = now if self.queued > 0 else None

    async def watch_loop(self) -> None:
        """Sample the event loop's lag: how late a short sleep wakes up is how long a new request waits."""
        while True:
            expected = time.perf_counter() + LAG_PERIOD
            await asyncio.sleep(LAG_PERIOD)
            late = max(0.0, time.perf_counter() - expected)
            self.lag = late if late > self.lag else self.lag * 0.7 + late * 0.3
