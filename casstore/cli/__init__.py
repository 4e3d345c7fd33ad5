"""The ``casstore`` command line (click + rich); also ``python -m casstore``.

This package owns the click group ``main`` and registers every verb on it; the verbs live in
modules by family: ``objects`` (the store and its objects), ``networks``, ``remotes``
(replication) and ``images`` (CAR archives), with what they share in ``common``.

The store is chosen by ``--store URL`` (before the verb) or ``CASSTORE_URL``,
default ``./.casstore`` (LMDB), or by ``--config FILE`` (a ``StorageConfig`` in TOML or JSON,
``CASSTORE_CONFIG``; it names one URL, see ``docs/runtime.md``).  ``--json`` (before or after the verb) prints one JSON
document; ``--quiet`` drops progress bars and chatter.  Errors a user can cause print one
line and exit non-zero; they never show a traceback (see ``output``).  ``docs/cli.md``
documents every verb and its JSON.
"""

from __future__ import annotations

import json
from importlib.metadata import version

import click
from click.core import ParameterSource

from casstore.cli import (
    deletes,
    images,
    journal,
    layout,
    merge,
    networks,
    objects,
    prune,
    remotes,
    serve,
    snapshots,
    sqltables,
)
from casstore.cli.output import CasstoreGroup, fail, json_in_argv
from casstore.errors import StorageError
from casstore.store.config import load_config

__all__ = ["DEFAULT_STORE", "main"]

DEFAULT_STORE = "./.casstore"


EPILOG = """\b
Examples:
  casstore init
  casstore import thermostat docs/examples/sample-network.json
  casstore --json log thermostat
  casstore --store s3://bucket/prefix?endpoint_url=http://localhost:9000 networks

\b
Shell completion (bash; zsh and fish alike, see docs/cli.md):
  eval "$(_CASSTORE_COMPLETE=bash_source casstore)"
"""


@click.group(cls=CasstoreGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.option(
    "--store",
    "url",
    envvar="CASSTORE_URL",
    default=DEFAULT_STORE,
    show_default=True,
    help="Store URL: a path, lmdb:///p, file:///p, s3://bucket/prefix?endpoint_url=…, memory://. Env: CASSTORE_URL.",
)
@click.option(
    "--config",
    "config_path",
    envvar="CASSTORE_CONFIG",
    type=click.Path(dir_okay=False),
    help="A StorageConfig file (.toml, else JSON) naming the store, instead of --store. Env: CASSTORE_CONFIG.",
)
@click.option("--json", "json_output", is_flag=True, help="Print one JSON document (also accepted after the verb).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or chatter; data and ids still print.")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, on: _print_version(ctx) if on else None,
    help="Show the version and exit.",
)
@click.pass_context
def main(ctx: click.Context, url: str, config_path: str | None, json_output: bool, quiet: bool) -> None:
    """casstore: a content-addressed store for Bassline network state."""
    if config_path is not None:
        if ctx.get_parameter_source("url") == ParameterSource.COMMANDLINE:
            raise click.UsageError("give --store or --config, not both")
        try:
            url = load_config(config_path).to_url()
        except StorageError as exc:
            fail(f"--config: {exc}", exc.code)
    ctx.obj = {"url": url, "json": json_output, "quiet": quiet}


def _print_version(ctx: click.Context) -> None:
    """``casstore --version``: the version, as ``{"version": …}`` under ``--json``."""
    installed = version("casstore")  # the package's own __version__, as installed (the facade is a layer up)
    if json_in_argv():
        click.echo(json.dumps({"version": installed}))
    else:
        click.echo(f"casstore, version {installed}")
    ctx.exit()


# click lists verbs sorted by name, so this order is for the reader only.
for _verb in (
    objects.init,
    objects.put,
    objects.cat,
    objects.stats,
    objects.verify,
    objects.gc,
    networks.networks,
    networks.show,
    networks.get,
    networks.query,
    networks.set_content,
    networks.import_network,
    networks.export_network,
    snapshots.snapshot,
    snapshots.log,
    snapshots.diff,
    snapshots.history,
    prune.prune,
    journal.recover,
    deletes.delete,
    remotes.remote,
    remotes.push,
    remotes.pull,
    remotes.clone,
    merge.fetch,
    merge.merge,
    merge.conflicts,
    merge.resolve,
    sqltables.rebuild_tables,
    sqltables.import_tables,
    images.archive_network,
    images.restore_network,
    serve.serve,
    *(layout.status, layout.commit_edits),
):
    main.add_command(_verb)
