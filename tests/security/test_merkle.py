"""RFC 6962 Merkle tree: CT test vectors, a naive reference, and property tests."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from garrison.security import merkle

# The 8-leaf test tree used by Certificate Transparency implementations (RFC 6962 test data).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
# Published roots of the first n leaves of that tree, n = 1..8.
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
SETTINGS = settings(deadline=None, max_examples=60)


def naive_root(entries: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 section 2.1 defines it, recursively over raw entries."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_root(entries[:k]) + naive_root(entries[k:])).digest()


def hashes(entries: list[bytes]) -> list[bytes]:
    return [merkle.leaf_hash(e) for e in entries]


# Unique entries: with repeated leaves, different trees can legitimately share hashes.
entry_lists = st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True)


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == merkle.EMPTY_ROOT
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.Frontier().root() == merkle.EMPTY_ROOT


def test_hash_prefixes_separate_leaves_from_nodes() -> None:
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = b"a" * 32, b"b" * 32
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.leaf_hash(a + b) != merkle.node_hash(a, b)


@pytest.mark.parametrize("n", range(1, 9))
def test_ct_vector_roots(n: int) -> None:
    expected = bytes.fromhex(CT_ROOTS[n - 1])
    assert merkle.root(hashes(CT_LEAVES[:n])) == expected
    assert naive_root(CT_LEAVES[:n]) == expected
    assert merkle.Frontier.from_leaf_hashes(hashes(CT_LEAVES[:n])).root() == expected


def test_ct_vector_inclusion_proofs() -> None:
    # Audit paths from the CT reference test data.
    leaves = hashes(CT_LEAVES)
    cases = [
        (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
        (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
        (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    ]  # fmt: skip
    for index, size, path in cases:
        proof = merkle.inclusion_proof(leaves[:size], index)
        assert [p.hex() for p in proof] == path
        root = bytes.fromhex(CT_ROOTS[size - 1])
        assert merkle.verify_inclusion(leaves[index], index, size, proof, root)


def test_ct_vector_consistency_proofs() -> None:
    leaves = hashes(CT_LEAVES)
    cases = [
        (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
        (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
        (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    ]  # fmt: skip
    for old, new, path in cases:
        proof = merkle.consistency_proof(leaves[:new], old)
        assert [p.hex() for p in proof] == path
        old_root, new_root = bytes.fromhex(CT_ROOTS[old - 1]), bytes.fromhex(CT_ROOTS[new - 1])
        assert merkle.verify_consistency(old, new, old_root, new_root, proof)


def test_proof_arguments_out_of_range_raise() -> None:
    leaves = hashes(CT_LEAVES)
    with pytest.raises(ValueError, match="outside"):
        merkle.inclusion_proof(leaves, 8)
    with pytest.raises(ValueError, match="outside"):
        merkle.consistency_proof(leaves, 9)


def test_trivial_consistency_cases() -> None:
    leaves = hashes(CT_LEAVES)
    r = merkle.root(leaves)
    assert merkle.consistency_proof(leaves, 8) == []
    assert merkle.consistency_proof(leaves, 0) == []
    assert merkle.verify_consistency(8, 8, r, r, [])
    assert not merkle.verify_consistency(8, 8, r, merkle.EMPTY_ROOT, [])
    assert merkle.verify_consistency(0, 8, merkle.EMPTY_ROOT, r, [])
    assert not merkle.verify_consistency(0, 8, r, r, [])
    assert not merkle.verify_consistency(5, 4, r, r, [])
    assert not merkle.verify_consistency(3, 8, r, r, [])


def test_frontier_round_trips_through_hex() -> None:
    f = merkle.Frontier.from_leaf_hashes(hashes(CT_LEAVES[:7]))
    assert len(f.to_hex()) == 3  # 7 = 4 + 2 + 1
    g = merkle.Frontier.from_hex(f.size, f.to_hex())
    assert g == f
    assert g.root() == bytes.fromhex(CT_ROOTS[6])
    g.append(merkle.leaf_hash(CT_LEAVES[7]))
    assert g.root() == bytes.fromhex(CT_ROOTS[7])
    assert f.size == 7  # from_hex made an independent copy
    with pytest.raises(ValueError, match="needs 3 roots"):
        merkle.Frontier.from_hex(7, f.to_hex()[:2])


@SETTINGS
@given(entry_lists)
def test_frontier_root_equals_recursive_root_at_every_size(entries: list[bytes]) -> None:
    frontier = merkle.Frontier()
    for i, entry in enumerate(entries, start=1):
        frontier.append(merkle.leaf_hash(entry))
        assert frontier.size == i
        assert frontier.root() == naive_root(entries[:i]) == merkle.root(hashes(entries[:i]))


@SETTINGS
@given(entry_lists, st.data())
def test_every_inclusion_proof_verifies_and_tampering_fails(
    entries: list[bytes], data: st.DataObject
) -> None:
    leaves = hashes(entries)
    n = len(leaves)
    r = naive_root(entries)
    index = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(leaves, index)
    assert merkle.InclusionProof(index, n, leaves[index], tuple(proof)).verify(r)
    # Wrong leaf, index past the end, wrong root, altered or padded path: all refused.
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"forged"), index, n, proof, r)
    assert not merkle.verify_inclusion(leaves[index], n, n, proof, r)
    assert not merkle.verify_inclusion(leaves[index], index, n, proof, merkle.EMPTY_ROOT)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 1]) + proof[i][1:]
        assert not merkle.verify_inclusion(leaves[index], index, n, flipped, r)
        assert not merkle.verify_inclusion(leaves[index], index, n, proof[:-1], r)
    assert not merkle.verify_inclusion(leaves[index], index, n, [*proof, r], r)


@SETTINGS
@given(entry_lists, st.data())
def test_every_consistency_proof_verifies_and_tampering_fails(
    entries: list[bytes], data: st.DataObject
) -> None:
    leaves = hashes(entries)
    n = len(leaves)
    m = data.draw(st.integers(0, n))
    old_root, new_root = naive_root(entries[:m]), naive_root(entries)
    proof = merkle.consistency_proof(leaves, m)
    assert merkle.ConsistencyProof(m, n, tuple(proof)).verify(old_root, new_root)
    if 0 < m < n:
        assert not merkle.verify_consistency(m, n, merkle.leaf_hash(b"x"), new_root, proof)
        assert not merkle.verify_consistency(m, n, old_root, merkle.leaf_hash(b"x"), proof)
        i = data.draw(st.integers(0, len(proof) - 1))
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 1]) + proof[i][1:]
        assert not merkle.verify_consistency(m, n, old_root, new_root, flipped)
        assert not merkle.verify_consistency(m, n, old_root, new_root, proof[:-1])
        assert not merkle.verify_consistency(m, n, old_root, new_root, [*proof, new_root])


@SETTINGS
@given(entry_lists, st.data())
def test_consistency_fails_when_history_is_rewritten(
    entries: list[bytes], data: st.DataObject
) -> None:
    n = len(entries)
    m = data.draw(st.integers(1, n))
    j = data.draw(st.integers(0, m - 1))
    rewritten = [*entries]
    rewritten[j] = entries[j] + b"!"
    proof = merkle.consistency_proof(hashes(rewritten), m)
    # The new tree rewrote an entry inside the old prefix: no proof can link the two heads.
    assert not merkle.verify_consistency(
        m, n, naive_root(entries[:m]), naive_root(rewritten), proof
    )
