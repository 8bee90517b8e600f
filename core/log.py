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
