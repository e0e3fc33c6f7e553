"""``recsys train | eval | export | rollback``: the offline loop from the command line.

Thin: options in, a call into ``pipeline`` / ``publish``, a progress bar and a table out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()

DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data", help="MovieLens folder (ml-1m.txt, ratings.dat, u.data or ratings.csv)."
    ),
]
EventsOpt = Annotated[
    Path | None, typer.Option(help="Events file, CSV or Parquet: user_id,item_id,timestamp[,type].")
]
ItemsOpt = Annotated[
    Path | None, typer.Option(help="Items file for --events: item_id,title[,description,...].")
]
FromDbOpt = Annotated[bool, typer.Option("--from-db", help="Events logged in RECSYS_DATABASE_URL.")]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads for torch (default: all).")]
DeviceOpt = Annotated[str, typer.Option(help="cpu or cuda.")]


def _source(data: Path | None, events: Path | None, items: Path | None, from_db: bool) -> Any:
    from serving.cli import _database_url, _settings
    from serving.training.sources import DataSource

    url = _database_url(_settings()) if from_db else None
    try:
        return DataSource(
            str(data) if data else None,
            str(events) if events else None,
            str(items) if items else None,
            url,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _load(source: Any) -> Any:
    from serving.training import sources
    from serving.training.datasets import DatasetError

    try:
        return sources.load(source)
    except DatasetError as error:
        # One unwrapped line (file:line: message), whatever the terminal's width.
        console.print(str(error), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _content_model() -> Any:
    """The configured content encoder's folder (``RECSYS_CONTENT_MODEL``)."""
    from serving.adapters.triton.content_model import ContentModel
    from serving.cli import _settings

    try:
        return ContentModel.load(_settings().content_model)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _content(dataset: Any) -> Any:
    from serving.cli import _settings
    from serving.training.content import embed_items

    settings = _settings()
    with _bar("content embeddings", dataset.num_items) as advance:
        return embed_items(dataset, settings.state_dir / "cache", advance, settings.content_model)


def _no_content(dataset: Any) -> Any:
    """The zero content table of an ID-only run (what ``train_run`` feeds it anyway)."""
    import numpy as np

    from serving.models.content_encoder import EMBEDDING_DIM

    return np.zeros((dataset.num_items, EMBEDDING_DIM), np.float32)


class _bar:
    """A rich progress bar as a context manager yielding ``advance(n)``."""

    def __init__(self, label: str, total: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
        )  # fmt: skip
        self.task = self.progress.add_task(label, total=total, status="")

    def __enter__(self) -> Any:
        self.progress.start()
        return self.advance

    def advance(self, n: int = 1, status: str = "") -> None:
        self.progress.update(self.task, advance=n, status=status)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _train(dataset: Any, content: Any, config: Any, options: Any, use_content: bool) -> Any:
    from serving.training.pipeline import Hooks, train_run

    label = "training" + ("" if use_content else " (ID-only)")
    best = [0.0]
    with _bar(label, options.epochs) as advance:

        def on_validation(epoch: int, score: float) -> None:
            best[0] = max(best[0], score)
            advance(0, f"valid NDCG@10 {score:.4f} (best {best[0]:.4f})")

        return train_run(
            dataset, content, config, options, use_content=use_content,
            hooks=Hooks(epoch=lambda e, loss: advance(1, f"loss {loss:.3f}"),
                        validation=on_validation),
        )  # fmt: skip


