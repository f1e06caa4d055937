"""Pipes between the engine's processes: large buffers, whole writes and reads."""
import fcntl
import os

F_SETPIPE_SZ = 1031


def enlarge(fd, size):
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)
    except OSError:
        pass  # the system limit is lower: a smaller buffer only means less read-ahead


def big_pipe(size=1 << 20):
    read_fd, write_fd = os.pipe()
    enlarge(write_fd, size)
    return read_fd, write_fd


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exact(fd, nbytes):
    """`nbytes` from a pipe, or None if it ends first (the writer died or ran short)."""
    chunks, wanted = [], nbytes
    while wanted:
        chunk = os.read(fd, wanted)
        if not chunk:
            return None
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


def close_quietly(*fds):
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
