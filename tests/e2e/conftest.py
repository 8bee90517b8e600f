"""Fork servers for the worker tests: short leases, so a SIGKILLed holder's lease expires fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.workers_chaos import LEASE_TTL
from tests.e2e.zygote import Zygote
from tests.support.s3 import S3Server


@pytest.fixture(scope="module")
def lane() -> Iterator[Zygote]:
    server = Zygote(env={"DLT_RUNNER_LEASE_TTL": str(LEASE_TTL)})
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def s3_lane(s3_server: S3Server) -> Iterator[Zygote]:
    """Workers that reach the S3 server as they would AWS: through the usual AWS variables."""
    server = Zygote(env={"DLT_RUNNER_LEASE_TTL": str(LEASE_TTL), **s3_server.env()})
    try:
        yield server
    finally:
        server.close()
