"""Independent readers for what channels publish, and small waiting helpers."""
import json
import socket
import subprocess
import time
from pathlib import Path

import psutil


def wait_for(predicate, timeout=15.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def udp_socket(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(10)
    return sock


def capture(sock, seconds, path):
    """Write every datagram received for `seconds` to `path` (an MPEG-TS capture)."""
    end = time.monotonic() + seconds
    with open(path, "wb") as out:
        while time.monotonic() < end:
            try:
                out.write(sock.recv(65536))
            except socket.timeout:
                break
    return Path(path)


def ffprobe(path, *entries):
    """ffprobe's JSON view of a capture: streams (and frames/packets when asked)."""
    args = ["ffprobe", "-v", "error", "-of", "json", "-show_streams", *entries, str(path)]
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def codecs(path):
    return sorted(s["codec_name"] for s in ffprobe(path)["streams"])


def sweep_until(predicate, timeout=15.0, interval=0.25):
    """Run the lease sweep the way beat does (every `interval`) until `predicate(result)`."""
    from streams_app.services import sweep_expired_leases

    seen = []

    def swept():
        result = sweep_expired_leases()
        seen.append(result)
        return predicate(result) and result

    try:
        return wait_for(swept, timeout=timeout, interval=interval, what="the lease sweep")
    except AssertionError:
        raise AssertionError(f"sweeps never matched: {seen[-3:]}") from None


class UdpRecorder:
    """Receives a channel's UDP output in a thread, noting when each datagram arrived."""

    def __init__(self, port):
        import threading

        self.sock = udp_socket(port)
        self.sock.settimeout(0.2)
        self.arrivals, self.datagrams, self.senders = [], [], []
        self.running = True
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self):
        while self.running:
            try:
                data, sender = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            self.arrivals.append(time.monotonic())
            self.datagrams.append(data)
            self.senders.append(sender)

    def max_gap(self, start, end):
        """The longest silence between datagrams (or the window's edges) within [start, end]."""
        times = [start] + [t for t in self.arrivals if start <= t <= end] + [end]
        return max(b - a for a, b in zip(times, times[1:]))

    def publishers(self):
        """{sender address: (first, last) arrival}: each FFmpeg sends from a port of its own."""
        spans = {}
        for at, sender in zip(self.arrivals, self.senders):
            first, _ = spans.get(sender, (at, at))
            spans[sender] = (first, at)
        return spans

    def stop(self):
        self.running = False
        self.thread.join()
        self.sock.close()


class TcpProxy:
    """A loopback TCP proxy to a server; `cut()` drops every connection and refuses new ones
    until `restore()`: the server 'goes away' for whoever connects through the proxy."""

    def __init__(self, target_port):
        import threading

        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open, self.sockets = True, []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.open = False
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass
        self.sockets = []

    def restore(self):
        self.open = True

    def close(self):
        self.cut()
        self.listener.close()


def ffmpeg_processes(folder):
    """Live FFmpeg processes working inside `folder` (their argv names a path in it): how the
    tests and benchmarks prove that nothing outlived its channel."""
    marker = str(folder).rstrip("/") + "/"
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        try:
            if proc.info["name"] == "ffmpeg" and proc.info["status"] != psutil.STATUS_ZOMBIE and \
                    any(marker in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:
            continue
    return found
