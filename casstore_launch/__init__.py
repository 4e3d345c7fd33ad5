"""The ``casstore`` command's entry point, kept outside the ``casstore`` package.

Importing casstore takes about a third of a second; a Ctrl-C in that time raised
``KeyboardInterrupt`` out of the import, before the CLI's own handler existed, and
printed a traceback.  Here the import is inside a ``try``, so the command ends as
every interrupted verb does: one line (JSON under ``--json``) and exit status 130.
"""

from __future__ import annotations

import json
import sys

EXIT_INTERRUPTED = 130  # as casstore.cli.output.EXIT_INTERRUPTED, which cannot be imported yet


def main() -> None:
    """Import the CLI and run it; an interrupt during the import is reported like any other."""
    try:
        from casstore.cli import main as cli
    except KeyboardInterrupt:
        message = "interrupted while starting: nothing was done"
        args = sys.argv[1:]
        if "--json" in (args[: args.index("--")] if "--" in args else args):
            error = {"code": "INTERRUPTED", "message": message, "committed": False}
            sys.stderr.write(json.dumps({"error": error}) + "\n")
        else:
            sys.stderr.write(f"error: {message} [INTERRUPTED]\n")
        sys.exit(EXIT_INTERRUPTED)
    cli(prog_name="casstore")
