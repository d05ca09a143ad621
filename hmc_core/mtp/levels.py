"""Generate MTP basis definitions by level (MLIP's level scheme), as :class:`MomentBasis` lists.

Levels (Shapeev 2016; MLIP): the moment tensor M_{μ,ν} has level 2 + 4μ + ν; a basis function is a
complete contraction of a product of moment tensors, and its level is the sum of the factors' levels.
The basis of level L holds every such scalar of level ≤ L built from at most ``max_factors = 4``
tensors, with μ ≤ 5 and ν ≤ 10 (the MLIP templates' choices: level 10 has 16 functions and lacks
M_{0,0}^5; level 26 lacks M_{6,0} and M_{0,11}·M_{0,11}), counted once
per distinct contraction pattern. A pattern is a multigraph: vertices are the factors (degree = rank ν),
edge multiplicity = number of index pairs contracted between two factors, no self-loops (traces of a
moment tensor reduce to lower moments, |u| = 1); disconnected graphs are products of scalars.

The generated lists define the same functions as the MLIP templates (tests compare values one to one
with the fixtures' levels 2 … 20), in pesflow's own order of moments and contractions.
Contractions are evaluated factor by factor: intermediate tensors keep, per factor with free indices,
one symmetric block, and products of identical sub-patterns are computed once.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from math import factorial

import numpy as np

from hmc_core.mtp.basis import MomentBasis

MAX_LEVEL = 28
MAX_FACTORS = 4  # tensors per basis function
MAX_MU = 5  # radial functions 0..5 (MLIP's level-26 template has no M_{6,0})
MAX_NU = 10  # tensor rank ≤ 10 (MLIP's level-26 template has no M_{0,11})


def moment_level(mu: int, nu: int) -> int:
    return 2 + 4 * mu + nu


def _components(rank: int) -> list[tuple[int, int, int]]:
    """Components (a, b, c), a + b + c = rank, in MLIP order (a descending, then b descending)."""
    return [(a, b, rank - a - b) for a in range(rank, -1, -1) for b in range(rank - a, -1, -1)]


def _multinomial(k: tuple[int, int, int]) -> int:
    return factorial(sum(k)) // (factorial(k[0]) * factorial(k[1]) * factorial(k[2]))


def _edge_matrices(ranks: tuple[int, ...]):
    """All symmetric zero-diagonal non-negative integer matrices with row sums ``ranks``."""
    n = len(ranks)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    left = list(ranks)
    e = {}

    def rec(p):
        if p == len(pairs):
            if all(v == 0 for v in left):
                yield dict(e)
            return
        i, j = pairs[p]
        # Remaining pairs touching i after this one; the last pair of row i must close it.
        for k in range(min(left[i], left[j]), -1, -1):
            left[i] -= k
            left[j] -= k
            e[(i, j)] = k
            yield from rec(p + 1)
            left[i] += k
            left[j] += k

    yield from rec(0)


def _canonical(types: tuple, edges: dict) -> tuple:
    """Canonical form of a typed multigraph (types sorted; minimal edge tuple over type-preserving perms)."""
    n = len(types)
    best = None
    for perm in itertools.permutations(range(n)):
        if any(types[perm[i]] != types[i] for i in range(n)):
            continue
        key = tuple(edges.get((min(perm[i], perm[j]), max(perm[i], perm[j])), 0)
                    for i in range(n) for j in range(i + 1, n))
        if best is None or key < best:
            best = key
    return (types, best)


def contraction_graphs(level: int, max_factors: int = MAX_FACTORS, max_mu: int = MAX_MU,
                       max_nu: int = MAX_NU) -> list[tuple]:
    """Distinct contraction patterns (types, edges) of level ≤ ``level``, sorted by (level, factors, types)."""
    types_all = sorted((mu, nu) for mu in range(max_mu + 1) for nu in range(max_nu + 1)
                       if moment_level(mu, nu) <= level)
    found = {}
    for n in range(1, max_factors + 1):
        for combo in itertools.combinations_with_replacement(types_all, n):
            lev = sum(moment_level(*t) for t in combo)
            if lev > level or sum(t[1] for t in combo) % 2:
                continue
            for edges in _edge_matrices(tuple(t[1] for t in combo)):
                canon = _canonical(combo, edges)
                found.setdefault(canon, lev)
    return sorted(found, key=lambda g: (found[g], len(g[0]), g))


def _graph_level(graph) -> int:
    return sum(moment_level(*t) for t in graph[0])


def _edge(graph, i, j) -> int:
    if i == j:
        return 0
    i, j = min(i, j), max(i, j)
    n = len(graph[0])
    index = [(a, b) for a in range(n) for b in range(a + 1, n)].index((i, j))
    return graph[1][index]


def _connected_parts(graph) -> list[tuple]:
    """Split a graph into connected components, each in canonical form."""
    types, _ = graph
    n = len(types)
    seen, parts = set(), []
    for s in range(n):
        if s in seen:
            continue
        stack, comp = [s], []
        seen.add(s)
        while stack:
            v = stack.pop()
            comp.append(v)
            for w in range(n):
                if w not in seen and _edge(graph, v, w) > 0:
                    seen.add(w)
                    stack.append(w)
        comp.sort()
        sub_types = tuple(types[v] for v in comp)
        sub_edges = {(a, b): _edge(graph, comp[a], comp[b]) for a in range(len(comp)) for b in range(a + 1, len(comp))}
        parts.append(_canonical(sub_types, sub_edges))
    return sorted(parts)


class _Builder:
    """Accumulates moments (basic first) and contraction rows, memoising shared intermediates."""

    def __init__(self, basic_types: list[tuple[int, int]]):
        self.basic = []
        self.basic_index = {}
        for mu, nu in sorted(basic_types):
            for comp in _components(nu):
                self.basic_index[(mu, nu, comp)] = len(self.basic)
                self.basic.append((mu, *comp))
        self.n_moments = len(self.basic)
        self.rows = []
        self.memo = {}

    def _new(self) -> int:
        self.n_moments += 1
        return self.n_moments - 1

    def tensor_of_basic(self, mu, nu):
        """A tensor: (blocks ranks, {per-block components tuple: moment index})."""
        return ((nu,), {(comp,): self.basic_index[(mu, nu, comp)] for comp in _components(nu)})

    def contract(self, key, acc, vertex_type, ks):
        """Contract accumulated tensor ``acc`` with basic tensor ``vertex_type``: ks[b] indices with block b."""
        if key in self.memo:
            return self.memo[key]
        ranks, comps = acc
        mu, nu = vertex_type
        free_v = nu - sum(ks)
        new_ranks = tuple(r - k for r, k in zip(ranks, ks, strict=True) if r - k > 0)
        keep = [b for b, (r, k) in enumerate(zip(ranks, ks, strict=True)) if r - k > 0]
        out_ranks = new_ranks + ((free_v,) if free_v > 0 else ())
        out = {}
        kappa_lists = [_components(k) for k in ks]
        for free in itertools.product(*[_components(r) for r in out_ranks]):
            t = self._new()
            out[free] = t
            free_blocks = dict(zip(keep, free[: len(keep)], strict=True))
            fv = free[len(keep)] if free_v > 0 else (0, 0, 0)
            rows = {}
            for kappas in itertools.product(*kappa_lists):
                mult = 1
                a_comp = []
                v_comp = list(fv)
                for b in range(len(ranks)):
                    kap = kappas[b]
                    mult *= _multinomial(kap)
                    base = free_blocks.get(b, (0, 0, 0))
                    a_comp.append((base[0] + kap[0], base[1] + kap[1], base[2] + kap[2]))
                    for x in range(3):
                        v_comp[x] += kap[x]
                p = comps[tuple(a_comp)]
                q = self.basic_index[(mu, nu, tuple(v_comp))]
                rows[(p, q)] = rows.get((p, q), 0) + mult
            for (p, q), mult in rows.items():
                self.rows.append((p, q, mult, t))
        result = (out_ranks, out)
        self.memo[key] = result
        return result

    def connected_scalar(self, graph) -> int:
        """Moment index of the scalar of a connected graph (memoised)."""
        key = ("scalar", graph)
        if key in self.memo:
            return self.memo[key]
        types = graph[0]
        n = len(types)
        if n == 1:
            mu, nu = types[0]
            index = self.basic_index[(mu, nu, (0, 0, 0))]
            self.memo[key] = index
            return index
        # Breadth-first order from the vertex of largest rank; each new vertex touches the ones before.
        start = max(range(n), key=lambda v: (types[v][1], -v))
        order = [start]
        while len(order) < n:
            nxt = max((v for v in range(n) if v not in order),
                      key=lambda v: (sum(_edge(graph, v, u) for u in order), types[v][1], -v))
            order.append(nxt)
        acc = self.tensor_of_basic(*types[order[0]])
        live = [order[0]]  # vertices whose block is still present, in block order
        remaining = {order[0]: types[order[0]][1]}
        acc_key = ("basic", types[order[0]])
        for v in order[1:]:
            ks = tuple(_edge(graph, v, u) for u in live)
            acc_key = (acc_key, types[v], ks)
            acc = self.contract(acc_key, acc, types[v], ks)
            for u, k in zip(live, ks, strict=True):
                remaining[u] -= k
            remaining[v] = types[v][1] - sum(ks)
            live = [u for u in live + [v] if remaining[u] > 0]
        ranks, comps = acc
        if ranks:
            raise AssertionError(f"contraction of {graph} left free indices {ranks}")
        index = comps[()]
        self.memo[key] = index
        return index

    def scalar(self, graph) -> int:
        parts = _connected_parts(graph)
        if len(parts) == 1:
            return self.connected_scalar(parts[0])
        key = ("product", tuple(parts))
        if key in self.memo:
            return self.memo[key]
        # Product of connected scalars: multiply the first part by the product of the rest.
        first = self.connected_scalar(parts[0])
        rest_graph = _merge(parts[1:])
        rest = self.scalar(rest_graph)
        t = self._new()
        self.rows.append((first, rest, 1, t))
        self.memo[key] = t
        return t


def _merge(parts) -> tuple:
    """Disjoint union of canonical graphs, in canonical form."""
    types, edges, offset = [], {}, 0
    for ptypes, pedges in parts:
        n = len(ptypes)
        idx = [(a, b) for a in range(n) for b in range(a + 1, n)]
        for (a, b), k in zip(idx, pedges, strict=True):
            if k:
                edges[(a + offset, b + offset)] = k
        types.extend(ptypes)
        offset += n
    order = sorted(range(len(types)), key=lambda v: types[v])
    pos = {v: i for i, v in enumerate(order)}
    new_edges = {(min(pos[a], pos[b]), max(pos[a], pos[b])): k for (a, b), k in edges.items()}
    return _canonical(tuple(types[v] for v in order), new_edges)


@lru_cache(maxsize=32)
def _generate(level: int, max_factors: int) -> MomentBasis:
    graphs = contraction_graphs(level, max_factors)
    basic_types = sorted({t for g in graphs for t in g[0]})
    builder = _Builder(basic_types)
    mapping = [builder.scalar(g) for g in graphs]
    n_mu = max(t[0] for t in basic_types) + 1
    return MomentBasis(radial_funcs_count=n_mu, alpha_moments_count=builder.n_moments,
                       alpha_index_basic=np.array(builder.basic, dtype=np.int32).reshape(-1, 4),
                       alpha_index_times=np.array(builder.rows, dtype=np.int32).reshape(-1, 4),
                       alpha_moment_mapping=np.array(mapping, dtype=np.int32), level=level)


def generate_basis(level: int, max_factors: int = MAX_FACTORS) -> MomentBasis:
    """The MTP basis of ``level`` (2 ≤ level ≤ 28, MLIP's levels; even levels are the usual choices)."""
    if not isinstance(level, int | np.integer) or not (2 <= level <= MAX_LEVEL):
        raise ValueError(f"MTP level must be an integer in 2..{MAX_LEVEL}, got {level!r}")
    return _generate(int(level), int(max_factors))
