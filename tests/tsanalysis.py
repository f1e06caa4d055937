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
    pcr_positions: list = field(default_factory=list)  # (packet index, PCR s) on the PCR PID
    pes_starts: list = field(default_factory=list)  # (packet index, PID, DTS s) of every PES

    def longest_pcr_interval(self):
        """The longest time between two PCRs of one time base (TR 101 290 1.3a: at most 40 ms)."""
        return max((b - a for a, b in zip(self.pcr_values, self.pcr_values[1:]) if 0 <= b - a < 1), default=0.0)

    def dts_order_faults(self):
        """PES whose decode time does not come after the one before on its PID (a decoder's
        "non-monotonous DTS"); a capture across an announced restart starts over, so check a run."""
        last, faults = {}, 0
        for _, pid, dts in self.pes_starts:
            faults += pid in last and dts <= last[pid]
            last[pid] = dts
        return faults

    def delivery_margins(self):
        """{PID: least DTS - PCR at its arrival}: how early each PES came before its decode time
        (negative: late, a receiver must delay). PCR is interpolated by packet position."""
        margins, at = {}, 0
        for index, pid, dts in self.pes_starts:
            while at + 1 < len(self.pcr_positions) and self.pcr_positions[at + 1][0] <= index:
                at += 1
            if at + 1 >= len(self.pcr_positions) or self.pcr_positions[at][0] > index:
                continue
            (i0, p0), (i1, p1) = self.pcr_positions[at], self.pcr_positions[at + 1]
            if not 0 <= p1 - p0 < 1:
                continue  # across a time-base change
            pcr = p0 + (p1 - p0) * (index - i0) / (i1 - i0)
            margins[pid] = min(margins.get(pid, dts - pcr), dts - pcr)
        return margins
    pcr_values: list = field(default_factory=list)
    tables: dict = field(default_factory=dict)  # (PID, table id) -> its last section that fits a packet, CRC checked
    crc_errors: int = 0

    def bitrates(self, window=1.0):
        """The transport rate (bit/s, every packet counted, null ones too) over successive
        windows of at least `window` seconds of PCR time: what an analyser calls the TS rate."""
        rates, (i0, p0) = [], self.pcr_positions[0]
        for i1, p1 in self.pcr_positions[1:]:
            if not 0 <= p1 - p0 < 1 + window:
                i0, p0 = i1, p1  # a time-base change: start again
            elif p1 - p0 >= window:
                rates.append((i1 - i0) * PACKET * 8 / (p1 - p0))
                i0, p0 = i1, p1
        return rates

    def pcr_accuracy(self, rate):
        """The largest difference (seconds) between a PCR and where a constant `rate` (bit/s)
        puts its packet (TR 101 290 2.4 PCR_accuracy: at most 500 ns), within one time base."""
        worst, (i0, p0) = 0.0, self.pcr_positions[0]
        for i1, p1 in self.pcr_positions[1:]:
            expected = p0 + (i1 - i0) * PACKET * 8 / rate
            if abs(p1 - expected) > 0.1:  # a time-base change: measure from here
                i0, p0 = i1, p1
                continue
            worst = max(worst, abs(p1 - expected))
        return worst

    def service_information(self):
        """What a receiver learns of the service from PAT, SDT and NIT (ETSI EN 300 468)."""
        found = {}
        pat = self.tables.get((0x00, 0x00))
        if pat:
            found["transport_stream_id"] = pat[3] << 8 | pat[4]
            body = pat[8:-4]
            found["programs"] = [body[i] << 8 | body[i + 1] for i in range(0, len(body), 4)
                                 if body[i] << 8 | body[i + 1]]
        sdt = self.tables.get((0x11, 0x42))
        if sdt:
            found["sdt_transport_stream_id"] = sdt[3] << 8 | sdt[4]
            found["original_network_id"] = sdt[8] << 8 | sdt[9]
            found["services"], at = [], 11
            while at < len(sdt) - 4:
                service_id, length = sdt[at] << 8 | sdt[at + 1], (sdt[at + 3] & 0x0F) << 8 | sdt[at + 4]
                for tag, data in _descriptors(sdt[at + 5:at + 5 + length]):
                    if tag == 0x48:  # service descriptor: type, provider, name
                        provider = data[2:2 + data[1]]
                        name = data[3 + data[1]:3 + data[1] + data[2 + data[1]]]
                        found["services"].append((service_id, _dvb_text(provider), _dvb_text(name)))
                at += 5 + length
        nit = self.tables.get((0x10, 0x40))
        if nit:
            found["network_id"] = nit[3] << 8 | nit[4]
            length = (nit[8] & 0x0F) << 8 | nit[9]
            loop, found["nit_streams"], at = nit[12 + length:-4], [], 0
            while at + 6 <= len(loop):
                found["nit_streams"].append((loop[at] << 8 | loop[at + 1], loop[at + 2] << 8 | loop[at + 3]))
                at += 6 + ((loop[at + 4] & 0x0F) << 8 | loop[at + 5])
        return found


