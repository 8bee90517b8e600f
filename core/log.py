"""The `dlt_runner` logger. Every record it emits passes the secret scrubber first."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from dlt_runner.scrub import SECRETS

if TYPE_CHECKING:
    from dlt.common.runtime.collector import LogCollector


class ScrubFilter(logging.Filter):
    """Replaces known secret values in the formatted message before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = SECRETS.scrub_text(message)
        if scrubbed != message or record.args:
            record.msg = scrubbed
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # tracebacks carry exception messages verbatim: render and scrub them here
            record.exc_text = SECRETS.scrub_text(
                logging.Formatter().formatException(record.exc_info)
            )
            record.exc_info = None
        return True


logger = logging.getLogger("dlt_runner")
logger.addFilter(ScrubFilter())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (scrubbed by ScrubFilter)."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


class _OwnFormat(logging.StreamHandler):  # type: ignore[type-arg]
    """Keeps the formatter it was made with: dlt sets its own on the first handler of its
    logger every time a pipeline initializes its runtime."""

    def __init__(self, formatter: logging.Formatter) -> None:
        import sys

        super().__init__(sys.stderr)
        self.formatter = formatter

    def setFormatter(self, fmt: Optional[logging.Formatter]) -> None:
        pass


def configure(fmt: str = "text", level: str = "INFO") -> logging.Handler:
    """Sends the `dlt_runner` logger, and dlt's own, to stderr as text or JSON lines, scrubbed;
    stdout stays free for machine output. Returns the handler (remove it to undo)."""
    import time

    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    formatter.converter = time.gmtime
    handler = _OwnFormat(formatter)
    handler.addFilter(ScrubFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    # dlt logs failed jobs with their tracebacks: same format, same scrubbing
    dlt_logger = logging.getLogger("dlt")
    for old in dlt_logger.handlers[:]:
        dlt_logger.removeHandler(old)
    dlt_logger.addHandler(handler)
    dlt_logger.propagate = False
    scrub_dlt_logger()
    return handler


def scrub_dlt_logger() -> None:
    """dlt logs a failed job's exception itself, wherever its logger writes (stderr, an
    orchestrator's task log); the message may hold a secret the runner knows."""
    from dlt.common import logger as dlt_log

    for target in {logging.getLogger("dlt"), dlt_log.LOGGER} - {None}:
        if not any(isinstance(f, ScrubFilter) for f in target.filters):
            target.addFilter(ScrubFilter())


def progress_collector(log_period: float = 10.0) -> "LogCollector":
    """dlt's `LogCollector` writing a progress line per step every `log_period` seconds through
    the `dlt_runner` logger (scrubbed, JSON when configured)."""
    from dlt.common.runtime.collector import LogCollector

    return LogCollector(log_period=log_period, logger=logger, log_level=logging.INFO,
                        dump_system_stats=False)
