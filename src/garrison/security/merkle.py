"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and an incremental frontier.

This is the hashing behind the audit log (ARCHITECTURE section 3): every audit event's canonical
bytes are one leaf, and a signed checkpoint commits to the tree head (size + root). The
algorithms follow Certificate Transparency exactly, so the log can be checked with any CT
tooling and against the published CT test vectors:

- leaf hash ``SHA-256(0x00 || entry)``, interior node ``SHA-256(0x01 || left || right)``; the
  distinct prefixes stop a leaf from being passed off as an interior node (second preimages);
- the root of ``n > 1`` leaves splits at ``k``, the largest power of two below ``n``;
  the root of the empty tree is ``SHA-256(b"")``;
- inclusion (audit) proofs and consistency proofs, generated per RFC 6962 section 2.1 and
  verified with the RFC 9162 section 2.1.3.2 / 2.1.4.2 algorithms.

Functions take *leaf hashes* (not entries) so callers hash each entry once. Everything here is
pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EMPTY_ROOT",
    "ConsistencyProof",
    "Frontier",
    "InclusionProof",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

#: Root of the tree with no leaves: SHA-256 of the empty string (RFC 6962 section 2.1).
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 6962 hash of one leaf entry: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH of ``hashes[start:end]`` (non-empty), without copying slices."""
    n = end - start
    if n == 1:
        return hashes[start]
    k = _split(n)
    return node_hash(_subtree_root(hashes, start, start + k), _subtree_root(hashes, start + k, end))


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree head (MTH) of the given leaf hashes; ``EMPTY_ROOT`` for none."""
    if not leaf_hashes:
        return EMPTY_ROOT
    return _subtree_root(leaf_hashes, 0, len(leaf_hashes))


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path proving leaf ``index`` (0-based) is in the tree of ``leaf_hashes``.

    The path is ordered from the leaf's sibling up to the child of the root (RFC 6962 PATH).
    Raises ``ValueError`` when ``index`` is outside the tree.
    """
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of {n} leaves")
    path: list[bytes] = []
    start, end, m = 0, n, index
    # Walk down from the root, collecting the sibling subtree at each level; the RFC's
    # recursion appends siblings on the way back up, so reverse at the end.
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            path.append(_subtree_root(leaf_hashes, start + k, end))
            end = start + k
        else:
            path.append(_subtree_root(leaf_hashes, start, start + k))
            start, m = start + k, m - k
    path.reverse()
    return path


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root_hash: bytes
) -> bool:
    """Return whether ``path`` proves leaf hash ``leaf`` is at ``index`` in the tree ``root_hash``.

    Implements RFC 9162 section 2.1.3.2; never raises on malformed proofs, it returns False.
    """
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # A right-edge node with no right sibling is promoted unchanged: skip levels.
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return the proof that the first ``old_size`` leaves form a prefix of ``leaf_hashes``.

    RFC 6962 section 2.1.2 PROOF(m, D[n]). The proof is empty when ``old_size`` is 0 or equals
    the tree size (both trivially consistent). Raises ``ValueError`` when ``old_size`` is
    negative or larger than the tree.
    """
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise ValueError(f"old size {old_size} is outside 0..{n}")
    if old_size in (0, n):
        return []
    proof: list[bytes] = []
    start, end, m = 0, n, old_size
    # ``complete`` is the RFC's flag b: true while the old tree is the left edge of this subtree,
    # in which case its root is known to the verifier and need not be sent.
    complete = True
    # Iterative SUBPROOF: each step appends one sibling; the RFC's recursion emits the deepest
    # node first, so collect top-down and reverse.
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            proof.append(_subtree_root(leaf_hashes, start + k, end))
            end = start + k
        else:
            proof.append(_subtree_root(leaf_hashes, start, start + k))
            start, m = start + k, m - k
            complete = False
    if not complete:
        proof.append(_subtree_root(leaf_hashes, start, end))
    proof.reverse()
    return proof


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Return whether ``proof`` shows the tree ``old_root`` (size ``old_size``) is a prefix of
    the tree ``new_root`` (size ``new_size``).

    Implements RFC 9162 section 2.1.4.2, plus the trivial cases: equal sizes need equal roots
    and an empty proof; an empty old tree needs ``old_root == EMPTY_ROOT`` and an empty proof.
    Never raises on malformed proofs, it returns False.
    """
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect left subtree of the new one, so its root is the start node.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


@dataclass(frozen=True)
class InclusionProof:
    """Proof that one leaf (``index``, 0-based) is in the tree of ``size`` leaves."""

    index: int
    size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]

    def verify(self, root_hash: bytes) -> bool:
        """Return whether this proof places ``leaf_hash`` in the tree with root ``root_hash``."""
        return verify_inclusion(self.leaf_hash, self.index, self.size, self.path, root_hash)


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``old_size`` leaves is a prefix of the tree of ``new_size``."""

    old_size: int
    new_size: int
    path: tuple[bytes, ...]

    def verify(self, old_root: bytes, new_root: bytes) -> bool:
        """Return whether this proof links the trees with roots ``old_root`` and ``new_root``."""
        return verify_consistency(self.old_size, self.new_size, old_root, new_root, self.path)


