"""Every FFmpeg argv of the engine, built from a validated plan: lists, never a shell.

The output stage, one FFmpeg per run, encodes the pacer's raw frames and PCM (transcode) or passes
its spliced MPEG-TS through (copy), and fans out through the tee muxer to MPEG-TS over UDP (7 TS
packets a datagram) and a rolling HLS window. Segments are read by short-lived decoders (transcode)
or readers (copy); the slate of both modes is built here.
"""
from channels_app.profiles import AUDIO_SAMPLE_RATE
from channels_app.validation import AUDIO_CODECS, VIDEO_CODECS, bitrate_bps, udp_url

from .plan import safe_path

X264_FAMILY = {"libx264", "libx265"}
HLS_SEGMENT_SECONDS = 2
# A new output stage's first segments are shorter: a viewer who tuned (an on-demand start) gets
# bytes once the first one is written, and FFmpeg writes a segment whole when it ends.
HLS_FIRST_SEGMENT_SECONDS = 0.5
PCM = "aformat=sample_fmts=s16:channel_layouts=stereo"
# What a segment's source may be opened with: local files, and the web for URL assets.
SOURCE_PROTOCOLS = "file,http,https,tcp,tls,crypto"
QUIET = ["-hide_banner", "-nostdin", "-loglevel", "error"]
# The output stage reports progress (the supervisor's health and stall clock) and sends each
# frame's packets when it has them, so boundaries and switches show on the wire when they happen.
OUTPUT_STAGE = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+warning",
                "-progress", "pipe:1", "-stats_period", "0.5"]
# How a copy reader muxes (see reader_argv).
READER_MUX = ["-muxdelay", "0", "-muxpreload", "0", "-omit_video_pes_length", "0", "-pes_payload_size", "0"]
LOW_LATENCY_MUX = ["-max_interleave_delta", "40000", "-muxdelay", "0", "-muxpreload", "0", "-flush_packets", "1"]
# The output muxers' max_delay: PCR runs this far behind the decode times (what a receiver buffers).
MUX_MAX_DELAY_US = 100_000


TEE_LEGS = ("UDP", "HLS")  # the output stage's legs, in the tee's order (FFmpeg names them by index)


def output_args(plan):
    network = plan.sections["network_settings"]
    # The window goes on across restarts (RFC 8216 6.2.1): numbering from plan.hls_start, a
    # discontinuity where timestamps start again, never an end tag (hls.py serves the window
    # across the restart); a segment stays a window's length after it leaves the list (6.2.2).
    # Its segments are timed as the UDP leg is (below): hls_ts_options reach the TS muxer of each
    # segment, its ':' escaped twice (once for the tee's '|' split, once for its option list).
    hls = (
        f"[f=hls:max_delay={MUX_MAX_DELAY_US}:hls_ts_options=pcr_period=20\\\\:pes_payload_size=0"
        f":hls_time={HLS_SEGMENT_SECONDS}:hls_init_time={HLS_FIRST_SEGMENT_SECONDS}:hls_list_size={plan.hls_list_size}"
        f":hls_delete_threshold={plan.hls_list_size + 1}:start_number={plan.hls_start}"
        f":hls_flags=delete_segments+independent_segments+discont_start+omit_endlist]"
        f"{safe_path(plan.hls_dir / 'index.m3u8')}"
    )
    # Each PID's first packet is flagged: a receiver takes the counters and time base of a restarted
    # output (a crash, a restart, a failover) as announced, not as errors. PCR at most every 20 ms
    # asked (frames come every 33-40 ms: asking 40 gave 67 ms between some), running 0.1 s behind
    # the decode times, and one audio frame per PES: each PES arrives before it is due (T-STD).
    udp = (f"[f=mpegts:onfail=ignore:pcr_period=20:max_delay={MUX_MAX_DELAY_US}:pes_payload_size=0"
           f":{service_information(plan)}]{udp_url(network, plan.udp_ttl)}")
    legs = {"UDP": udp, "HLS": hls}
    return ["-metadata", f"service_provider={network.get('provider_name', 'RetroVue')}",
            "-metadata", f"service_name={plan.name}", "-f", "tee", "|".join(legs[leg] for leg in TEE_LEGS)]


def service_information(plan):
    """The UDP leg's SI and rate, as tee options (validated integers only): service id and
    program number (the channel number unless set), transport stream and original network ids,
    a NIT, and with mode cbr a constant mux rate (null packets fill what the stream leaves)."""
    network = plan.sections["network_settings"]
    service_id = network.get("service_id", plan.number if 1 <= plan.number <= 65535 else 1)
    options = [f"mpegts_service_id={service_id}",
               f"mpegts_transport_stream_id={network.get('transport_stream_id', 1)}",
               f"mpegts_original_network_id={network.get('original_network_id', 1)}",
               "mpegts_flags=+initial_discontinuity+nit"]
    if network.get("mode") == "cbr":
        options.append(f"muxrate={bitrate_bps(network['muxrate'])}")
    return ":".join(options)


