"""The `dlt-runner` command line: its commands (`main`), the project file it reads (`project`)
and what turns a project's pipeline into a dlt pipeline and a `Runner` (`launch`)."""

from dlt_runner.cli.main import MEANING, ExitCode, main

__all__ = ["MEANING", "ExitCode", "main"]