def _descriptors(data):
    at = 0
    while at + 2 <= len(data):
        yield data[at], data[at + 2:at + 2 + data[at + 1]]
        at += 2 + data[at + 1]


def _dvb_text(raw):
    """A DVB string (EN 300 468 annex A): a leading byte below 0x20 names the character table."""
    if raw[:1] == b"\x15":
        return raw[1:].decode("utf-8")
    return (raw[1:] if raw[:1] and raw[0] < 0x20 else raw).decode("latin-1")


def crc32_mpeg2(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


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
        if pid in (0x00, 0x10, 0x11) and packet[1] & 0x40 and has_payload:
            _table(report, pid, packet)
        if discontinuity and pid == pcr_pid:
            announced = True  # the time base may jump at the next PCR (ISO 13818-1 2.4.3.5)
        payload = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        if packet[1] & 0x40 and has_payload and packet[payload:payload + 3] == b"\x00\x00\x01" and \
                packet[payload + 7] & 0x80:
            dts_at = payload + 9 + (5 if packet[payload + 7] >> 6 == 3 else 0)  # DTS, or the PTS alone
            report.pes_starts.append((report.packets, pid, _timestamp(packet, dts_at) / 90000))
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
            report.pcr_positions.append((report.packets, pcr))
    return report


def adts_frames(data, pid):
    """[(DTS s, AAC frames)] of each PES on an ADTS audio PID: a muxer may pack several short
    frames into one PES (FFmpeg's rounds its minimum payload up to 170 bytes), so a gap between
    PES timestamps is a lost frame only if the PES before it held fewer frames than the gap."""
    found, payload, dts = [], None, None

    def close():
        if payload is None:
            return
        count, at = 0, 0
        while at + 7 <= len(payload) and payload[at] == 0xFF and payload[at + 1] & 0xF0 == 0xF0:
            count += 1 + (payload[at + 6] & 0x03)  # raw data blocks in this ADTS frame
            at += ((payload[at + 3] & 0x03) << 11) | (payload[at + 4] << 3) | (payload[at + 5] >> 5)
        found.append((dts, count))

    for offset in range(0, len(data) - PACKET + 1, PACKET):
        packet = data[offset:offset + PACKET]
        if (((packet[1] & 0x1F) << 8) | packet[2]) != pid or not packet[3] & 0x10:
            continue
        at = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
        if packet[1] & 0x40 and packet[at:at + 3] == b"\x00\x00\x01":
            close()
            dts_at = at + 9 + (5 if packet[at + 7] >> 6 == 3 else 0)
            dts, payload = _timestamp(packet, dts_at) / 90000, bytearray(packet[at + 9 + packet[at + 8]:])
        elif payload is not None:
            payload += packet[at:]
    close()
    return found


def _table(report, pid, packet):
    """Keep a PSI/SI section that starts and ends in this packet, if its CRC is right."""
    at = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
    at += 1 + packet[at]  # the pointer field
    if at + 3 > PACKET or packet[at] == 0xFF:
        return
    section = bytes(packet[at:at + 3 + ((packet[at + 1] & 0x0F) << 8 | packet[at + 2])])
    if at + len(section) > PACKET:
        return  # spans packets: not needed for the tables checked here
    if crc32_mpeg2(section) != 0:  # the CRC over a whole section, its own CRC included, is 0
        report.crc_errors += 1
        return
    report.tables[(pid, section[0])] = section


def _timestamp(packet, o):
    """A 33-bit PES timestamp at byte `o`."""
    b = packet[o:o + 5]
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


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
