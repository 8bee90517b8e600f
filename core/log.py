"""The `dlt_runner` logger. Every record it emits passes the secret scrubber first."""

from __future__ import annotations

import logging

from dlt_runner.scrub import SECRETS


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


def configure(fmt: str = "text", level: str = "INFO") -> logging.Handler:
    """Sends the `dlt_runner` logger to stderr as text or JSON lines; stdout stays free for
    machine output. Returns the handler (remove it to undo)."""
    import sys
    import time

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ScrubFilter())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def progress_collector(log_period: float = 10.0) -> object:
    """dlt's `LogCollector` writing a progress line per step every `log_period` seconds through
    the `dlt_runner` logger (scrubbed, JSON when configured)."""
    from dlt.common.runtime.collector import LogCollector

    return LogCollector(log_period=log_period, logger=logger, log_level=logging.INFO,
                        dump_system_stats=False)
