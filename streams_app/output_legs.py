"""The output stage's legs (its tee's outputs: UDP, then HLS) and how a lost one comes back.

With `onfail=ignore` a leg whose writes fail (a UDP route gone, a disk that refused a write) is
dropped by FFmpeg while the others go on: the channel keeps airing on what still works, and says
so once on stderr. A dropped leg never comes back in that process, so the supervisor restarts the
output stage once the leg could work again, which these probes tell without sending anything.
"""
import os
import re
import socket

from .playout.argv import TEE_LEGS

LEG_FAILED = re.compile(r"Slave muxer #(\d+) failed: (.*?), continuing with")


def failed_leg(line):
    """(leg, FFmpeg's reason) if this stderr line says the tee dropped a leg, else None."""
    found = LEG_FAILED.search(line)
    if not found or int(found[1]) >= len(TEE_LEGS):
        return None
    return TEE_LEGS[int(found[1])], found[2]


def udp_route_back(address, port):
    """Whether the kernel has a route to the UDP output again: connecting a UDP socket looks the
    route up and sends nothing."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((address, port))
        except OSError:  # ENETUNREACH, EHOSTUNREACH, ...
            return False
    return True


def hls_writable(folder):
    """Whether the HLS folder takes a segment's worth of bytes again (a full disk refuses)."""
    probe = folder / ".write-probe"
    try:
        with open(probe, "wb") as file:
            file.write(b"\0" * 256 * 1024)
            file.flush()
            os.fsync(file.fileno())
        return True
    except OSError:
        return False
    finally:
        probe.unlink(missing_ok=True)


def leg_can_resume(leg, plan):
    if leg == "UDP":
        network = plan.sections["network_settings"]
        return udp_route_back(network["multicast_address"], int(network["port"]))
    return hls_writable(plan.hls_dir)
