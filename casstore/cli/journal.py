"""``casstore recover``: fold into a network's head the journal entries a live image left.

A live image's ``immediate``, ``batch`` and ``transactional`` flushes are journal entries
(:mod:`casstore.runtime.journal`), folded into the head by the image; after a crash the next
image folds what is left before it loads.  This verb does it without an image, so a reader of
the head (``export``, ``push``) sees every acknowledged change.
"""

from __future__ import annotations

import click

from casstore.cli.common import opened
from casstore.cli.output import committing, emit, out, say, verb
from casstore.codec import format_id
from casstore.model.refs import head_ref
from casstore.runtime.journal import pending_entries, recover_journal

__all__ = ["recover"]


@verb("casstore recover thermostat\ncasstore recover thermostat --dry-run --json")
@click.argument("network")
@click.option("--dry-run", is_flag=True, help="List the entries that would be folded; write nothing.")
@click.pass_context
def recover(ctx: click.Context, network: str, dry_run: bool) -> None:
    """Fold NETWORK's journal entries into its head (one commit that also deletes them)."""
    with opened(ctx) as store:
        entries = [entry.name.rsplit("/", 1)[1] for entry in pending_entries(store, network)]
        stored = store.objects.refs.get(head_ref(network))
        head = None if stored is None else format_id(stored)
        if entries and not dry_run:
            with committing(f"the fold of {len(entries)} journal entries"):
                result = recover_journal(store, network)
            if result is not None:
                head = result.end_head

    def render() -> None:
        for name in entries:
            out.print(f"{'would fold' if dry_run else 'folded'} {name}", highlight=False)
        say(
            f"{'would fold' if dry_run else 'folded'} {len(entries)} journal entr{'ies' if len(entries) != 1 else 'y'}"
            f" of {network}; head {head or '(none)'}"
        )

    emit({"network": network, "dry_run": dry_run, "entries": entries, "head": head}, render)