def train(
    data: DataOpt = None,
    events: EventsOpt = None,
    items: ItemsOpt = None,
    from_db: FromDbOpt = False,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default: STATE/runs/<time>).")
    ] = None,
    max_len: Annotated[
        int,
        typer.Option(
            help="History length. Serving pads every request to it, so the default matches"
            " the serving history (parameter history_length); 200 for the MovieLens benchmark."
        ),
    ] = 50,
    dim: int = 64,
    layers: int = 2,
    heads: int = 1,
    dropout: float = 0.2,
    attention_dropout: Annotated[
        float | None, typer.Option(help="Dropout on attention weights (default: --dropout).")
    ] = None,
    id_dropout: Annotated[
        float,
        typer.Option(help="Share of items seen by content alone in training (for new items)."),
    ] = 0.0,
    correction_norm: Annotated[
        float | None,
        typer.Option(help="Bound on each learned embedding's norm (a correction to content)."),
    ] = None,
    epochs: Annotated[int, typer.Option(help="At most this many epochs.")] = 200,
    batch_size: Annotated[
        int, typer.Option(help="Users per step: small batches learn more per epoch.")
    ] = 32,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    schedule: Annotated[str, typer.Option(help="cosine (warm-up, decay) or constant.")] = "cosine",
    loss: Annotated[str, typer.Option(help="full (softmax over all items) or sampled.")] = "full",
    negatives: Annotated[int, typer.Option(help="Negatives per batch for --loss sampled.")] = 256,
    patience: Annotated[int, typer.Option(help="Validations without gain before stopping.")] = 10,
    time_budget: Annotated[float | None, typer.Option(help="Minutes of training at most.")] = None,
    seed: int = 0,
    content: Annotated[
        bool, typer.Option(help="Use the content encoder's embeddings (--no-content: ID-only).")
    ] = True,
    device: DeviceOpt = "cpu",
    precision: Annotated[
        str, typer.Option(help="fp32, or bf16 (faster matrix products under autocast).")
    ] = "fp32",
    threads: ThreadsOpt = None,
) -> None:
    """Train the user encoder (early stopping on validation NDCG@10) into a run folder."""
    from serving.cli import _settings
    from serving.models.user_encoder import UserEncoderConfig
    from serving.training.runs import save_run
    from serving.training.trainer import TrainingOptions

    _threads(threads)
    source = _source(data, events, items, from_db)
    try:
        options = TrainingOptions(
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
            schedule=schedule, loss=loss,
            negatives=negatives, patience=patience, seed=seed, device=device,
            precision=precision, time_budget_s=time_budget * 60 if time_budget else None,
        )  # fmt: skip
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    dataset = _load(source)
    # ID-only trains on a zero content input: MiniLM would embed every item for nothing.
    embeddings = _content(dataset) if content else _no_content(dataset)
    config = UserEncoderConfig(
        num_items=dataset.num_items, dim=dim, max_len=max_len, layers=layers, heads=heads,
        dropout=dropout, attention_dropout=attention_dropout, id_dropout=id_dropout,
        content_dim=embeddings.shape[1],
        correction_norm=correction_norm,
    )  # fmt: skip
    run = _train(dataset, embeddings, config, options, content)
    run.record["source"] = source.describe()
    run.record["content_encoder"] = _content_model().identity.to_dict()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder = out or _settings().state_dir / "runs" / stamp
    save_run(folder, run)
    _summary(run.record, folder)


