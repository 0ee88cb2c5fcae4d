"""A small SWC reader, and the z-monotone paths of a skeleton that a tracing task can follow.

SWC (Cannon et al. 1998; the format of NeuroMorpho.Org, CATMAID, Vaa3D and webKnossos exports) is
a text file with one sample (skeleton node) per line::

    # comments start with '#'
    n  T  x  y  z  R  P

``n`` the sample id (a positive integer, unique), ``T`` the structure type (0 undefined, 1 soma,
2 axon, 3 basal dendrite, 4 apical dendrite, others custom), ``x y z`` the position, ``R`` the
radius (same unit as the position), ``P`` the parent's id (-1 for a root). Samples may come in any
order; columns past the seventh are ignored. A file may hold several trees (several roots).

For a tracing task, a skeleton is cut into *paths* along which z never decreases (the slices a
path crosses are crossed once each): the longest one (``longest``), or every piece of the tree
between branch points and turning points in z (``segments``, disjoint, so no stretch of neurite
lands in two instances).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annobc.importers.common import ImportDataError


@dataclass(frozen=True)
class Skeleton:
    path: Path
    ids: np.ndarray  # (n,) int64 sample ids, in file order
    types: np.ndarray  # (n,) int64
    xyz: np.ndarray  # (n, 3) float64
    radius: np.ndarray  # (n,) float64
    parent: np.ndarray  # (n,) int64: row of the parent, -1 for a root

    def __len__(self) -> int:
        return len(self.ids)

    def neighbours(self) -> list[list[int]]:
        adj: list[list[int]] = [[] for _ in range(len(self))]
        for i, p in enumerate(self.parent.tolist()):
            if p >= 0:
                adj[i].append(p)
                adj[p].append(i)
        return adj


def read_swc(path: str | Path) -> Skeleton:
    """Parse an SWC file; a malformed one raises :class:`ImportDataError` naming file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ImportDataError(f"{path}: no such skeleton file") from None
    except UnicodeDecodeError:
        raise ImportDataError(f"{path}: not a text file (an SWC skeleton is text)") from None
    rows, lines = [], []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 7:
            raise ImportDataError(f"{path} line {no}: an SWC sample has 7 columns (n T x y z R P), "
                                  f"got {len(parts)}")
        try:
            n, t, p = int(parts[0]), int(float(parts[1])), int(float(parts[6]))
            x, y, z, r = (float(v) for v in parts[2:6])
        except ValueError:
            raise ImportDataError(f"{path} line {no}: not numbers: {line[:60]!r}") from None
        if not all(np.isfinite([x, y, z, r])):
            raise ImportDataError(f"{path} line {no}: position or radius is not finite")
        rows.append((n, t, x, y, z, r, p))
        lines.append(no)
    if not rows:
        raise ImportDataError(f"{path}: no samples (an SWC file has lines 'n T x y z R P')")
    a = np.array(rows, dtype=np.float64)
    ids = a[:, 0].astype(np.int64)
    row_of: dict[int, int] = {}
    for i, n in enumerate(ids.tolist()):
        if n in row_of:
            raise ImportDataError(f"{path} line {lines[i]}: sample id {n} appears twice")
        row_of[n] = i
    parent = np.full(len(ids), -1, np.int64)
    for i, p in enumerate(a[:, 6].astype(np.int64).tolist()):
        if p == -1:
            continue
        if p not in row_of:
            raise ImportDataError(f"{path} line {lines[i]}: parent {p} of sample {ids[i]} is not "
                                  f"in the file")
        parent[i] = row_of[p]
    # Every chain of parents must end at a root (no cycles).
    state = np.zeros(len(ids), np.int8)  # 0 unseen, 1 on the current chain, 2 reaches a root
    for i in range(len(ids)):
        chain = []
        j = i
        while j >= 0 and state[j] == 0:
            state[j] = 1
            chain.append(j)
            j = int(parent[j])
        if j >= 0 and state[j] == 1:
            raise ImportDataError(f"{path} line {lines[j]}: the parents of sample {ids[j]} form a "
                                  f"cycle")
        state[chain] = 2
    return Skeleton(path, ids, a[:, 1].astype(np.int64), a[:, 2:5].copy(), a[:, 5].copy(), parent)


