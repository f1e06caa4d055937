"""Transcode mode: each segment decoded to raw frames and PCM, encoded by one output stage.

A `Decoder` normalises its segment to the channel's size, rate and audio format and trims it to
exactly the frames and samples of its slot (a short source holds its last frame, then silence),
so the encoder's timestamps (frame and sample counts) never break across segments.
"""
import os

from django.conf import settings

from . import argv
from .modes import Mode, SourceProcess, big_pipe, read_exact, write_all


class Decoder(SourceProcess):
    """One segment's frames on stdout and samples on a second pipe."""

    def __init__(self, mode, segment, frames, samples, has_audio):
        self.audio_read, audio_write = big_pipe(1 << 18)
        try:
            super().__init__(mode, argv.decoder_argv(mode.plan, segment, frames, samples, audio_write, has_audio),
                             pass_fds=(audio_write,), own_fds=(self.audio_read,))
        finally:
            os.close(audio_write)


class TranscodeMode(Mode):
    def __init__(self, plan, **options):
        super().__init__(plan, **options)
        self.video_fd = self.audio_fd = None
        self.lead = settings.RETROVUE_PLAYOUT_LEAD_SECONDS  # the encoder's own latency

    def spawn_output(self, spawn):
        audio_read, self.audio_fd = big_pipe(1 << 16)
        try:
            run = spawn(argv.encoder_argv(self.plan, audio_read), pass_fds=(audio_read,))
        finally:
            os.close(audio_read)
        self.video_fd = os.dup(run.proc.stdin.fileno())
        run.proc.stdin.close()
        self.fds = [self.video_fd, self.audio_fd]
        return run

    def open(self, segment, frames):
        return Decoder(self, segment, frames, self.fmt.samples_before(frames), self.has_audio(segment))

    def units(self, decoder, start, end, stopped):
        """One unit per frame of the slot: (its time, its frame index, (audio, video))."""
        fps, frame_bytes = self.fmt.fps, self.fmt.frame_bytes
        video = None
        for k in range(start, end):
            frame = read_exact(decoder.fd, frame_bytes)
            if frame is None and video is None:
                return  # not a single frame: the source cannot be read
            video = frame or video  # a short source holds its last frame
            size = self.fmt.audio_bytes(k)
            audio = read_exact(decoder.audio_read, size) or bytes(size)
            yield float(k / fps), k, (audio, video)

    def write(self, payload):
        # Audio first: its timestamps are sample counts, so order does not touch sync, and the
        # encoder never waits on a part-filled audio packet while we wait on it.
        audio, video = payload
        write_all(self.audio_fd, audio)
        write_all(self.video_fd, video)
