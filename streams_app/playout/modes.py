"""What the two modes share: the output stage they spawn and the readers they keep count of."""
import threading

from . import pipes


class Mode:
    """One run's way of reading segments and writing them to its output stage."""

    slate_piece = None  # the longest slate segment it airs from one reader (None: any)
    lead = 0.0  # seconds a unit is written ahead of its time: the output stage's own latency

    def __init__(self, plan):
        self.plan, self.fmt = plan, plan.fmt
        self.live = set()  # readers not yet closed
        self.spent_cpu = 0.0  # CPU seconds of the readers already closed
        self.lock = threading.Lock()
        self.fds = []  # our ends of the output stage's input pipes

    def started(self, reader):
        with self.lock:
            self.live.add(reader)
        return reader

    def closed(self, reader):
        with self.lock:
            if reader in self.live:
                self.live.discard(reader)
                self.spent_cpu += reader.cpu_seconds

    def reader_pids(self):
        with self.lock:
            return [reader.pid for reader in self.live]

    def spawn_output(self, spawn):
        """Start the output stage with `spawn(argv, stdin_pipe, pass_fds)` and keep our end
        of its input; returns what `spawn` returned."""
        raise NotImplementedError

    def flush(self):
        pass

    def close(self):
        """After the output stage is gone: close our ends of its pipes."""
        fds, self.fds = self.fds, []
        pipes.close_quietly(*fds)
