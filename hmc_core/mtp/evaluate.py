"""Numba kernels of the Moment Tensor Potential (MLIP conventions).

For atom i with neighbours j (full neighbour list, pair vector d = x_j − x_i, r = |d|, u = d / r):

* radial basis (``RBChebyshev``): Q_β(r) = scaling · (max_dist − r)² · T_β(s), s = (2r − min − max)/(max − min),
  T_β Chebyshev polynomials of the first kind, Q_β = 0 for r ≥ max_dist;
* radial functions f_μ(r) = Σ_β c[z_i, z_j, μ, β] Q_β(r);
* basic moments (``alpha_index_basic`` row k = {μ, a, b, c}): m_k = Σ_j f_μ(r_ij) u_x^a u_y^b u_z^c;
* contractions (``alpha_index_times`` row {p, q, mult, t}): m_t += mult · m_p · m_q, in file order;
* basis B_s = m[alpha_moment_mapping[s]]; site energy E_i = species_coeffs[z_i] + Σ_s ξ_s B_s.

Derivatives go backwards through the contraction list (reverse mode) for energy/forces/virial, and
forwards (per-neighbour Jacobians) for the design matrix of the linear fit. Units: Å, eV, eV/Å.
All kernels take plain arrays: ``offsets``/``nbr``/``codes``/``shifts`` of a full
:class:`hmc_core.neighbors.NeighborList`, ``types`` (N,) int32 indices into the potential's species.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hmc_core.potentials.pair_kernels import pair_displacement


@njit(cache=True, nogil=True, inline="always")
def _radial_basis(r, min_dist, max_dist, scaling, q, dq):
    """Fill q[β], dq[β] (β < len(q)) with Q_β(r) and dQ_β/dr."""
    nb = q.shape[0]
    if r >= max_dist:
        for b in range(nb):
            q[b] = 0.0
            dq[b] = 0.0
        return
    ds = 2.0 / (max_dist - min_dist)
    s = (2.0 * r - (min_dist + max_dist)) / (max_dist - min_dist)
    diff = max_dist - r
    sm = scaling * diff * diff
    dsm = -2.0 * scaling * diff
    t0 = 1.0
    dt0 = 0.0
    q[0] = sm
    dq[0] = dsm
    if nb > 1:
        t1 = s
        dt1 = ds
        q[1] = t1 * sm
        dq[1] = dt1 * sm + t1 * dsm
        for b in range(2, nb):
            t2 = 2.0 * s * t1 - t0
            dt2 = 2.0 * ds * t1 + 2.0 * s * dt1 - dt0
            q[b] = t2 * sm
            dq[b] = dt2 * sm + t2 * dsm
            t0, t1 = t1, t2
            dt0, dt1 = dt1, dt2


@njit(cache=True, nogil=True)
def _max_neighbors(offsets):
    m = 0
    for i in range(offsets.shape[0] - 1):
        m = max(m, offsets[i + 1] - offsets[i])
    return m


@njit(cache=True, nogil=True)
def _gather_neighborhood(i, x, types, offsets, nbr, codes, shifts, max_dist, min_dist, d, r, jt, jj, close):
    """Pair vectors d (n, 3), distances r, neighbour types and indices of atom i within max_dist.

    Returns the count n; ``close`` (3,) records the smallest distance below min_dist as (r, i, j).
    """
    n = 0
    rc2 = max_dist * max_dist
    for p in range(offsets[i], offsets[i + 1]):
        j = nbr[p]
        dx, dy, dz = pair_displacement(x, i, j, shifts, codes[p])
        r2 = dx * dx + dy * dy + dz * dz
        if r2 >= rc2:
            continue
        rr = np.sqrt(r2)
        if rr < min_dist and rr < close[0]:
            close[0] = rr
            close[1] = i
            close[2] = j
        d[n, 0] = dx
        d[n, 1] = dy
        d[n, 2] = dz
        r[n] = rr
        jt[n] = types[j]
        jj[n] = j
        n += 1
    return n


@njit(cache=True, nogil=True)
def _powers(n, d, r, max_pow, px, py, pz):
    """Powers 0..max_pow of the unit-vector components of the first n pairs."""
    for k in range(n):
        inv = 1.0 / r[k]
        ux = d[k, 0] * inv
        uy = d[k, 1] * inv
        uz = d[k, 2] * inv
        px[k, 0] = 1.0
        py[k, 0] = 1.0
        pz[k, 0] = 1.0
        for a in range(1, max_pow + 1):
            px[k, a] = px[k, a - 1] * ux
            py[k, a] = py[k, a - 1] * uy
            pz[k, a] = pz[k, a - 1] * uz


@njit(cache=True, nogil=True)
def _radial_functions(n, r, ti, jt, min_dist, max_dist, scaling, radial_coeffs, q, dq, rf, drf):
    """rf[k, μ] = f_μ(r_k) and drf = df_μ/dr for the first n pairs."""
    n_mu = radial_coeffs.shape[2]
    nb = radial_coeffs.shape[3]
    for k in range(n):
        _radial_basis(r[k], min_dist, max_dist, scaling, q[k], dq[k])
        tj = jt[k]
        for mu in range(n_mu):
            v = 0.0
            dv = 0.0
            for b in range(nb):
                c = radial_coeffs[ti, tj, mu, b]
                v += c * q[k, b]
                dv += c * dq[k, b]
            rf[k, mu] = v
            drf[k, mu] = dv


@njit(cache=True, nogil=True)
def _moments(n, basic, times, rf, px, py, pz, m):
    """All moments m (n_moments,) of one neighbourhood: basic sums then the contraction list."""
    m[:] = 0.0
    for b in range(basic.shape[0]):
        mu = basic[b, 0]
        a = basic[b, 1]
        bb = basic[b, 2]
        c = basic[b, 3]
        acc = 0.0
        for k in range(n):
            acc += rf[k, mu] * px[k, a] * py[k, bb] * pz[k, c]
        m[b] = acc
    for t in range(times.shape[0]):
        m[times[t, 3]] += times[t, 2] * m[times[t, 0]] * m[times[t, 1]]


@njit(cache=True, nogil=True)
def _pair_gradient(k, mu, a, b, c, w, rk, rf, drf, px, py, pz, out):
    """out += w · ∂[f_μ(r) u_x^a u_y^b u_z^c]/∂d for pair k (d the pair vector)."""
    f = rf[k, mu]
    inv = 1.0 / rk
    ang = px[k, a] * py[k, b] * pz[k, c]
    radial = w * ang * (drf[k, mu] - (a + b + c) * f * inv)
    wf = w * f * inv
    out[0] += radial * px[k, 1]
    out[1] += radial * py[k, 1]
    out[2] += radial * pz[k, 1]
    if a > 0:
        out[0] += wf * a * px[k, a - 1] * py[k, b] * pz[k, c]
    if b > 0:
        out[1] += wf * b * px[k, a] * py[k, b - 1] * pz[k, c]
    if c > 0:
        out[2] += wf * c * px[k, a] * py[k, b] * pz[k, c - 1]


@njit(cache=True, nogil=True)
def _workspace(max_nb, n_mu, nb, max_pow, n_moments):
    d = np.empty((max_nb, 3))
    r = np.empty(max_nb)
    jt = np.empty(max_nb, np.int32)
    jj = np.empty(max_nb, np.int64)
    q = np.empty((max_nb, nb))
    dq = np.empty((max_nb, nb))
    rf = np.empty((max_nb, n_mu))
    drf = np.empty((max_nb, n_mu))
    px = np.empty((max_nb, max_pow + 1))
    py = np.empty((max_nb, max_pow + 1))
    pz = np.empty((max_nb, max_pow + 1))
    m = np.empty(n_moments)
    return d, r, jt, jj, q, dq, rf, drf, px, py, pz, m


@njit(cache=True, nogil=True)
def mtp_basis_derivatives(x, types, offsets, nbr, codes, shifts, min_dist, max_dist, scaling, radial_coeffs,
                          basic, times, mapping, n_moments):
    """Basis sums and derivatives of one configuration for the linear fit.

    Returns ``b`` (n_basis,) = Σ_i B_s(i), ``dbdx`` (N, 3, n_basis) = ∂b/∂x_j (1/Å),
    ``dbde`` (3, 3, n_basis) = Σ_pairs d ⊗ ∂B/∂d (the strain derivative, unsymmetrised) and ``close``.
    Forward mode: per-neighbour Jacobians of every moment are pushed through the contraction list.
    """
    n_atoms = x.shape[0]
    n_mu = radial_coeffs.shape[2]
    nb = radial_coeffs.shape[3]
    n_basis = mapping.shape[0]
    max_pow = 1
    for b in range(basic.shape[0]):
        max_pow = max(max_pow, basic[b, 1], basic[b, 2], basic[b, 3])
    max_nb = max(_max_neighbors(offsets), 1)
    d, r, jt, jj, q, dq, rf, drf, px, py, pz, m = _workspace(max_nb, n_mu, nb, max_pow, n_moments)
    dm = np.empty((n_moments, max_nb, 3))
    bsum = np.zeros(n_basis)
    dbdx = np.zeros((n_atoms, 3, n_basis))
    dbde = np.zeros((3, 3, n_basis))
    close = np.array([np.inf, -1.0, -1.0])
    for i in range(n_atoms):
        n = _gather_neighborhood(i, x, types, offsets, nbr, codes, shifts, max_dist, min_dist, d, r, jt, jj, close)
        _powers(n, d, r, max_pow, px, py, pz)
        _radial_functions(n, r, types[i], jt, min_dist, max_dist, scaling, radial_coeffs, q, dq, rf, drf)
        _moments(n, basic, times, rf, px, py, pz, m)
        dm[:, :n, :] = 0.0
        for b in range(basic.shape[0]):
            for k in range(n):
                _pair_gradient(k, basic[b, 0], basic[b, 1], basic[b, 2], basic[b, 3], 1.0, r[k], rf, drf,
                               px, py, pz, dm[b, k])
        for t in range(times.shape[0]):
            p1 = times[t, 0]
            p2 = times[t, 1]
            mult = times[t, 2]
            tt = times[t, 3]
            m1 = mult * m[p1]
            m2 = mult * m[p2]
            for k in range(n):
                for a in range(3):
                    dm[tt, k, a] += dm[p1, k, a] * m2 + m1 * dm[p2, k, a]
        for s in range(n_basis):
            ms = mapping[s]
            bsum[s] += m[ms]
            for k in range(n):
                j = jj[k]
                for a in range(3):
                    v = dm[ms, k, a]
                    dbdx[j, a, s] += v
                    dbdx[i, a, s] -= v
                    for c in range(3):
                        dbde[c, a, s] += d[k, c] * v
    return bsum, dbdx, dbde, close


@njit(cache=True, nogil=True)
def mtp_loss_gradient(x, types, offsets, nbr, codes, shifts, min_dist, max_dist, scaling, radial_coeffs,
                      moment_coeffs, basic, times, mapping, n_moments, alpha, lam, rmat):
    """Gradient of Φ = α E + Σ_j λ_j · ∂E/∂x_j + Σ_ab R_ab X_ab with respect to the radial coefficients,
    where X = Σ_pairs d ⊗ ∂E/∂d (the strain derivative) and α (scalar), λ (N, 3), R (3, 3) are held fixed.

    With α, λ, R set from weighted residuals this is the gradient of a least-squares loss over energy,
    forces and stress (see :mod:`hmc_core.mtp.fit`). Forward tangents ṁ (directional derivatives of all
    moments along the pair tangents t_p = λ_j − λ_i + Rᵀ d_p) are pushed through the contraction list,
    then adjoints of (m, ṁ) are pulled back to the coefficients c[z_i, z_j, μ, β]. Returns (S, S, n_μ, n_β).
    """
    n_atoms = x.shape[0]
    n_mu = radial_coeffs.shape[2]
    nb = radial_coeffs.shape[3]
    n_basic = basic.shape[0]
    max_pow = 1
    for b in range(n_basic):
        max_pow = max(max_pow, basic[b, 1], basic[b, 2], basic[b, 3])
    max_nb = max(_max_neighbors(offsets), 1)
    d, r, jt, jj, q, dq, rf, drf, px, py, pz, m = _workspace(max_nb, n_mu, nb, max_pow, n_moments)
    tang = np.empty((max_nb, 3))
    ua = np.empty((max_nb, n_basic))  # U_k (u·t)
    ub = np.empty((max_nb, n_basic))  # (1/r)[−ν U_k (u·t) + Σ ∂U_k/∂u · t]
    uu = np.empty((max_nb, n_basic))  # U_k
    md = np.empty(n_moments)
    adj_m = np.empty(n_moments)
    adj_d = np.empty(n_moments)
    grad = np.zeros(radial_coeffs.shape)
    close = np.array([np.inf, -1.0, -1.0])
    s1 = np.empty(n_mu)
    s2 = np.empty(n_mu)
    for i in range(n_atoms):
        ti = types[i]
        n = _gather_neighborhood(i, x, types, offsets, nbr, codes, shifts, max_dist, min_dist, d, r, jt, jj, close)
        _powers(n, d, r, max_pow, px, py, pz)
        _radial_functions(n, r, ti, jt, min_dist, max_dist, scaling, radial_coeffs, q, dq, rf, drf)
        for k in range(n):
            j = jj[k]
            for a in range(3):
                tang[k, a] = lam[j, a] - lam[i, a] + rmat[0, a] * d[k, 0] + rmat[1, a] * d[k, 1] + rmat[2, a] * d[k, 2]
            inv = 1.0 / r[k]
            ut = (px[k, 1] * tang[k, 0] + py[k, 1] * tang[k, 1] + pz[k, 1] * tang[k, 2])
            for b in range(n_basic):
                ea = basic[b, 1]
                eb = basic[b, 2]
                ec = basic[b, 3]
                u = px[k, ea] * py[k, eb] * pz[k, ec]
                part = 0.0
                if ea > 0:
                    part += ea * px[k, ea - 1] * py[k, eb] * pz[k, ec] * tang[k, 0]
                if eb > 0:
                    part += eb * px[k, ea] * py[k, eb - 1] * pz[k, ec] * tang[k, 1]
                if ec > 0:
                    part += ec * px[k, ea] * py[k, eb] * pz[k, ec - 1] * tang[k, 2]
                uu[k, b] = u
                ua[k, b] = u * ut
                ub[k, b] = inv * (part - (ea + eb + ec) * u * ut)
        # Forward: values and tangents of all moments.
        m[:] = 0.0
        md[:] = 0.0
        for b in range(n_basic):
            mu = basic[b, 0]
            v = 0.0
            vd = 0.0
            for k in range(n):
                v += rf[k, mu] * uu[k, b]
                vd += drf[k, mu] * ua[k, b] + rf[k, mu] * ub[k, b]
            m[b] = v
            md[b] = vd
        for t in range(times.shape[0]):
            p1 = times[t, 0]
            p2 = times[t, 1]
            mult = times[t, 2]
            tt = times[t, 3]
            m[tt] += mult * m[p1] * m[p2]
            md[tt] += mult * (md[p1] * m[p2] + m[p1] * md[p2])
        # Reverse: adjoints of m (adj_m) and ṁ (adj_d).
        adj_m[:] = 0.0
        adj_d[:] = 0.0
        for s in range(mapping.shape[0]):
            adj_m[mapping[s]] += alpha * moment_coeffs[s]
            adj_d[mapping[s]] += moment_coeffs[s]
        for t in range(times.shape[0] - 1, -1, -1):
            p1 = times[t, 0]
            p2 = times[t, 1]
            mult = times[t, 2]
            tt = times[t, 3]
            at = mult * adj_d[tt]
            bt = mult * adj_m[tt]
            if at != 0.0:
                adj_d[p1] += at * m[p2]
                adj_d[p2] += at * m[p1]
                adj_m[p1] += at * md[p2]
                adj_m[p2] += at * md[p1]
            if bt != 0.0:
                adj_m[p1] += bt * m[p2]
                adj_m[p2] += bt * m[p1]
        for k in range(n):
            s1[:] = 0.0
            s2[:] = 0.0
            for b in range(n_basic):
                mu = basic[b, 0]
                s1[mu] += adj_m[b] * uu[k, b] + adj_d[b] * ub[k, b]
                s2[mu] += adj_d[b] * ua[k, b]
            tj = jt[k]
            for mu in range(n_mu):
                for beta in range(nb):
                    grad[ti, tj, mu, beta] += s1[mu] * q[k, beta] + s2[mu] * dq[k, beta]
    return grad


# ---------------------------------------------------------------------------------------------------
# Fast path for energy/forces and per-atom basis: neighbour-contiguous ("structure of arrays") layout so
# the inner loops over neighbours vectorise, and a monomial table shared by all basic moments.
def angular_tables(basic: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monomial table for the unit-vector powers of ``basic`` (n_basic, 4).

    Returns ``recurrence`` (n_mono, 2) int32 (parent monomial, axis 0/1/2; row 0 is the constant 1),
    and ``index`` (n_basic, 5) int32: the monomial of each basic moment, the monomials of its three
    partial derivatives ∂/∂u_x, ∂/∂u_y, ∂/∂u_z (−1 when the power is 0), and its degree ν.
    """
    degree = int(basic[:, 1:].sum(1).max()) if len(basic) else 0
    monos = [(a, b, c) for n in range(degree + 1) for a in range(n, -1, -1) for b in range(n - a, -1, -1)
             for c in [n - a - b]]
    where = {m: k for k, m in enumerate(monos)}
    rec = np.zeros((len(monos), 2), np.int32)
    for k, (a, b, c) in enumerate(monos[1:], start=1):
        if a > 0:
            rec[k] = where[(a - 1, b, c)], 0
        elif b > 0:
            rec[k] = where[(a, b - 1, c)], 1
        else:
            rec[k] = where[(a, b, c - 1)], 2
    index = np.full((len(basic), 5), -1, np.int32)
    for k, (_, a, b, c) in enumerate(basic):
        index[k, 0] = where[(a, b, c)]
        if a > 0:
            index[k, 1] = where[(a - 1, b, c)]
        if b > 0:
            index[k, 2] = where[(a, b - 1, c)]
        if c > 0:
            index[k, 3] = where[(a, b, c - 1)]
        index[k, 4] = a + b + c
    return rec, index