def audio_args(codec):
    """Audio encoded as every channel airs it: `codec` at 128 kb/s, 48 kHz stereo."""
    return ["-c:a", codec, "-b:a", "128k", "-ar", str(AUDIO_SAMPLE_RATE), "-ac", "2"]


def encode_args(plan):
    """Encode to the channel's settings (a copy channel never reaches here)."""
    stream, quality = plan.stream, plan.sections["quality_settings"]
    video = VIDEO_CODECS[stream.get("video_codec", "h264")] or "libx264"
    gop = str(max(1, round(float(plan.fmt.fps) * HLS_SEGMENT_SECONDS)))
    # Square pixels for players; the fps filter hands each frame to the encoder as it comes
    # (without it FFmpeg holds one back to time it: 72 ms steady jitter instead of 42, bench/transitions.py).
    args = ["-vf", f"setsar=1,fps={plan.fmt.fps}", "-c:v", video, "-pix_fmt", "yuv420p", "-g", gop, "-keyint_min", gop,
            # A keyframe every first segment's length at the start, so those segments can be cut
            # that short (a viewer who started the channel waits for the first one), then every gop.
            "-force_key_frames", f"expr:lt(t,{HLS_SEGMENT_SECONDS})*gte(t,n_forced*{HLS_FIRST_SEGMENT_SECONDS})"]
    if video in X264_FAMILY:
        args += ["-preset", quality.get("preset", "veryfast"), "-sc_threshold", "0"]
        if video == "libx264":
            args += ["-tune", "zerolatency"]  # no lookahead: a frame leaves when it is written
    bitrate = stream.get("bitrate", "3000k")
    if plan.sections["network_settings"].get("mode") == "cbr":
        # Constant: the encoder's buffer is a second of the rate (validation sized the mux rate
        # to hold it), and x264 pads with filler so the video itself is constant.
        args += ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate]
        if video == "libx264":
            args += ["-x264-params", "nal-hrd=cbr"]
    else:
        args += ["-crf", str(quality["crf"])] if "crf" in quality and video in X264_FAMILY else ["-b:v", bitrate]
        args += ["-maxrate", quality.get("max_bitrate", bitrate), "-bufsize", quality.get("buffer_size", "6000k")]
    return args + audio_args(AUDIO_CODECS[stream.get("audio_codec", "aac")] or "aac")


def encoder_argv(plan, audio_fd):
    """Transcode output stage: raw frames on stdin, PCM on `audio_fd`; their timestamps are the
    frame and sample counts, so they run on without a break whatever is fed. Raw inputs need no
    probing (probing would wait on one pipe while the pacer writes the other)."""
    fmt = plan.fmt
    raw = ["-probesize", "32", "-analyzeduration", "0", "-thread_queue_size", "64"]
    return [plan.ffmpeg, *OUTPUT_STAGE,
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", fmt.size, "-framerate", str(fmt.fps),
            *raw, "-i", "pipe:",
            "-f", "s16le", "-ar", str(AUDIO_SAMPLE_RATE), "-ac", "2", *raw, "-i", f"pipe:{audio_fd}",
            "-map", "0:v:0", "-map", "1:a:0", *encode_args(plan), *LOW_LATENCY_MUX, *output_args(plan)]


def passthrough_argv(plan):
    """Copy output stage: one MPEG-TS on stdin (spliced by the pacer), passed through. The pacer
    feeds in real time, so the first PAT/PMT and keyframe say all there is to probe."""
    return [plan.ffmpeg, *OUTPUT_STAGE,
            "-f", "mpegts", "-probesize", "1000000", "-analyzeduration", "80000", "-fpsprobesize", "0", "-i", "pipe:0",
            "-map", "0:v:0", "-map", "0:a:0", "-c", "copy", *LOW_LATENCY_MUX, *output_args(plan)]


