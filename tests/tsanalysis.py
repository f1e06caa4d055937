"""An independent MPEG-TS reader for captures: continuity counters, PCR, arrival gaps.

Written from ISO/IEC 13818-1, sharing no code with what produced the stream, so the tests and
benchmarks judge the output rather than the producer's own view of it.
"""
from dataclasses import dataclass, field

PACKET = 188
SYNC = 0x47
NULL_PID = 0x1FFF


@dataclass
class Report:
    packets: int = 0
    cc_errors: int = 0  # unflagged continuity-counter jumps
    pcr_backwards: int = 0
    pcr_jumps: int = 0  # PCR advancing more than `max_pcr_step` (the spec allows 0.1 s) between PCRs
    announced: int = 0  # time-base changes flagged by a discontinuity indicator (a restarted output)
    pcr_values: list = field(default_factory=list)


def _pcr(packet):
    """The PCR in seconds if this packet's adaptation field carries one."""
    if not packet[3] & 0x20 or packet[4] < 7 or not packet[5] & 0x10:
        return None
    b = packet[6:12]
    base = (b[0] << 25) | (b[1] << 17) | (b[2] << 9) | (b[3] << 1) | (b[4] >> 7)
    extension = ((b[4] & 1) << 8) | b[5]
    return (base * 300 + extension) / 27_000_000


def analyze(data, max_pcr_step=0.2):
    """Check every packet of a capture (bytes of whole 188-byte packets)."""
    report, last_cc = Report(), {}
    pcr_pid, announced = None, False
    for offset in range(0, len(data) - PACKET + 1, PACKET):
        packet = data[offset:offset + PACKET]
        if packet[0] != SYNC:
            raise ValueError(f"lost sync at byte {offset}")
        report.packets += 1
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        if pid == NULL_PID:
            continue
        has_payload = bool(packet[3] & 0x10)
        discontinuity = bool(packet[3] & 0x20) and packet[4] > 0 and bool(packet[5] & 0x80)
        cc = packet[3] & 0x0F
        if pid in last_cc and has_payload and not discontinuity and cc != (last_cc[pid] + 1) % 16:
            report.cc_errors += 1
        if has_payload:
            last_cc[pid] = cc
        if discontinuity and pid == pcr_pid:
            announced = True  # the time base may jump at the next PCR (ISO 13818-1 2.4.3.5)
        pcr = _pcr(packet)
        if pcr is not None and (pcr_pid is None or pid == pcr_pid):
            pcr_pid = pid
            if report.pcr_values and announced:
                report.announced += 1
            elif report.pcr_values:
                step = pcr - report.pcr_values[-1]
                report.pcr_backwards += step < 0
                report.pcr_jumps += step > max_pcr_step
            announced = False
            report.pcr_values.append(pcr)
    return report


def max_gap(arrivals, start, end):
    """The longest silence between datagram arrivals within [start, end] (seconds)."""
    times = [start] + [t for t in arrivals if start <= t <= end] + [end]
    return max(b - a for a, b in zip(times, times[1:]))


def frame_arrivals(datagrams, arrivals):
    """Arrival time of each video frame: the datagram carrying the start of its PES packet on
    the PCR PID (the video PID in what FFmpeg writes), in stream order."""
    found, pcr_pid = [], None
    for data, arrived in zip(datagrams, arrivals):
        for offset in range(0, len(data) - PACKET + 1, PACKET):
            packet = data[offset:offset + PACKET]
            pid = ((packet[1] & 0x1F) << 8) | packet[2]
            if pcr_pid is None and _pcr(packet) is not None:
                pcr_pid = pid
            if pid == pcr_pid and packet[1] & 0x40 and packet[3] & 0x10:
                found.append(arrived)
    return found
