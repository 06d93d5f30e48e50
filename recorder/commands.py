"""``smartcity record`` and ``smartcity replay``: arguments and entry points."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

# Only what building the parser needs: `smartcity --help` should not import paho.
from recorder.fileformat import RecordingError
from recorder.reading import RecordingReader
from recorder.selection import Remap, Selection, TimePoint
from smartcity import logs
from smartcity.durations import parse_duration
from smartcity.models import format_ts
from smartcity.settings import CommonSettings
from smartcity.topics import TopicFilter

log = logging.getLogger("recorder")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _point(text: str) -> TimePoint:
    try:
        return TimePoint.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text.strip().removesuffix("x"))
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive factor or 'max'")
    return value


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="FILE",
                        help="recording to create (refused if it exists, unless --force)")
    parser.add_argument("--topic", action="append", default=[], metavar="FILTER",
                        help="MQTT topic filter to record, repeatable (default: {root}/#)")
    parser.add_argument("--duration", type=_duration, default=None, metavar="D",
                        help="stop after this long (90s, 5m, 1h2m; default: until Ctrl-C)")
    parser.add_argument("--no-retained", action="store_true",
                        help="leave out the retained messages the broker holds at the start")
    parser.add_argument("--note", default="", help="free text stored in the file header")
    parser.add_argument("--force", action="store_true", help="overwrite an existing FILE")


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="recording to replay")
    parser.add_argument("--speed", type=_speed, default=1.0, metavar="X",
                        help="time factor (0.5, 2, 10, ...) or 'max': as fast as the broker "
                             "acknowledges (default: 1)")
    parser.add_argument("--loop", action="store_true", help="start over at the end, forever")
    parser.add_argument("--passes", type=int, default=None, metavar="N",
                        help="with --loop: stop after N passes")
    parser.add_argument("--from", dest="start", type=_point, default=None, metavar="WHEN",
                        help="start at an offset into the recording (90s, 5m, 1h2m) or at an "
                             "RFC 3339 time")
    parser.add_argument("--to", dest="end", type=_point, default=None, metavar="WHEN",
                        help="stop at an offset from the recording's start or an RFC 3339 time")
    parser.add_argument("--topic", action="append", default=[], metavar="FILTER",
                        help="replay only topics matching this filter (as recorded), repeatable")
    parser.add_argument("--remap", action="append", default=[], metavar="OLD=NEW",
                        help="replace the topic prefix OLD by NEW (whole levels), repeatable")
    parser.add_argument("--rebase-time", action="store_true",
                        help="shift payload timestamps (ts, SenML bt/t) so the first message "
                             "is now (with --into-influx: the last one)")
    parser.add_argument("--verbatim", action="store_true",
                        help="publish payloads byte for byte as recorded (no source=replayed)")
    parser.add_argument("--no-state", action="store_true",
                        help="with --from: do not first republish the retained messages "
                             "(status, alerts) recorded before the start")
    parser.add_argument("--into-influx", action="store_true",
                        help="store the telemetry in InfluxDB through ingest's checks instead "
                             "of publishing it")
    parser.add_argument("--info", action="store_true",
                        help="describe the recording, check every frame, and exit (status 1 "
                             "when records are lost to damage)")
    parser.add_argument("--skip-damaged", action="store_true",
                        help="replay what is readable of a damaged recording and exit 0 "
                             "(default: replay it, say what was lost, and exit 1)")


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def record_main(args: argparse.Namespace) -> int:
    from recorder.record import RecordError, RecordOptions, record

    settings = CommonSettings()
    logs.setup("record", settings.log_level)
    if args.out.exists() and not args.force:
        print(f"smartcity record: {args.out} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    options = RecordOptions(out=args.out, filters=tuple(TopicFilter(t) for t in args.topic),
                            retained=not args.no_retained, overwrite=args.force, note=args.note)
    stop = threading.Event()
    _stop_on_signals(stop.set)
    try:
        stats = record(settings.mqtt, options, stop, args.duration)
    except (RecordError, OSError) as e:
        print(f"smartcity record: {e}", file=sys.stderr)
        return 1
    log.info("wrote %d messages (%d retained at the start) in %d frames, %d KiB, to %s",
             stats.received, stats.initial, stats.frames, stats.bytes // 1024, args.out)
    return 0


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(start=args.start, end=args.end,
                     filters=tuple(TopicFilter(t) for t in args.topic),
                     remaps=tuple(Remap.parse(r) for r in args.remap),
                     restore_state=not args.no_state)


def replay_main(args: argparse.Namespace) -> int:
    if args.verbatim and args.rebase_time:
        print("smartcity replay: --verbatim and --rebase-time exclude each other",
              file=sys.stderr)
        return 2
    try:
        if args.info:
            return _info(args.file)
        if args.into_influx:
            return _backfill(args)
        return _replay(args)
    except (RecordingError, OSError, ValidationError) as e:
        print(f"smartcity replay: {e}", file=sys.stderr)
        return 2


def _info(path: Path) -> int:
    from collections import Counter

    with RecordingReader(path) as reader:
        s = reader.summary()
        topics = Counter(r.topic for r in reader)
        # Decoding can find more than the CRCs (a body inconsistent with its header).
        known = {d.offset for d in s.damage}
        s.damage = sorted([*s.damage, *(d for d in reader.damage if d.offset not in known)],
                          key=lambda d: d.offset)
    h = s.header
    lost, exact = s.lost()
    if s.sound:
        status = "sound: every frame checked"
    else:
        status = (f"DAMAGED: {'' if exact else 'at least '}{lost:,} records lost "
                  f"(see the problems below)")
    if s.version < 2:
        closed = "- (a version 1 file does not say)"
    elif s.closed is not None:
        closed = f"yes, with {s.closed[0]:,} records in {s.closed[1]:,} frames"
    else:
        closed = ("no: the recorder was stopped without closing it (killed, or the machine "
                  "lost power); sound up to its last write")
    rows: list[tuple[str, Any]] = [
        ("file", path), ("format", f"version {s.version}"),
        ("started", format_ts(h.started_ns // 1_000_000)),
        ("broker", h.broker), ("root", h.root), ("filters", " ".join(h.filters)),
        ("note", h.note), ("messages", s.records), ("frames", s.frames),
        ("first", format_ts(s.first_ns // 1_000_000) if s.first_ns else "-"),
        ("last", format_ts(s.last_ns // 1_000_000) if s.last_ns else "-"),
        ("duration", f"{s.span_ns / 1e9:.3f}s"), ("topics", len(topics)),
        ("closed", closed), ("status", status)]
    lines = [f"{name:9} {value}" for name, value in rows]
    lines += [f"  {n:8d}  {topic}" for topic, n in topics.most_common(20)]
    if len(topics) > 20:
        lines.append(f"  ... and {len(topics) - 20} more topics")
    lines += [f"problem   {p}" for p in s.problems]
    _print_lines(lines)
    return 0 if s.sound else 1


def _print_lines(lines: list[str]) -> None:
    """Print to a reader that may stop reading (``--info | head``): quietly."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _replay(args: argparse.Namespace) -> int:
    from recorder.progress import Progress
    from recorder.replay import Replayer, ReplayOptions

    settings = CommonSettings()
    logs.setup("replay", settings.log_level)
    options = ReplayOptions(speed=args.speed, selection=_selection(args),
                            loop=args.loop or args.passes is not None, passes=args.passes,
                            rebase_time=args.rebase_time, mark_source=not args.verbatim)
    replayer = Replayer(args.file, settings.mqtt, options)
    _stop_on_signals(lambda: replayer.stop(timeout=0))
    progress = Progress(replayer, sys.stderr)
    progress.start()
    replayer.start()
    try:
        while not replayer.wait(0.2):
            pass
    finally:
        progress.close()
    st = replayer.status()
    if st.state == "finished" and not st.sent:
        log.warning("nothing to replay: no message of %s is in the selection", args.file)
    log.info("%s", st.describe())
    if st.state == "failed":
        print(f"smartcity replay: {st.error}", file=sys.stderr)
        return 1
    return _damage_verdict(st.lost, args.skip_damaged)


