"""How the CLI speaks: the consoles, ``--json`` and ``--quiet``, errors, interrupts and the verb decorator.

Every verb is declared with :func:`verb`, which adds ``--json`` (the same switch as the global
``casstore --json``), an example in ``--help``, and the error handling: an error a user can cause
prints one line (``error: …``, or ``{"error": {"code": …, "message": …}}`` under ``--json``) on
stderr and exits 1; Ctrl-C exits 130 saying whether anything had been committed.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from casstore.errors import StorageError

__all__ = [
    "EXIT_INTERRUPTED",
    "PIPE_WIDTH",
    "CasstoreGroup",
    "CliError",
    "committing",
    "emit",
    "err",
    "fail",
    "json_in_argv",
    "json_mode",
    "out",
    "quiet_mode",
    "say",
    "stdin_is_terminal",
    "verb",
]

F = TypeVar("F", bound=Callable[..., Any])
PIPE_WIDTH = 200  # tables written to a pipe or file keep whole ids instead of eliding them
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class _Console:
    """A rich console made at use, so it sees the current streams (and their width) each time."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    def __getattr__(self, name: str) -> Any:
        stream = sys.stderr if self.stderr else sys.stdout
        width = None if stream.isatty() else PIPE_WIDTH
        return getattr(Console(stderr=self.stderr, width=width), name)


out = _Console()
err = _Console(stderr=True)


class CliError(Exception):
    """An error a user caused, with its machine-readable code and exit status."""

    def __init__(self, message: str, code: str = "ERROR", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message, self.code, self.exit_code = message, code, exit_code


def _settings() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, dict) else {}


def json_mode() -> bool:
    return bool(_settings().get("json"))


def quiet_mode() -> bool:
    return bool(_settings().get("quiet"))


def json_in_argv(argv: Sequence[str] | None = None) -> bool:
    """``--json`` among the arguments: an error may come before click has parsed them."""
    args = list((CasstoreGroup.argv if CasstoreGroup.argv is not None else sys.argv[1:]) if argv is None else argv)
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def stdin_is_terminal() -> bool:
    """Whether a confirmation can be asked (tests replace this)."""
    return sys.stdin.isatty()


def emit(document: dict[str, Any], render: Callable[[], None]) -> None:
    """Print ``document`` as JSON under ``--json``, else call ``render`` for the human form."""
    if json_mode():
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        render()


def say(message: str) -> None:
    """Chatter for people: silent under ``--quiet`` and ``--json``."""
    if not (quiet_mode() or json_mode()):
        out.print(message, highlight=False, soft_wrap=True)


def _report_error(code: str, message: str, as_json: bool | None = None, **extra: Any) -> None:
    if json_mode() if as_json is None else as_json:
        click.echo(json.dumps({"error": {"code": code, "message": message, **extra}}, ensure_ascii=False), err=True)
    else:  # one line, ending in its code as docs/errors.md promises
        shown = message if message.endswith(f"[{code}]") else f"{message} [{code}]"
        err.print(f"[bold red]error:[/] {escape(shown)}", highlight=False, soft_wrap=True, markup=True)


def fail(message: str, code: str = "ERROR", exit_code: int = 1) -> NoReturn:
    """Report an error the user caused, in one line, and exit ``exit_code``."""
    raise CliError(message, code, exit_code)


@contextmanager
def committing(what: str) -> Iterator[None]:
    """Mark the one write of a single-write verb, so Ctrl-C can say whether it had committed."""
    state = _settings()
    state["write"] = ("writing", what)
    yield
    state["write"] = ("committed", what)


def _interrupted(partial: str | None) -> None:
    phase, what = _settings().get("write", ("pending", ""))
    committed: bool | None
    if partial is not None:
        message, committed = f"interrupted: {partial}", None
    elif phase == "committed":
        message, committed = f"interrupted after the write had committed ({what})", True
    elif phase == "writing":
        message = f"interrupted during the write ({what}): it committed whole or not at all; look before retrying"
        committed = None
    else:
        message, committed = "interrupted: nothing was committed", False
    _report_error("INTERRUPTED", message, committed=committed)
    sys.exit(EXIT_INTERRUPTED)


def verb(
    example: str,
    *,
    name: str | None = None,
    group: click.Group | None = None,
    partial: str | None = None,
) -> Callable[[F], click.Command]:
    """A verb: a click command with ``--json``, an example in its help and one-line errors.

    ``partial`` is what Ctrl-C leaves behind for a verb of several writes (else a verb has at most
    one, marked with :func:`committing`, or only reads).
    """

    def decorate(fn: F) -> click.Command:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs.pop("json_output", False):
                click.get_current_context().find_root().ensure_object(dict)["json"] = True
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                _interrupted(partial)
            except click.Abort:  # a prompt interrupted
                _interrupted(partial)
            except CliError as exc:
                _report_error(exc.code, exc.message)
                sys.exit(exc.exit_code)
            except StorageError as exc:
                _report_error(exc.code, str(exc))
                sys.exit(1)
            except (OSError, ValueError) as exc:
                _report_error("OS_ERROR" if isinstance(exc, OSError) else "INVALID_INPUT", str(exc))
                sys.exit(1)

        epilog = "\b\nExample:\n" + "\n".join(f"  {line}" for line in example.splitlines())
        option = click.option("--json", "json_output", is_flag=True, help="Print one JSON document (see docs/cli.md).")
        decorator = group.command(name, epilog=epilog) if group else click.command(name, epilog=epilog)
        return decorator(option(wrapper))

    return decorate


class CasstoreGroup(click.Group):
    """The top-level group: usage errors and interrupts outside a verb follow ``--json`` and exit codes too."""

    #: The arguments of the run under way (click's test runner passes them without ``sys.argv``).
    argv: list[str] | None = None

    def main(self, args: Sequence[str] | None = None, *pos: Any, **kwargs: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        CasstoreGroup.argv = argv
        standalone = kwargs.pop("standalone_mode", True)
        try:
            return super().main(argv, *pos, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.exceptions.Exit as exc:
            if not standalone:
                raise
            sys.exit(exc.exit_code)
        except CliError as exc:  # raised by the group's own options (--config)
            if not standalone:
                raise
            _report_error(exc.code, exc.message, as_json=json_in_argv(argv))
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            if not standalone:
                raise
            if json_in_argv(argv):
                _report_error("USAGE_ERROR", exc.format_message(), as_json=True)
            else:
                exc.show()
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, click.Abort):
            if not standalone:
                raise
            message = "interrupted: nothing was committed"
            _report_error("INTERRUPTED", message, as_json=json_in_argv(argv), committed=False)
            sys.exit(EXIT_INTERRUPTED)
