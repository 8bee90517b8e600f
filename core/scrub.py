"""Secret scrubbing: the one place that knows which values are secret and removes them.

Secrets are learned three ways: every config value dlt resolves with a secret hint (learned the
moment dlt logs the resolution, so a source that raises with its token in the message before any
step ends is covered), explicit values (destination credentials, source arguments named like a
secret, `${VAR}`s of a config file, an orchestrator's own masked values), and a pattern
backstop: passwords inside URLs and DSNs, values of keys and query parameters named like a
secret, and `Bearer`/`Basic` tokens.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from dlt import Pipeline

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not scrubbed by value: replacing every "ab" would wreck reports."""

# bounded repeats and a left anchor keep these linear on long texts (tracebacks, 200 KB errors);
# values may be as long as 4096 characters (keys, JWTs): a shorter bound left their tails readable
_URL_PASSWORD = re.compile(
    r"(?P<head>(?<![\w+.-])[a-zA-Z][\w+.-]{0,30}://[^:/@\s]{0,256}:)(?P<pw>[^@\s/]{1,4096})(?P<tail>@)"
)
_SECRET_NAME = (
    # a name containing one of these (`access_token`, `X-Api-Key`, `X-Amz-Signature`) ...
    r"(?:[\w.-]{0,40}?(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|signature|credentials?)[\w.-]{0,20}?"
    # ... or exactly one of these (`auth=`, but not `author:`)
    r"|pwd|auth|authorization|sig|key)"
)
_KEY_VALUE = re.compile(
    # `token=...`, `?access_token=...&`, `"client_secret": "..."`, `X-Api-Key: ...`
    rf"(?P<head>(?<![\w-])[\"']?{_SECRET_NAME}[\"']?\s{{0,3}}[=:]\s{{0,3}}[\"']?)"
    r"(?!\*\*\*)(?P<pw>[^\s'\",;&)}\]]{1,4096})",
    re.IGNORECASE,
)
_SCHEME_VALUE = re.compile(
    # `Authorization: Bearer eyJ...`, `Basic dXNlcjpwYXNz`, `Token abc`
    r"(?P<head>\b(?:Bearer|Basic|Token|Digest)\s{1,3})(?!\*\*\*)(?P<pw>[A-Za-z0-9._~+/=-]{4,4096})",
    re.IGNORECASE,
)


class SecretRegistry:
    """A process-wide, thread-safe set of secret values and a scrubber that uses it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._ordered: tuple[str, ...] = ()

    def add(self, *values: Any) -> None:
        """Each value as given, URL-decoded and URL-encoded: a DSN carries its password
        encoded (`p%40ss`) and a driver's error may echo it decoded (`p@ss`), or the reverse."""
        new = {form for v in values if v is not None
               for form in (str(v), unquote(str(v)), quote(str(v), safe=""))
               if len(form) >= MIN_SECRET_LENGTH}
        if not new - self._values:
            return
        with self._lock:
            self._values = self._values | new
            # longest first so a secret containing another is masked whole
            self._ordered = tuple(sorted(self._values, key=len, reverse=True))

    def values(self) -> frozenset[str]:
        """Every value learned: an orchestrator's own masker can learn them too."""
        return self._values

    def scrub_text(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("tail"), text)
        text = _SCHEME_VALUE.sub(lambda m: m.group("head") + MASK, text)
        return _KEY_VALUE.sub(lambda m: m.group("head") + MASK, text)

    def scrub(self, obj: Any) -> Any:
        """Scrubs every string inside JSON-like data (keys included); other leaves pass through."""
        if isinstance(obj, str):
            return self.scrub_text(obj)
        if isinstance(obj, Mapping):
            return {self.scrub(k): self.scrub(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.scrub(v) for v in obj]
        return obj


SECRETS = SecretRegistry()


def learn_from_credentials(credentials: Any) -> None:
    """Adds the secret parts of an explicit credentials value (object, dict, DSN string), or
    of any mapping of named values (source arguments): those whose names look secret."""
    from dlt.common.configuration import is_secret_hint
    from dlt.common.configuration.specs import BaseConfiguration

    if credentials is None:
        return
    if isinstance(credentials, BaseConfiguration):
        has_secret = False
        for name, hint in credentials.get_resolvable_fields().items():
            value = getattr(credentials, name, None)
            if isinstance(value, BaseConfiguration):
                learn_from_credentials(value)
            elif value is not None and is_secret_hint(hint):
                SECRETS.add(value)
                has_secret = True
        if has_secret:
            try:
                SECRETS.add(credentials.to_native_representation())
            except Exception:
                pass
    elif isinstance(credentials, Mapping):
        for key, value in credentials.items():
            if isinstance(value, (Mapping, BaseConfiguration)):
                learn_from_credentials(value)
            elif _KEY_VALUE.search(f"{key}=x"):
                SECRETS.add(value)
    elif isinstance(credentials, str):
        for match in _URL_PASSWORD.finditer(credentials):
            SECRETS.add(match.group("pw"), credentials)
        learn_from_credentials(dict(_query(credentials)))  # `?password=...`, `?token=...`


def _query(url: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl, urlsplit

    try:
        return parse_qsl(urlsplit(url).query)
    except ValueError:
        return []


def learn_from_pipeline(pipeline: "Pipeline") -> None:
    """Explicit credentials handed to the pipeline's destination and staging factories."""
    for attr in ("_destination", "_staging"):
        params = getattr(getattr(pipeline, attr, None), "config_params", None) or {}
        learn_from_credentials(params.get("credentials"))


def learn_resolved(trace: Any) -> None:
    """One of dlt's resolved-config traces: its value is learned if its hint is secret."""
    from dlt.common.configuration import is_secret_hint

    if trace.value is None or not is_secret_hint(trace.hint):
        return
    if isinstance(trace.value, str):
        SECRETS.add(trace.value)
    else:
        learn_from_credentials(trace.value)


class _SecretTracker:
    """A dlt tracking module: collects secret-hinted values dlt resolved during each step
    (a second net: values dlt resolved before the runner was installed)."""

    def on_start_trace(self, trace: Any, step: Any, pipeline: "Pipeline") -> None:
        pass

    def on_start_trace_step(self, trace: Any, step: Any, pipeline: "Pipeline") -> None:
        pass

    def on_end_trace_step(
        self, trace: Any, step: Any, pipeline: "Pipeline", step_info: Any, send_state: bool
    ) -> None:
        from dlt.common.configuration.utils import get_resolved_traces

        traces: Iterable[Any] = get_resolved_traces().resolved_traces
        for resolved in traces:
            learn_resolved(resolved)

    def on_end_trace(self, trace: Any, pipeline: "Pipeline", send_state: bool) -> None:
        pass


_TRACKER = _SecretTracker()


def install_tracker() -> None:
    """Registers the tracker with dlt once per process (dlt's documented plug-in point) and
    learns each secret as dlt resolves it: dlt logs every resolution to `TraceLogContext.log`
    (every thread, whether or not a pipeline step is running), so that is where we listen."""
    from dlt.common.configuration.utils import TraceLogContext
    from dlt.pipeline import trace

    modules: list[Any] = trace.TRACKING_MODULES  # our tracker is duck-typed
    if _TRACKER not in modules:
        modules.append(_TRACKER)
    log = TraceLogContext.log
    if getattr(log, "_dlt_runner", False):
        return

    def learning_log(self: Any, resolved: Any) -> None:
        try:
            learn_resolved(resolved)
        finally:
            log(self, resolved)

    learning_log._dlt_runner = True  # type: ignore[attr-defined]
    TraceLogContext.log = learning_log  # type: ignore[method-assign,assignment]
