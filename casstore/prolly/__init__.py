"""Prolly trees: sorted maps cut into content-defined nodes, so a map is a Merkle root.

Keys are ``str``; values are opaque ``bytes``, which callers guarantee to be the
canonical encoding of one item (such bytes never parse as a CID, so they are
never mistaken for a link).  Node boundaries depend only on the keys, so the
same entries give the same root however they were written (history
independence), an update rewrites only the nodes on the edited paths, and a
diff descends only where digests differ.

Modules, bottom up:

* :mod:`~casstore.prolly.node` — the node format: :class:`Node`, its DAG-CBOR
  encoding (:func:`encode_node`, :func:`decode_node`, :func:`node_kind`), node sizes, :class:`NodeCache`;
* :mod:`~casstore.prolly.chunking` — the chunking rule (``TARGET``, ``MIN``,
  ``MAX``, :class:`Chunker`); part of the on-disk format;
* :mod:`~casstore.prolly.read` — point reads, range and prefix scans, node walks, level cursors;
* :mod:`~casstore.prolly.update` — bulk build and batched updates (:data:`Edit`);
* :mod:`~casstore.prolly.diff` — diff of two roots;
* :mod:`~casstore.prolly.tree` — :class:`ProllyTree`, which loads and stores
  nodes and carries the operations above as its methods.
"""

from casstore.prolly.chunking import DEFAULT_VALUE_HINT, MAX, MIN, TARGET, Chunker
from casstore.prolly.node import Node, NodeCache, decode_node, encode_node, node_kind
from casstore.prolly.read import prefetch_together
from casstore.prolly.tree import ProllyTree
from casstore.prolly.update import Edit

__all__ = [
    "DEFAULT_VALUE_HINT",
    "MAX",
    "MIN",
    "TARGET",
    "Chunker",
    "Edit",
    "Node",
    "NodeCache",
    "ProllyTree",
    "decode_node",
    "encode_node",
    "node_kind",
    "prefetch_together",
]
