"""Verbs of the PostgreSQL SQL view: ``rebuild-tables`` (re-derive it from the heads) and ``import-tables``
(import networks from a database in upstream Bassline's schema)."""

from __future__ import annotations

import sys

import click

from casstore.cli.common import opened
from casstore.cli.output import emit, out, verb
from casstore.errors import StorageError
from casstore.store.registry import redact_url

__all__ = ["import_tables", "rebuild_tables"]


@verb(
    "export CASSTORE_URL='postgresql:///casstore?host=/var/run/postgresql'\n"
    "casstore rebuild-tables\ncasstore rebuild-tables thermostat --json",
    name="rebuild-tables",
    partial="the networks listed as rebuilt were re-derived; the others are as they were",
)
@click.argument("networks", nargs=-1)
@click.pass_context
def rebuild_tables(ctx: click.Context, networks: tuple[str, ...]) -> None:
    """(Re)create a PostgreSQL store's SQL view and re-derive it from the heads (every network by default)."""
    with opened(ctx) as store:
        try:  # psycopg is the `postgres` extra: the rest of the CLI works without it
            from casstore.sqlview.rebuild import rebuild_tables as run_rebuild
        except ImportError as exc:
            raise StorageError(
                f"rebuild-tables needs the postgres extra: pip install 'casstore[postgres]': {exc}"
            ) from None
        report = run_rebuild(store, networks)

    def render() -> None:
        out.print(
            f"rebuilt {len(report.rebuilt)} network(s)" + (f", removed {len(report.removed)}" if report.removed else "")
        )

    emit(report.as_json(), render)


@verb(
    "casstore import-tables 'postgresql://bassline@db/bassline' --json\n"
    "casstore import-tables 'postgresql:///old?host=/run/postgresql' --schema legacy thermostat",
    name="import-tables",
    partial="networks are imported one by one: those in the report of a new run are complete",
)
@click.argument("source")
@click.argument("networks", nargs=-1)
@click.option("--schema", default="public", show_default=True, help="The schema holding upstream's bassline_* tables.")
@click.pass_context
def import_tables(ctx: click.Context, source: str, networks: tuple[str, ...], schema: str) -> None:
    """Import networks (and their snapshots, oldest first) from a database in upstream Bassline's schema."""
    with opened(ctx, create=True) as store:
        try:
            from casstore.sqlview.migrate import import_tables as run_import
        except ImportError as exc:
            raise StorageError(
                f"import-tables needs the postgres extra: pip install 'casstore[postgres]': {exc}"
            ) from None
        report = run_import(store, source, schema, networks)
    document = {"source": redact_url(source), "schema": schema, **report.as_json()}

    def render() -> None:
        for network_id, done in report.networks.items():
            out.print(
                f"{network_id}: {len(done['snapshots'])} snapshot(s) imported, {len(done['skipped_snapshots'])} "
                f"already present, head {'written' if done['head'] else 'unchanged'}",
                highlight=False,
            )
        for network_id, why in report.failed.items():
            out.print(f"[red]{network_id}: not imported: {why}[/]", highlight=False)

    emit(document, render)
    if report.failed:
        sys.exit(1)
