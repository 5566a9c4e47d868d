"""Was the machine quiet while we timed? A benchmark that shares its cores with another job
can be off by an order of magnitude (a teacher measured 444 ms at batch 1 beside a training
job, 8 ms alone), so every report records how busy the machine was and says so when it was.

Linux: CPU time of every process from /proc/stat minus this process's own (and its
children's) from getrusage; elsewhere only the load average is recorded.
"""
from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field

BUSY_CORES = 0.25  # other processes using more than a quarter of a core on average: contended


def _busy_seconds() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # minus idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


@dataclass
class MachineLoad:
    seconds: float = 0.0
    other_processes_cores: float | None = None  # average cores' worth of CPU time used by other processes
    load_average_start: list[float] | None = None
    load_average_end: list[float] | None = None
    contended: bool = False
    warning: str | None = None
    _start: tuple = field(default=(), repr=False)

    @classmethod
    def start(cls) -> "MachineLoad":
        load = cls(load_average_start=_load())
        load._start = (time.perf_counter(), _busy_seconds(), _own_seconds())
        return load

    def stop(self) -> "MachineLoad":
        t0, busy0, own0 = self._start
        self.seconds = round(time.perf_counter() - t0, 2)
        busy1, own1 = _busy_seconds(), _own_seconds()
        self.load_average_end = _load()
        if busy0 is not None and busy1 is not None and self.seconds > 0:
            other = max(0.0, (busy1 - busy0) - (own1 - own0))
            self.other_processes_cores = round(other / self.seconds, 3)
            self.contended = self.other_processes_cores > BUSY_CORES
        if self.contended:
            self.warning = (f"other processes used {self.other_processes_cores:.2f} cores on average while this ran: "
                            "the latencies are not to be trusted; measure again on a quiet machine")
        return self

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}