# -- paths -------------------------------------------------------------------------------------------
def _key(zs: np.ndarray, i: int) -> tuple[float, int]:
    return (float(zs[i]), i)


def longest_path(sk: Skeleton, zs: np.ndarray) -> list[int]:
    """The rows of the path through the tree along which z never decreases that spans the most z
    (ties: the one starting at the lowest row). ``zs``: each sample's z in slices."""
    adj = sk.neighbours()
    n = len(sk)
    order = sorted(range(n), key=lambda i: _key(zs, i), reverse=True)
    span = np.zeros(n)
    nxt = np.full(n, -1, np.int64)
    for i in order:  # from the top down: span[i] = best z gained going up from i
        best, arg = 0.0, -1
        for j in sorted(adj[i]):
            if _key(zs, j) > _key(zs, i):
                s = zs[j] - zs[i] + span[j]
                if s > best + 1e-12 or (arg < 0 and s >= best):
                    best, arg = s, j
        span[i], nxt[i] = best, arg
    start = int(np.argmax(span))
    path = [start]
    while nxt[path[-1]] >= 0:
        path.append(int(nxt[path[-1]]))
    return path


def segments(sk: Skeleton, zs: np.ndarray) -> list[list[int]]:
    """The tree cut at branch points and at turning points in z into pieces along which z never
    decreases, each listed from its low end (pieces share at most their end samples)."""
    adj = sk.neighbours()
    cuts = {i for i, a in enumerate(adj) if len(a) != 2}
    chains, seen = [], set()
    for c in sorted(cuts):
        for j in sorted(adj[c]):
            if (c, j) in seen:
                continue
            chain = [c, j]
            while chain[-1] not in cuts:
                a, b = adj[chain[-1]]
                chain.append(b if a == chain[-2] else a)
            seen.add((chain[-1], chain[-2]))
            chains.append(chain)
    out = []
    for chain in chains:
        for piece in _monotone_pieces(chain, zs):
            if _key(zs, piece[-1]) < _key(zs, piece[0]):
                piece.reverse()
            out.append(piece)
    return sorted(out, key=lambda ch: (ch[0], ch[-1]))


def _monotone_pieces(chain: list[int], zs: np.ndarray) -> list[list[int]]:
    """A chain cut where z turns (flat runs go with the piece before them)."""
    pieces, cur, d = [], [chain[0]], 0
    for k in chain[1:]:
        s = int(np.sign(zs[k] - zs[cur[-1]]))
        if s and d and s != d:
            pieces.append(cur)
            cur, d = [cur[-1]], 0
        d = d or s
        cur.append(k)
    pieces.append(cur)
    return pieces


def slice_crossings(xyz: np.ndarray, radius: np.ndarray, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Where a path (rows with non-decreasing z) crosses each whole slice from ceil(z first) to
    floor(z last): (zs (m,) int, (m, 3) x, y, radius interpolated along the path). Where the path
    runs flat at a slice, the first sample there counts."""
    p, r = xyz[rows], radius[rows]
    z = p[:, 2]
    keep = np.concatenate([[True], np.diff(z) > 0])  # first sample of each flat run
    z, p, r = z[keep], p[keep], r[keep]
    zs = np.arange(int(np.ceil(z[0] - 1e-9)), int(np.floor(z[-1] + 1e-9)) + 1)
    if len(z) == 1:
        return zs, np.column_stack([np.full(len(zs), p[0, 0]), np.full(len(zs), p[0, 1]),
                                    np.full(len(zs), r[0])])
    return zs, np.column_stack([np.interp(zs, z, p[:, 0]), np.interp(zs, z, p[:, 1]),
                                np.interp(zs, z, r)])