@njit(cache=True, nogil=True)
def _soa_neighborhood(i, x, types, offsets, nbr, codes, shifts, min_dist, max_dist, scaling, radial_coeffs,
                      recurrence, d, r, inv_r, jj, q, dq, rf, drf, mono, close):
    """Pairs of atom i within max_dist in neighbour-contiguous arrays (d (3, n), rf (n_mu, n), mono (n_mono, n), …)."""
    n = 0
    rc2 = max_dist * max_dist
    ti = types[i]
    for p in range(offsets[i], offsets[i + 1]):
        j = nbr[p]
        dx, dy, dz = pair_displacement(x, i, j, shifts, codes[p])
        r2 = dx * dx + dy * dy + dz * dz
        if r2 >= rc2:
            continue
        rr = np.sqrt(r2)
        if rr < min_dist and rr < close[0]:
            close[0] = rr
            close[1] = i
            close[2] = j
        d[0, n] = dx
        d[1, n] = dy
        d[2, n] = dz
        r[n] = rr
        inv_r[n] = 1.0 / rr
        jj[n] = j
        n += 1
    n_mu = radial_coeffs.shape[2]
    nb = radial_coeffs.shape[3]
    ds = 2.0 / (max_dist - min_dist)
    for k in range(n):
        s = (2.0 * r[k] - (min_dist + max_dist)) / (max_dist - min_dist)
        diff = max_dist - r[k]
        sm = scaling * diff * diff
        dsm = -2.0 * scaling * diff
        t0 = 1.0
        dt0 = 0.0
        q[0, k] = sm
        dq[0, k] = dsm
        t1 = s
        dt1 = ds
        if nb > 1:
            q[1, k] = t1 * sm
            dq[1, k] = dt1 * sm + t1 * dsm
        for b in range(2, nb):
            t2 = 2.0 * s * t1 - t0
            dt2 = 2.0 * ds * t1 + 2.0 * s * dt1 - dt0
            q[b, k] = t2 * sm
            dq[b, k] = dt2 * sm + t2 * dsm
            t0, t1 = t1, t2
            dt0, dt1 = dt1, dt2
        tj = types[jj[k]]
        for mu in range(n_mu):
            v = 0.0
            dv = 0.0
            for b in range(nb):
                c = radial_coeffs[ti, tj, mu, b]
                v += c * q[b, k]
                dv += c * dq[b, k]
            rf[mu, k] = v
            drf[mu, k] = dv
    for k in range(n):
        mono[0, k] = 1.0
    for m in range(1, recurrence.shape[0]):
        parent = recurrence[m, 0]
        axis = recurrence[m, 1]
        for k in range(n):
            mono[m, k] = mono[parent, k] * d[axis, k] * inv_r[k]
    return n