def slate_inputs(plan, seconds):
    """The slate, as two lavfi inputs (video, audio) of `seconds`: colour bars with the channel's
    number and name drawn as literal text (expansion off: `%{...}` in a name is shown, never
    evaluated) and a 1 kHz tone. Every slate of every mode comes from here."""
    fmt = plan.fmt
    text = (f"drawtext=textfile={safe_path(plan.slate_text_file)}:expansion=none:fontcolor=white:"
            f"fontsize={max(fmt.height // 12, 8)}:x=(w-tw)/2:y=h-th-h/10:box=1:boxcolor=black@0.6:boxborderw=10")
    return ["-f", "lavfi", "-i", f"smptebars=size={fmt.size}:rate={fmt.fps}:d={seconds:.3f},{text},format=yuv420p",
            "-f", "lavfi", "-i", f"sine=frequency=1000:sample_rate={AUDIO_SAMPLE_RATE}:d={seconds:.3f}"]


def decoder_argv(plan, segment, frames, samples, audio_fd, has_audio=True):
    """Decode one segment to exactly `frames` raw frames (stdout) and `samples` PCM samples
    (`audio_fd`): scaled and padded to the channel's size, at its rate, the last frame held and
    silence added if the source runs short. Every source ends a little after the slot: an
    endless one would keep FFmpeg pulling it and never drain the other chain."""
    fmt = plan.fmt
    bound = float(frames / fmt.fps) + 1
    if segment.source:
        inputs = ["-protocol_whitelist", SOURCE_PROTOCOLS, "-ss", f"{segment.in_point:.3f}", "-i", segment.source,
                  "-f", "lavfi", "-i", f"anullsrc=r={AUDIO_SAMPLE_RATE}:cl=stereo:d={bound:.3f}"]
        video = (f"[0:v:0]scale={fmt.width}:{fmt.height}:force_original_aspect_ratio=decrease,"
                 f"pad={fmt.width}:{fmt.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fmt.fps},format=yuv420p,"
                 f"tpad=stop_mode=clone:stop_duration={bound:.3f}[v]")
        audio = (f"[0:a:0]aresample={AUDIO_SAMPLE_RATE},{PCM}[src];[src][1:a]concat=n=2:v=0:a=1,"
                 if has_audio else "[1:a]") + f"atrim=end_sample={samples}[a]"
    else:
        inputs = slate_inputs(plan, bound)
        video, audio = "[0:v:0]null[v]", f"[1:a]{PCM},atrim=end_sample={samples}[a]"
    return [plan.ffmpeg, *QUIET, *inputs, "-filter_complex", f"{video};{audio}",
            "-map", "[v]", "-frames:v", str(frames), "-f", "rawvideo", "pipe:1",
            "-map", "[a]", "-ac", "2", "-f", "s16le", f"pipe:{audio_fd}"]


def reader_argv(plan, source, in_point, seconds, has_audio=True):
    """One segment of a copy channel as MPEG-TS on stdout, video passed through.

    Stream copy can only start at a keyframe: with `-ss` FFmpeg starts at the keyframe at or
    before `in_point`. Timestamps are whatever the source has; the splicer rebases them. No
    muxing delay (the PCR is the DTS) and the video PES length written where it fits, so the
    output stage can pass a frame on as soon as it has it; one audio frame per PES, so the splicer
    knows where each ends and never lets two overlap across a splice. It reads a second more than the slot
    and ends: it exits while its output still waits in the pipe, well before its boundary."""
    seek = ["-ss", f"{in_point:.6f}"] if in_point > 0 else []
    inputs = ["-protocol_whitelist", SOURCE_PROTOCOLS, *seek, "-t", f"{seconds + 1:.3f}", "-i", source]
    maps = ["-map", "0:v:0", "-map", "0:a:0"]
    if not has_audio:  # only when the channel encodes audio: silence in the channel's codec
        inputs += ["-f", "lavfi", "-i", f"anullsrc=r={AUDIO_SAMPLE_RATE}:cl=stereo"]
        maps = ["-map", "0:v:0", "-map", "1:a:0", "-shortest"]
    codec = AUDIO_CODECS[plan.stream.get("audio_codec", "copy")]
    audio = ["-c:a", "copy"] if codec is None else audio_args(codec)  # copied, or encoded to the channel's codec
    return [plan.ffmpeg, *QUIET, *inputs, *maps, "-c:v", "copy", *audio,
            *READER_MUX, "-f", "mpegts", "pipe:1"]


def slate_clip_argv(plan, path, seconds):
    """The copy channel's slate, encoded once in the channel's format (H.264 at its size and
    rate, a keyframe a second, no B-frames, AAC 48 kHz stereo) so that it is read like any program."""
    gop = str(max(1, round(float(plan.fmt.fps))))
    return [plan.ffmpeg, *QUIET, "-y", *slate_inputs(plan, seconds), "-map", "0:v:0", "-map", "1:a:0",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-bf", "0",
            "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", *audio_args("aac"), "-f", "mp4", safe_path(path)]
