"""A real S3 API server on loopback for the tests: moto's server mode (`moto[server]`, PyPI).

The server speaks the S3 REST API over HTTP; s3fs (what `state_store="s3://..."` uses) talks to
it as to AWS through `AWS_ENDPOINT_URL_S3`. Credentials are fixed test values: moto accepts any.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.postgres import _free_port

BUCKET = "dlt-runner-tests"


@dataclass
class S3Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a worker process needs to reach the bucket (as AWS variables would on EC2)."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def filesystem(self) -> object:
        import s3fs

        return s3fs.S3FileSystem(key="testing", secret="testing",
                                 endpoint_url=self.endpoint, skip_instance_cache=True)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_s3() -> S3Server:
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="dlt-runner-s3-")) / "moto.log"
    server = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    s3 = S3Server(process, port, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{s3.endpoint}/moto-api/", timeout=1).close()
            break
        except OSError as ex:
            if process.poll() is not None or time.monotonic() > deadline:
                s3.stop()
                raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from ex
            time.sleep(0.1)
    fs = s3.filesystem()
    fs.mkdir(BUCKET)  # type: ignore[attr-defined]
    return s3


def no_aws_env() -> dict[str, str]:
    """The environment without AWS variables: a worker with no credentials at all."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
