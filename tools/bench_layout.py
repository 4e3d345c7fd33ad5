"""The layout benchmark (#16): the seed's directory layout of the 100,000-contact workload, against naive writes.

Workload: ``tools/bench_network.py``'s (1,000 groups of 100 contacts, 0.5% large
contents, ~100 wires per group) in a ``filesystem://`` store.  Figures, each
with its same-run baseline:

* ``layout_full_write_s``: the first write of the tree (state read from the
  store, every file rendered and written atomically, the bookkeeping saved);
  ``naive_full_write_s``: the same files' documents (built from the in-memory
  state) written with one ``json.dump`` each (``indent=2, sort_keys=True``);
  the naive files are flushed (``syncfs``, untimed) before the layout's write, whose own
  ``syncfs`` would otherwise write them back too, and written once before the layout's
  write and once after it (``naive_full_write_s_before_after``; the figure is their mean:
  file creation here swings with the disk's background writeback and discards, by 2x and
  more within a run, so one baseline write alone may land in a fast or a slow moment).
* ``layout_step_s``: after a 1% step (one batch of 1,000 content changes), the
  tree brought in step (diff, render, write, syncfs, bookkeeping); ``naive_step_write_s``:
  the same 1,000 contact files plus ``metadata.json`` written naively (each the
  minimum of its rounds, the two measured one after the other in each round,
  each after a ``syncfs`` so that neither pays for the writes before it, e.g.
  the last round's undurable step);
  ``layout_step_nosync_s``: another such step without the ``syncfs`` that makes
  it durable (``?fsync=off``); ``syncfs`` flushes the whole filesystem, so on a
  shared machine it also pays for other processes' writes.
  ``layout_step_cpu_s``: the CPU time of the fastest durable step (the rest of its wall time is
  waiting: the ``syncfs``, the disk, other processes).
  ``edit_check_s``: the scan for hand edits a write makes first (stat of every file).
* ``barrier_syncfs_s`` and ``barrier_fsync_files_s``: the two ways to make a step durable, each
  after the same 1,001 files were written naively: one ``syncfs`` of the filesystem, or an
  ``fsync`` of every file and of every directory holding one (the minimum of the rounds).
* ``commit_step_s``: ``commit`` of 1,000 hand-edited contact files (status, read,
  one batch, the tree refreshed), the edits written in canonical form (as a
  script or ``git pull`` writes them: kept, not rewritten), after the git
  repository's objects were flushed (one ``syncfs`` first, so that the commit's
  does not pay for git's writes);
  ``commit_step_reformatted_s``: the same with the edits written compactly (as
  an editor might), so that commit rewrites all 1,000 files in canonical form.
* ``status_s``: ``status`` on the unchanged tree (102,001 files at the default
  size), in the process that wrote it; ``status_cli_s``: ``casstore status`` in a
  new process (Python start, store open, bookkeeping load, scan);
  ``git_status_s``: ``git status`` on the same tree in a repository (also a new
  process); the minimum of rounds, ``status`` and ``git status`` interleaved.

    python tools/bench_layout.py [--contacts 100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_network import emit, make_state, small_value

from casstore import open_store
from casstore.layout.edits import commit, filesystem_store
from casstore.layout.keeper import bring_in_step, layout_state, network_status
from casstore.layout.render import (
    attributes_doc,
    contact_doc,
    contact_path,
    group_dir,
    metadata_doc,
    network_dir,
    structure_doc,
)
from casstore.layout.writer import sync_filesystem
from casstore.model import NetworkState
from casstore.store import filesystem

#: Rounds of the step and status measurements (the minimum is reported: the machine may be shared).
ROUNDS = 3


def naive_docs(state: NetworkState, network_id: str) -> dict[str, Any]:
    docs: dict[str, Any] = {}
    for gid, group_state in state.groups.items():
        docs[f"{group_dir(gid)}/structure.json"] = structure_doc(group_state)
        docs[f"{group_dir(gid)}/attributes.json"] = attributes_doc(group_state)
        for cid, contact in group_state.contacts.items():
            docs[contact_path(gid, cid)] = contact_doc(contact)
    docs["metadata.json"] = metadata_doc(network_id, state, "root")
    return docs


def naive_write(root: Path, docs: dict[str, Any]) -> None:
    made: set[Path] = set()
    for rel, doc in docs.items():
        path = root / rel
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=2, sort_keys=True, ensure_ascii=False)
            handle.write("\n")


def fsync_files(root: Path, docs: dict[str, Any]) -> None:
    """``fsync`` every file and every directory holding one (the other way to make them durable)."""
    for path in [root / rel for rel in docs] + sorted({(root / rel).parent for rel in docs}):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Quiet:
    """Hooks that do nothing: a write without its tree update (timed apart)."""

    def opened(self, store: Any) -> None: ...

    def before_moves(self, store: Any, names: Any) -> None: ...

    def after_moves(self, store: Any, names: Any) -> None: ...

    def closing(self, store: Any) -> None: ...


@contextmanager
def quiet() -> Iterator[None]:
    saved = filesystem._hooks
    filesystem._hooks = _Quiet()
    try:
        yield
    finally:
        filesystem._hooks = saved


def canonical_dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def run(contacts: int, workdir: Path) -> dict[str, Any]:
    state = make_state(contacts)
    rnd = random.Random(7)
    out: dict[str, Any] = {"contacts": contacts}

    naive_before, _ = timed(lambda: naive_write(workdir / "naive", naive_docs(state, "main")))

    base = workdir / "fs"
    store = open_store(f"filesystem://{base}")
    fs = filesystem_store(store)
    with quiet():  # the import without its tree update, which is timed alone
        store.save_network_state("main", state)
    sync_filesystem(str(base))  # the naive files flushed first: else the layout's syncfs pays for them
    out["layout_full_write_s"], _ = timed(bring_in_step, fs, "main")
    # the naive write again, after the layout's (into a directory of its own): file creation here swings with the
    # disk's background work, so the baseline is the mean of one write before and one after
    sync_filesystem(str(base))
    naive_after, _ = timed(lambda: naive_write(workdir / "naive-after", naive_docs(state, "main")))
    out["naive_full_write_s"] = (naive_before + naive_after) / 2
    out["naive_full_write_s_before_after"] = [round(naive_before, 3), round(naive_after, 3)]
    sync_filesystem(str(base))
    root = base / network_dir("main")
    out["files"] = sum(1 for _ in root.rglob("*.json"))

    # 1% steps: the write (hooks quiet), then the tree brought in step, timed apart; each round also writes the
    # same files naively (the baseline), and one round of each kind runs without the syncfs; minimum of the rounds
    cids = [(gid, cid) for gid, gs in state.groups.items() for cid in gs.contacts]
    out["edit_check_s"], _ = timed(network_status, fs, "main")
    naive_write(workdir / "naive", naive_docs(state, "main"))
    steps: dict[str, list[float]] = {
        "layout_step_s": [],
        "layout_step_nosync_s": [],
        "naive_step_write_s": [],
        "barrier_syncfs_s": [],
        "barrier_fsync_files_s": [],
    }
    cpu: dict[float, float] = {}
    for durable in (True, False) * ROUNDS:
        changed = rnd.sample(cids, contacts // 100)
        with quiet(), store.batch("main") as batch:
            for gid, cid in changed:
                batch.save_contact_content("main", gid, cid, small_value(rnd))
        layout_state(fs).durable = durable
        sync_filesystem(str(base))  # each timed write starts with nothing pending (the last round's writes)
        started = time.process_time()
        took, written = timed(bring_in_step, fs, "main")
        if durable:
            cpu[took] = time.process_time() - started
        steps["layout_step_s" if durable else "layout_step_nosync_s"].append(took)
        out["layout_step_files"] = written
        step_state = store.load_network_state("main")
        assert step_state is not None
        docs = {contact_path(g, c): contact_doc(step_state.groups[g].contacts[c]) for g, c in changed}
        docs["metadata.json"] = metadata_doc("main", step_state, "root")
        sync_filesystem(str(base))
        steps["naive_step_write_s"].append(timed(naive_write, workdir / "naive", docs)[0])
        if durable:  # the same files made durable each way, after writing them again
            steps["barrier_fsync_files_s"].append(timed(fsync_files, workdir / "naive", docs)[0])
            naive_write(workdir / "naive", docs)
            steps["barrier_syncfs_s"].append(timed(sync_filesystem, str(workdir / "naive"))[0])
    layout_state(fs).durable = True
    out.update({name: min(times) for name, times in steps.items()})
    out["layout_step_cpu_s"] = cpu[out["layout_step_s"]]
    # the whole API step as a user sees it: the hand-edit scan, the write, the tree update
    again = rnd.sample(cids, contacts // 100)
    start = time.perf_counter()
    with store.batch("main") as batch:
        for gid, cid in again:
            batch.save_contact_content("main", gid, cid, small_value(rnd))
    out["api_step_s"] = time.perf_counter() - start

    subprocess.run(["git", "init", "-q", str(base)], check=True)
    # no automatic gc: `git commit` of ~100,000 loose objects would start one detached, still writing into
    # .git (and loading the machine) while the next figures are taken and the directory is removed
    subprocess.run(["git", "-C", str(base), "config", "gc.auto", "0"], check=True)
    (base / ".gitignore").write_text(".casstore/\n")
    subprocess.run(["git", "-C", str(base), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(base), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "t"], check=True
    )
    # git's ~100,000 new objects flushed now: else the next syncfs (the first commit's) pays for them
    sync_filesystem(str(base))
    mine, gits = [], []
    for _ in range(ROUNDS):  # interleaved, so that both meet the same load; the minimum of each
        took, status = timed(network_status, fs, "main")
        assert not status, status
        mine.append(took)
        start = time.perf_counter()
        subprocess.run(["git", "-C", str(base), "status", "--porcelain"], check=True, capture_output=True)
        gits.append(time.perf_counter() - start)
    out["status_s"], out["git_status_s"] = min(mine), min(gits)
    store.close()
    cli = [sys.executable, "-c", "from casstore.cli import main; main()", "--json"]
    cli += ["--store", f"filesystem://{base}", "status", "main"]
    # bytecode cached (in the temp directory) as for an installed package, and one run first to cache it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    subprocess.run(cli, check=True, capture_output=True, env=env)
    clis = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        listed = subprocess.run(cli, check=True, capture_output=True, text=True, env=env).stdout
        clis.append(time.perf_counter() - start)
        assert json.loads(listed)["networks"]["main"]["modified"] == [], listed
    out["status_cli_s"] = min(clis)
    store = open_store(f"filesystem://{base}")
    fs = filesystem_store(store)
    network_status(fs, "main")  # the bookkeeping loaded, as in the process that wrote the tree

    # 1,000 hand-edited contact files, committed: written canonically, then compactly
    for name, dump in (("commit_step_s", canonical_dump), ("commit_step_reformatted_s", json.dumps)):
        for gid, cid in rnd.sample(cids, 1000):
            path = root / contact_path(gid, cid)
            doc = json.loads(path.read_text())
            doc["content"] = {"edited": rnd.random()}
            path.write_text(dump(doc) + "\n")
        out[name], report = timed(commit, store, "main")
        assert len(report.paths) == 1000 and not network_status(fs, "main")
    store.close()

    out["targets"] = {
        "layout_full_write_s <= 1.2 x naive": out["layout_full_write_s"] <= 1.2 * out["naive_full_write_s"],
        "layout_step_s <= 0.3": out["layout_step_s"] <= 0.3,
        "layout_step_s <= 2 x naive step": out["layout_step_s"] <= 2 * out["naive_step_write_s"],
        "commit_step_s <= 0.5": out["commit_step_s"] <= 0.5,
        "commit_step_reformatted_s <= 0.5": out["commit_step_reformatted_s"] <= 0.5,
        "status_s <= 1": out["status_s"] <= 1.0,
        "status_cli_s <= 1": out["status_cli_s"] <= 1.0,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-layout-") as tmp:
        emit(run(args.contacts, Path(tmp)), args.json)


if __name__ == "__main__":
    main()