class Frontier:
    """The roots of the perfect subtrees that make up a tree: O(log n) append and root.

    A tree of ``n`` leaves is a left-to-right sequence of perfect subtrees, one per set bit of
    ``n`` (largest first). Folding their roots from the right yields exactly the RFC 6962 MTH,
    because MTH always splits off the largest perfect subtree on the left. Keeping only these
    roots lets the audit log append without re-reading earlier events.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        """Build a frontier from its size and subtree roots (largest subtree first).

        Raises ``ValueError`` when the number of roots does not match the size's set bits.
        """
        if size < 0 or len(nodes) != size.bit_count():
            raise ValueError(f"a frontier of size {size} needs {max(size, 0).bit_count()} roots")
        if any(len(node) != 32 for node in nodes):
            raise ValueError("frontier roots must be 32-byte SHA-256 digests")
        self._size = size
        self._nodes = list(nodes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        """The perfect-subtree roots, largest subtree first."""
        return tuple(self._nodes)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash (``leaf_hash(entry)``), merging equal-sized subtrees."""
        h = leaf
        s = self._size
        # Each trailing 1-bit of the old size is a perfect subtree the same size as the one being
        # carried; merge them like binary addition carries.
        while s & 1:
            h = node_hash(self._nodes.pop(), h)
            s >>= 1
        self._nodes.append(h)
        self._size += 1

    def root(self) -> bytes:
        """Return the current tree head (MTH), equal to ``root(all leaf hashes)``."""
        if not self._nodes:
            return EMPTY_ROOT
        r = self._nodes[-1]
        for node in reversed(self._nodes[:-1]):
            r = node_hash(node, r)
        return r

    def copy(self) -> Frontier:
        """Return an independent copy."""
        return Frontier(self._size, self._nodes)

    def to_hex(self) -> list[str]:
        """Serialize the subtree roots as hex strings (the size is stored beside them)."""
        return [node.hex() for node in self._nodes]

    @classmethod
    def from_hex(cls, size: int, nodes: Sequence[str]) -> Frontier:
        """Rebuild a frontier from ``size`` and ``to_hex()`` output; ``ValueError`` if malformed."""
        return cls(size, [bytes.fromhex(node) for node in nodes])

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Sequence[bytes]) -> Frontier:
        """Build the frontier of a tree from all its leaf hashes."""
        frontier = cls()
        for leaf in leaf_hashes:
            frontier.append(leaf)
        return frontier

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._nodes == other._nodes

    def __hash__(self) -> int:
        return hash((self._size, tuple(self._nodes)))

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"
