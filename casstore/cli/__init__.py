"""The ``casstore`` command line (click + rich); also ``python -m casstore``.

This package owns the click group ``main`` and registers every verb on it; the verbs live in
modules by family: ``objects`` (the store and its objects), ``networks``, ``remotes``
(replication) and ``images`` (CAR archives), with what they share in ``common``.

The store is chosen by ``--store URL`` (before the verb) or ``CASSTORE_URL``,
default ``./.casstore`` (LMDB).  Errors a user can cause print one line and
exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import click

from casstore.cli import images, networks, objects, remotes

__all__ = ["DEFAULT_STORE", "main"]

DEFAULT_STORE = "./.casstore"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    "url",
    envvar="CASSTORE_URL",
    default=DEFAULT_STORE,
    show_default=True,
    help="Store URL: a path, lmdb:///p, file:///p, s3://bucket/prefix?endpoint_url=…, memory://. Env: CASSTORE_URL.",
)
@click.version_option(package_name="casstore")
@click.pass_context
def main(ctx: click.Context, url: str) -> None:
    """casstore: a content-addressed store for Bassline network state."""
    ctx.obj = {"url": url}


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
    networks.set_content,
    networks.import_network,
    networks.export_network,
    networks.snapshot,
    networks.log,
    networks.diff,
    remotes.remote,
    remotes.push,
    remotes.pull,
    remotes.clone,
    images.archive_network,
    images.restore_network,
):
    main.add_command(_verb)