def _summary(record: dict[str, Any], folder: Path) -> None:
    best = max((s for _, s in record["validation"]), default=float("nan"))
    table = Table(title="training run", show_header=False)
    rows = [
        ("dataset", f"{record['dataset']}: {record['users']} users, {record['items']} items, "
                    f"{record['interactions']} interactions"),
        ("content", "content encoder + learned IDs" if record["use_content"] else "ID-only"),
        ("epochs", f"{record['epochs_run']} (best {record['best_epoch']}; {record['stopped']})"),
        ("validation NDCG@10", f"{best:.4f}"),
        ("final loss", f"{record['losses'][-1]:.4f}" if record["losses"] else "-"),
        ("training time", f"{record['train_seconds'] / 60:.1f} min"),
        ("peak memory", f"{record['peak_memory_mb']} MiB"),
        ("run folder", str(folder)),
    ]  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def evaluate(
    run: Annotated[Path, typer.Option(help="Run folder from `recsys train`.")],
    ablation: Annotated[
        Path | None, typer.Option(help="ID-only run to compare (default: train one now).")
    ] = None,
    with_ablation: Annotated[
        bool, typer.Option("--with-ablation/--no-ablation", help="Evaluate the ID-only variant.")
    ] = True,
    data: DataOpt = None,
    events: EventsOpt = None,
    items: ItemsOpt = None,
    from_db: FromDbOpt = False,
    ease_l2: Annotated[float, typer.Option(help="EASE's L2 regularisation.")] = 500.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
) -> None:
    """Leave-one-out test metrics (all items ranked, seen items removed) of a run, its
    ID-only ablation and the popularity, EASE and content-similarity baselines: a table,
    then JSON."""
    from serving.models.user_encoder import UserEncoderConfig
    from serving.training.pipeline import compare
    from serving.training.runs import load_run
    from serving.training.trainer import TrainingOptions

    _threads(threads)
    ours = load_run(run)
    if not (data or events or from_db):  # the run's own data
        stored = ours.record["source"]
        data, events = _path(stored["path"]), _path(stored["events"])
        items, from_db = _path(stored["items"]), bool(stored["database_url"])
    source = _source(data, events, items, from_db)
    dataset = _load(source)
    runs = {"ours (content + ID)" if ours.record["use_content"] else "ours (ID-only)": ours}
    if with_ablation and ours.record["use_content"]:
        if ablation is not None:
            runs["ours, ID-only (ablation)"] = load_run(ablation)
        else:
            options = TrainingOptions(**ours.record["options"])
            config = UserEncoderConfig(**ours.model.config.to_dict())  # type: ignore[arg-type]
            runs["ours, ID-only (ablation)"] = _train(dataset, ours.content, config, options, False)
    content = ours.content if ours.record["use_content"] else None
    result = compare(dataset, runs, ease_l2=ease_l2, device=device, content=content)
    print_report(result, dataset.summary())
    payload = report_json(result, dataset.summary(), {n: r.record for n, r in runs.items()})
    text = json.dumps(payload, indent=2)
    console.print_json(text)
    if json_out is not None:
        json_out.write_text(text)


def print_report(result: Any, summary: dict[str, Any]) -> None:
    from serving.training.evaluation import format_table

    first = next(iter(result.reports.values()))
    table = Table(title=f"{summary['dataset']} — leave-one-out test, all items ranked")
    table.add_column("model")
    table.add_column("users", justify="right")
    for metric in first.metrics:
        table.add_column(metric, justify="right")
    for row in format_table(result.reports):
        table.add_row(*row)
    console.print(table)
    for note in result.notes:
        console.print(note)


def report_json(
    result: Any, summary: dict[str, Any], records: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    keep = ("use_content", "options", "best_epoch", "epochs_run", "stopped", "train_seconds",
            "peak_memory_mb", "validation")  # fmt: skip
    return {
        "dataset": summary,
        "protocol": "leave-one-out; test = last item; all items ranked; seen items removed",
        "results": {name: report.metrics for name, report in result.reports.items()},
        "training": {n: {k: r.get(k) for k in keep} for n, r in records.items()},
        "notes": result.notes,
    }


def export(
    run: Annotated[Path, typer.Option(help="Run folder from `recsys train`.")],
    load: Annotated[bool, typer.Option(help="Ask the running Triton to load it.")] = True,
) -> None:
    """Publish a run as the next user_encoder version (runtime model repository + its item
    space in PostgreSQL) and have Triton load it; Recommend then reports that version."""
    from serving.cli import _database_url, _settings
    from serving.training.publish import EncoderMismatch, export_run

    settings = _settings()
    try:
        version = export_run(settings, _database_url(settings), run, load=load)
    except EncoderMismatch as error:
        console.print(f"export refused: {error}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    loaded = " and Triton loaded it" if load else ""
    typer.echo(f"exported user_encoder v{version} to {settings.model_repository}{loaded}")


def rollback(
    load: Annotated[
        bool, typer.Option(help="Ask the running Triton to load the previous one.")
    ] = True,
) -> None:
    """Go back to the previous user_encoder version: the newest is moved out of the model
    repository (to STATE/model_archive) and Triton loads the one before it."""
    from serving.cli import _settings
    from serving.training.publish import rollback_version

    settings = _settings()
    try:
        removed, current = rollback_version(settings, load=load)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo(f"rolled back user_encoder v{removed}; now serving v{current}")


def register(app: typer.Typer) -> None:
    """Add the offline-loop commands to the ``recsys`` app."""
    app.command()(train)
    app.command("eval")(evaluate)
    app.command()(export)
    app.command()(rollback)
