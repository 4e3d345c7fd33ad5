"""``python -m casstore``: the ``casstore`` command line."""

from casstore.cli import main

if __name__ == "__main__":
    main(prog_name="casstore")  # so help and shell completion say casstore, not python -m casstore
