"""Command line: `reward-server serve`, `worker`, `grade-file IN OUT`, `probe [PATH]` and `settings`.

Every option also has an environment variable (prefix `REWARD_`, see `reward_server.settings`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from tqdm import tqdm

from reward_server.errors import BadRequest
from reward_server.schemas import GradeGroup, GradeRequest
from reward_server.settings import RewardSettings

app = typer.Typer(
    help="Reward server for inference-aware RL: grades MATH answers and code.", no_args_is_help=True
)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind [REWARD_HOST, 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [REWARD_PORT, 8000].")] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "info",
) -> None:
    """Start the HTTP server (embedded default: in-memory cache, local worker processes)."""
    import uvicorn

    from reward_server.api.app import create_app
    from reward_server.api.auth import UnguardedExposure, check_exposure
    from reward_server.api.read_deadline import read_deadline_protocol

    overrides = {key: value for key, value in {"host": host, "port": port}.items() if value is not None}
    settings = RewardSettings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        check_exposure(settings)
    except UnguardedExposure as exc:
        typer.echo(f"reward-server: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        http=read_deadline_protocol(settings.read_timeout_s),
    )


@app.command("grade-file")
def grade_file(
    input_path: Annotated[
        Path, typer.Argument(help="JSONL, one group per line (the `groups[]` items of /v1/grade).")
    ],
    output_path: Annotated[Path, typer.Argument(help="JSONL, one graded group per line, in input order.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Groups graded together.")] = 64,
) -> None:
    """Grade a file of groups offline, by the same code path as `POST /v1/grade`."""
    groups = _read_groups(input_path)
    asyncio.run(_grade_groups(groups, output_path, batch_size, RewardSettings()))


def _read_groups(path: Path) -> list[GradeGroup]:
    groups = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                groups.append(GradeGroup.model_validate_json(line))
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(part) for part in first["loc"]) or "line"
                raise typer.BadParameter(f"{path}:{number}: {where}: {first['msg']}") from None
    return groups


async def _grade_groups(
    groups: list[GradeGroup], output: Path, batch_size: int, settings: RewardSettings
) -> None:
    from reward_server.api.app import build_service

    async with build_service(settings) as service:
        with output.open("w", encoding="utf-8") as out, tqdm(total=len(groups), unit="group") as progress:
            for start in range(0, len(groups), batch_size):
                batch = groups[start : start + batch_size]
                try:
                    response = await service.grade(GradeRequest(groups=batch))
                except BadRequest as exc:
                    raise typer.BadParameter(f"{exc} {json.dumps(exc.fields)}") from None
                for result in response.groups:
                    out.write(result.model_dump_json() + "\n")
                progress.update(len(batch))


@app.command()
def worker(log_level: Annotated[str, typer.Option(help="Log level.")] = "info") -> None:
    """Run code jobs from the Redis queue (REWARD_REDIS_URL) in this machine's sandbox, until SIGTERM.

    Start as many as you like, on any machine that reaches the Redis: they share the work.
    """
    from reward_server.backends.code_sandbox import code_rules_version
    from reward_server.queue.worker import run_worker

    settings = RewardSettings()
    if settings.redis_url is None:
        raise typer.BadParameter("REWARD_REDIS_URL is not set: a worker needs the Redis of the reward server")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_worker(settings, code_rules_version(settings)))


@app.command()
def probe(
    path: Annotated[str, typer.Argument(help="What to GET, e.g. /readyz or /healthz.")] = "/readyz",
    timeout_s: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 4.0,
) -> None:
    """GET a path of the server this environment configures, with its first API key; exit 1 unless 200.

    For container health checks: REWARD_PORT, REWARD_API_KEYS and REWARD_API_KEYS_FILE are read as
    `serve` reads them, so the key never appears on a command line. A wildcard REWARD_HOST is probed on
    127.0.0.1.
    """
    import urllib.error
    import urllib.request

    settings = RewardSettings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    host = f"[{host}]" if ":" in host else host
    request = urllib.request.Request(f"http://{host}:{settings.port}{path}")
    if settings.api_keys:
        request.add_header("Authorization", f"Bearer {settings.api_keys[0].get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        typer.echo(f"probe {path}: {exc}", err=True)
        raise typer.Exit(1) from None
    if status != 200:
        typer.echo(f"probe {path}: HTTP {status}", err=True)
        raise typer.Exit(1)


@app.command("settings")
def settings_command() -> None:
    """Print every setting (environment variable, default, meaning) as a Markdown table."""
    from reward_server.settings_doc import settings_markdown

    typer.echo(settings_markdown(), nl=False)
