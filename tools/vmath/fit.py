#!/usr/bin/env python3
"""Fits the polynomial coefficients of keel-tensor's vectorizable f32 exp and tanh
(tensor/src/ops/vmath.rs) and prints them as Rust f32 literals.

Method: interpolation at Chebyshev nodes (near-minimax for these smooth functions),
solved in double precision, then each coefficient rounded to f32. The script also
prints the worst error of the rounded polynomial on a dense grid, in units of f32's
epsilon (2^-23): the polynomial's own error must stay well below the f32 rounding of
its evaluation. Pure Python (no numpy): `python3 tools/vmath/fit.py`.
"""
import math
import struct


def f32(v):
    """v rounded to the nearest f32."""
    return struct.unpack("f", struct.pack("f", v))[0]


def shortest(v):
    """The shortest decimal that reads back as the f32 nearest v (no excess digits)."""
    v = f32(v)
    for p in range(1, 10):
        s = f"{v:.{p}g}"
        if f32(float(s)) == v:
            return s if ("." in s or "e" in s) else s + ".0"
    raise AssertionError(v)


def cheb_fit(g, lo, hi, deg):
    """Monomial coefficients c[0..deg] of the degree-`deg` interpolant of g at the
    Chebyshev nodes of [lo, hi]."""
    n = deg + 1
    xs = [0.5 * (lo + hi) + 0.5 * (hi - lo) * math.cos(math.pi * (k + 0.5) / n) for k in range(n)]
    a = [[x**j for j in range(n)] + [g(x)] for x in xs]
    for col in range(n):  # Gaussian elimination with partial pivoting
        piv = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[piv] = a[piv], a[col]
        for r in range(n):
            if r != col:
                f = a[r][col] / a[col][col]
                a[r] = [vr - f * vc for vr, vc in zip(a[r], a[col])]
    return [a[i][n] / a[i][i] for i in range(n)]


def horner(c, x):
    acc = 0.0
    for v in reversed(c):
        acc = acc * x + v
    return acc


def report(name, coeffs, worst):
    print(f"// {name}: worst error of the f32-rounded polynomial {worst:.3g} eps")
    for c in coeffs:
        print(f"    {shortest(c)}_f32,")


# exp(r) = 1 + r + r^2 P(r) on |r| <= ln2/2 (the reduced argument of exp_f32)
LN2_2 = math.log(2) / 2


def g_exp(r):
    if abs(r) < 1e-4:  # series, avoiding the cancellation of e^r - 1 - r
        return 0.5 + r / 6 + r * r / 24 + r**3 / 120
    return (math.expm1(r) - r) / (r * r)


P = [f32(c) for c in cheb_fit(g_exp, -LN2_2, LN2_2, 5)]
grid = [-LN2_2 + 2 * LN2_2 * k / 20000 for k in range(20001)]
worst = max(abs((1 + r + r * r * horner(P, r)) - math.exp(r)) / math.exp(r) for r in grid) / 2**-23
report("exp: P(r), r in [-ln2/2, ln2/2]", P, worst)

# tanh(x) = x + x^3 Q(x^2) on |x| <= T (tanh_f32's small-argument branch)
T = 0.625


def g_tanh(t):
    if t < 1e-6:
        return -1 / 3 + 2 * t / 15 - 17 * t * t / 315
    x = math.sqrt(t)
    return (math.tanh(x) - x) / (t * x)


Q = [f32(c) for c in cheb_fit(g_tanh, 0.0, T * T, 5)]
grid = [T * k / 20000 for k in range(1, 20001)]
worst = max(abs((x + x**3 * horner(Q, x * x)) - math.tanh(x)) / math.tanh(x) for x in grid) / 2**-23
report(f"tanh: Q(x^2), |x| <= {T}", Q, worst)