@njit(cache=True, nogil=True)
def _soa_moments(n, basic, index, times, rf, mono, m):
    m[:] = 0.0
    for b in range(basic.shape[0]):
        mu = basic[b, 0]
        mi = index[b, 0]
        acc = 0.0
        for k in range(n):
            acc += rf[mu, k] * mono[mi, k]
        m[b] = acc
    for t in range(times.shape[0]):
        m[times[t, 3]] += times[t, 2] * m[times[t, 0]] * m[times[t, 1]]


@njit(cache=True, nogil=True)
def _soa_workspace(max_nb, n_mu, nb, n_mono, n_moments):
    return (np.empty((3, max_nb)), np.empty(max_nb), np.empty(max_nb), np.empty(max_nb, np.int64),
            np.empty((nb, max_nb)), np.empty((nb, max_nb)), np.empty((n_mu, max_nb)), np.empty((n_mu, max_nb)),
            np.empty((n_mono, max_nb)), np.empty(n_moments))


@njit(cache=True, nogil=True)
def mtp_energy_forces_fast(x, types, offsets, nbr, codes, shifts, min_dist, max_dist, scaling, radial_coeffs,
                           species_coeffs, moment_coeffs, basic, times, mapping, n_moments, recurrence, index):
    """Site energies (N,) eV, forces (N, 3) eV/Å, virial W = −Σ d ⊗ ∂E/∂d (3, 3) eV, and ``close`` (3,):
    (smallest pair distance below min_dist, i, j), or (inf, -1, -1) when none.

    Reverse mode: dE/dm through the contraction list, then per neighbour
    ∂E/∂d = u Σ_k g_k U_k (f'_μ − ν f_μ / r) + (1/r) Σ_k g_k f_μ ∂U_k/∂u, loops over neighbours innermost
    (vectorised); ``recurrence``/``index`` from :func:`angular_tables`."""
    n_atoms = x.shape[0]
    n_mu = radial_coeffs.shape[2]
    nb = radial_coeffs.shape[3]
    n_basic = basic.shape[0]
    max_nb = max(_max_neighbors(offsets), 1)
    d, r, inv_r, jj, q, dq, rf, drf, mono, m = _soa_workspace(max_nb, n_mu, nb, recurrence.shape[0], n_moments)
    g = np.empty(n_moments)
    s0 = np.empty(max_nb)
    gx = np.empty(max_nb)
    gy = np.empty(max_nb)
    gz = np.empty(max_nb)
    energies = np.empty(n_atoms)
    forces = np.zeros((n_atoms, 3))
    virial = np.zeros((3, 3))
    close = np.array([np.inf, -1.0, -1.0])
    for i in range(n_atoms):
        n = _soa_neighborhood(i, x, types, offsets, nbr, codes, shifts, min_dist, max_dist, scaling, radial_coeffs,
                              recurrence, d, r, inv_r, jj, q, dq, rf, drf, mono, close)
        _soa_moments(n, basic, index, times, rf, mono, m)
        e = species_coeffs[types[i]]
        g[:] = 0.0
        for s in range(mapping.shape[0]):
            e += moment_coeffs[s] * m[mapping[s]]
            g[mapping[s]] += moment_coeffs[s]
        energies[i] = e
        for t in range(times.shape[0] - 1, -1, -1):
            gt = g[times[t, 3]]
            if gt != 0.0:
                w = times[t, 2] * gt
                g[times[t, 0]] += w * m[times[t, 1]]
                g[times[t, 1]] += w * m[times[t, 0]]
        s0[:n] = 0.0
        gx[:n] = 0.0
        gy[:n] = 0.0
        gz[:n] = 0.0
        for b in range(n_basic):
            gb = g[b]
            if gb == 0.0:
                continue
            mu = basic[b, 0]
            mi = index[b, 0]
            nu = float(index[b, 4])
            for k in range(n):
                s0[k] += gb * mono[mi, k] * (drf[mu, k] - nu * rf[mu, k] * inv_r[k])
            ix = index[b, 1]
            iy = index[b, 2]
            iz = index[b, 3]
            if ix >= 0:
                wx = gb * basic[b, 1]
                for k in range(n):
                    gx[k] += wx * rf[mu, k] * mono[ix, k]
            if iy >= 0:
                wy = gb * basic[b, 2]
                for k in range(n):
                    gy[k] += wy * rf[mu, k] * mono[iy, k]
            if iz >= 0:
                wz = gb * basic[b, 3]
                for k in range(n):
                    gz[k] += wz * rf[mu, k] * mono[iz, k]
        for k in range(n):
            ir = inv_r[k]
            g0 = s0[k] * d[0, k] * ir + gx[k] * ir
            g1 = s0[k] * d[1, k] * ir + gy[k] * ir
            g2 = s0[k] * d[2, k] * ir + gz[k] * ir
            j = jj[k]
            forces[i, 0] += g0
            forces[i, 1] += g1
            forces[i, 2] += g2
            forces[j, 0] -= g0
            forces[j, 1] -= g1
            forces[j, 2] -= g2
            for a in range(3):
                virial[a, 0] -= d[a, k] * g0
                virial[a, 1] -= d[a, k] * g1
                virial[a, 2] -= d[a, k] * g2
    return energies, forces, virial, close


@njit(cache=True, nogil=True)
def mtp_site_basis_fast(x, types, offsets, nbr, codes, shifts, min_dist, max_dist, scaling, radial_coeffs,
                        basic, times, mapping, n_moments, recurrence, index):
    """Per-atom basis values B (N, n_basis) and ``close``, vectorised layout."""
    n_atoms = x.shape[0]
    n_mu = radial_coeffs.shape[2]
    nb = radial_coeffs.shape[3]
    max_nb = max(_max_neighbors(offsets), 1)
    d, r, inv_r, jj, q, dq, rf, drf, mono, m = _soa_workspace(max_nb, n_mu, nb, recurrence.shape[0], n_moments)
    out = np.empty((n_atoms, mapping.shape[0]))
    close = np.array([np.inf, -1.0, -1.0])
    for i in range(n_atoms):
        n = _soa_neighborhood(i, x, types, offsets, nbr, codes, shifts, min_dist, max_dist, scaling, radial_coeffs,
                              recurrence, d, r, inv_r, jj, q, dq, rf, drf, mono, close)
        _soa_moments(n, basic, index, times, rf, mono, m)
        for s in range(mapping.shape[0]):
            out[i, s] = m[mapping[s]]
    return out, close