def _damage_verdict(lost: str | None, skip_damaged: bool) -> int:
    if lost is None:
        return 0
    if skip_damaged:
        log.warning("the recording is damaged: %s were skipped (--skip-damaged)", lost)
        return 0
    print(f"smartcity replay: the recording is damaged: {lost} were skipped; "
          "--skip-damaged accepts that", file=sys.stderr)
    return 1


def _backfill(args: argparse.Namespace) -> int:
    from recorder.backfill import Backfill, BackfillError, BackfillSettings, ingest_judge
    from recorder.progress import Progress
    from storage.influx import InfluxClient

    if args.loop or args.passes:
        print("smartcity replay: --loop makes no sense with --into-influx", file=sys.stderr)
        return 2
    settings = BackfillSettings()
    logs.setup("replay", settings.log_level)
    judge = ingest_judge(settings)
    client = InfluxClient(settings.influx)
    job = Backfill(args.file, judge, client, _selection(args), rebase_time=args.rebase_time,
                   mark_source=not args.verbatim, db=settings.influx.db)
    progress = Progress(job, sys.stderr)
    progress.start()
    try:
        result = job.run()
    except BackfillError as e:
        progress.close()
        print(f"smartcity replay: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    progress.close()
    for p in result.problems:
        log.warning("%s", p)
    log.info("into %s database %r: %s", settings.influx.url, settings.influx.db,
             result.describe())
    return _damage_verdict(result.lost, args.skip_damaged)
