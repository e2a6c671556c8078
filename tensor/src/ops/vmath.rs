//! `exp` and `tanh` in f32 for the CPU kernels, written so that a loop over them
//! vectorizes (the logistic sigmoid, `FloatExt::sigmoid_`, is one `exp_f32` and a
//! select).
//!
//! glibc's `expf`/`tanhf` are calls the compiler cannot vectorize: in an RNN's training
//! step on the CPU they took about a third of the time. These are branchless (both
//! sides of every case are computed and one is selected), use only IEEE adds,
//! multiplies, divides, compares and bit operations, and are `#[inline(always)]`, so a
//! loop over a slice becomes SIMD code. No fused multiply-add is used (Rust never
//! contracts `a * b + c` itself), so the portable build, the AVX2 build of
//! [`crate::cpu::simd_fn`] and a scalar tail give the same bits on every x86-64 CPU.
//!
//! Accuracy, against f64 `std` rounded to f32, over every f32 of magnitude 1e-6 to 110
//! (the ignored test `every_float`; the regular tests check every 127th and the edge
//! cases): `exp_f32` within 1 ulp (96% correctly rounded), `tanh_f32` within 1 ulp
//! (98.6%), the f32 sigmoid within 2 ulp (77%); glibc 2.x measured by the same test:
//! `expf` 1 ulp (99.96%), `tanhf` 2 ulp (76%). IEEE special values hold (`exp(-inf) =
//! 0`, `exp(inf) = inf`, NaN in gives NaN out, `tanh(-0) = -0`). f64 keeps `std`'s
//! functions: it is the reference dtype.
//!
//! The polynomial coefficients come from `tools/vmath/fit.py` (interpolation at
//! Chebyshev nodes, rounded to f32; it prints each polynomial's own error, which is a
//! few hundredths of an ulp).

/// `exp`'s polynomial `P`: `e^r = 1 + r + r^2 P(r)` for `|r| <= ln(2)/2`.
const EXP_P: [f32; 6] = [0.5, 0.16666667, 0.041666467, 0.0083333105, 0.0013933642, 0.00019890981];
/// `tanh`'s polynomial `Q`: `tanh(x) = x + x^3 Q(x^2)` for `|x| < TANH_SMALL`.
const TANH_Q: [f32; 6] = [-0.33333334, 0.13333304, -0.053959258, 0.021768918, -0.008343945, 0.002292745];
/// Below this `|x|` tanh uses its polynomial, above it `1 - 2 / (e^(2|x|) + 1)`.
const TANH_SMALL: f32 = 0.625;
/// ln 2 in two parts (Cody and Waite): `LN2_HI` has 16 significant bits, so `n * LN2_HI`
/// is exact for every `|n| <= 256` and `x - n * LN2_HI` loses nothing.
const LN2_HI: f32 = 0.693_145_75;
/// `ln 2 - LN2_HI`.
const LN2_LO: f32 = 1.428_606_8e-6;
/// `1.5 * 2^23`: adding it to a float of magnitude below 2^22 rounds that float to an
/// integer, which then sits in the low bits of the sum's mantissa.
const ROUND: f32 = 12_582_912.0;

/// Horner's rule, `c[0] + c[1] x + ...`, as plain multiplies and adds.
#[inline(always)]
fn poly<const N: usize>(c: &[f32; N], x: f32) -> f32 {
    let mut acc = c[N - 1];
    for k in (0..N - 1).rev() {
        acc = acc * x + c[k];
    }
    acc
}

/// `e^x` in f32 (within 1 ulp; inf above ~88.72, 0 below ~-103.97, NaN stays NaN).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    // Outside [-104, 89] the result is 0 or inf anyway; the clamp keeps 2^n's exponent
    // in range below. NaN passes through (`clamp` keeps it).
    let x = x.clamp(-104.0, 89.0);
    // x = n ln 2 + r with n an integer and |r| <= ln(2)/2 (about; n may be off by one at
    // a tie, which leaves r just outside and the polynomial still accurate)
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // 1 + (the rest): one rounding at 1's magnitude (`1 + r` first would be two)
    let p = 1.0 + (r + r * r * poly(&EXP_P, r));
    // times 2^n as two powers of two, each a normal float for n down to -150: the
    // first product is exact, the second rounds once (into a subnormal if it must)
    let n1 = ni >> 1;
    let n2 = ni.wrapping_sub(n1);
    let pow2 = |k: i32| f32::from_bits((k.wrapping_add(127) as u32) << 23);
    p * pow2(n1) * pow2(n2)
}

/// `tanh(x)` in f32 (within 1 ulp; odd, so `tanh(-0) = -0`; NaN stays NaN).
#[inline(always)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    // tanh(|x|), then x's sign (odd by construction, -0 included)
    let a = x.abs();
    let a2 = a * a;
    let small = a + a * a2 * poly(&TANH_Q, a2);
    // 1 - 2 / (e^(2a) + 1): e^(2a) is inf for a > ~44, which gives exactly 1
    let large = 1.0 - 2.0 / (exp_f32(a + a) + 1.0);
    let t = if a < TANH_SMALL { small } else { large };
    t.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::unary::FloatExt;

    fn sigmoid_f32(x: f32) -> f32 {
        x.sigmoid_()
    }

    /// The distance in ulps between `got` and the f64 value `want` rounded to f32.
    fn ulps(got: f32, want: f64) -> u32 {
        let want = want as f32;
        if got == want {
            return 0;
        }
        // the ordered integer line of floats (negative floats mirrored below zero)
        let key = |v: f32| {
            let b = v.to_bits() as i64;
            if b < 0x8000_0000 {
                b
            } else {
                0x8000_0000 - b
            }
        };
        (key(got) - key(want)).unsigned_abs() as u32
    }

    /// Every `step`-th f32 of magnitude in `[1e-6, hi]`, both signs, plus tiny and
    /// subnormal values and `±hi`.
    fn floats(hi: f32, step: usize) -> impl Iterator<Item = f32> {
        let pos = (1e-6f32.to_bits()..=hi.to_bits()).step_by(step).map(f32::from_bits);
        let tiny = [1e-45, 1e-40, 1e-30, 1e-20, 1e-10, 1e-7, hi];
        pos.chain(tiny).flat_map(|v| [v, -v])
    }

    /// Every 127th float up to `hi` (about 3.5 million for `hi = 110`).
    fn sweep(hi: f32) -> impl Iterator<Item = f32> {
        floats(hi, 127)
    }

    /// The worst ulp error of `f` against `reference` over `inputs`, with its input.
    fn worst(inputs: impl Iterator<Item = f32>, f: fn(f32) -> f32, reference: fn(f64) -> f64) -> (u32, f32) {
        inputs.map(|x| (ulps(f(x), reference(x as f64)), x)).max_by_key(|&(u, _)| u).unwrap_or((0, 0.0))
    }

    fn sigmoid_f64(x: f64) -> f64 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            x.exp() / (1.0 + x.exp())
        }
    }

    #[test]
    fn exp_within_one_ulp() {
        let (u, at) = worst(sweep(110.0), exp_f32, f64::exp);
        assert!(u <= 1, "exp_f32 is {u} ulp off at {at:e}");
    }

    #[test]
    fn tanh_within_one_ulp() {
        let (u, at) = worst(sweep(20.0), tanh_f32, f64::tanh);
        assert!(u <= 1, "tanh_f32 is {u} ulp off at {at:e}");
        // around the switch between the two formulas, every float
        let near = ((TANH_SMALL * 0.99).to_bits()..(TANH_SMALL * 1.01).to_bits()).map(f32::from_bits);
        let (u, at) = worst(near.flat_map(|v| [v, -v]), tanh_f32, f64::tanh);
        assert!(u <= 1, "tanh_f32 is {u} ulp off at {at:e}");
    }

    #[test]
    fn sigmoid_within_two_ulp() {
        let (u, at) = worst(sweep(110.0), sigmoid_f32, sigmoid_f64);
        assert!(u <= 2, "sigmoid_f32 is {u} ulp off at {at:e}");
    }

    /// Every float, for the accuracy figures in the module docs (about a minute in
    /// release: `cargo test --release -p keel-tensor --lib vmath -- --ignored`).
    #[test]
    #[ignore = "every f32: run by hand"]
    fn every_float() {
        let (e, ea) = worst(floats(110.0, 1), exp_f32, f64::exp);
        let (t, ta) = worst(floats(20.0, 1), tanh_f32, f64::tanh);
        let (s, sa) = worst(floats(110.0, 1), sigmoid_f32, sigmoid_f64);
        println!("worst: exp {e} ulp at {ea:e}, tanh {t} ulp at {ta:e}, sigmoid {s} ulp at {sa:e}");
        assert!(e <= 1 && t <= 1 && s <= 2);
        let exact = |f: fn(f32) -> f32, reference: fn(f64) -> f64, hi: f32| {
            let (n, k) = floats(hi, 1)
                .fold((0u64, 0u64), |(n, k), x| (n + 1, k + (ulps(f(x), reference(x as f64)) == 0) as u64));
            100.0 * k as f64 / n as f64
        };
        println!(
            "correctly rounded: exp {:.2}%, tanh {:.2}%, sigmoid {:.2}%; system libm expf {:.2}%, tanhf {:.2}%",
            exact(exp_f32, f64::exp, 110.0),
            exact(tanh_f32, f64::tanh, 20.0),
            exact(sigmoid_f32, sigmoid_f64, 110.0),
            exact(f32::exp, f64::exp, 110.0),
            exact(f32::tanh, f64::tanh, 20.0)
        );
        let (e, ea) = worst(floats(110.0, 1), f32::exp, f64::exp);
        let (t, ta) = worst(floats(20.0, 1), f32::tanh, f64::tanh);
        println!("system libm: expf {e} ulp at {ea:e}, tanhf {t} ulp at {ta:e}");
    }

    #[test]
    fn special_values() {
        let bits = |v: f32| v.to_bits();
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-1000.0), 0.0);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(88.8), f32::INFINITY);
        assert!(exp_f32(88.72).is_finite());
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert!(exp_f32(-100.0) > 0.0, "e^-100 is a subnormal, not 0");
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(1e30), 1.0);
        assert_eq!(bits(tanh_f32(0.0)), bits(0.0));
        assert_eq!(bits(tanh_f32(-0.0)), bits(-0.0));
        assert_eq!(tanh_f32(1e-40), 1e-40, "subnormal in, same out");
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid_f32(0.0), 0.5);
        for f in [exp_f32, tanh_f32, sigmoid_f32] {
            assert!(f(f32::NAN).is_nan() && f(-f32::NAN).is_nan());
        }
    }

    #[test]
    fn monotone_where_it_matters() {
        // no backwards steps across the tanh switch or exp's reduction boundaries
        let xs: Vec<f32> = (0..100_000).map(|k| -3.0 + 6.0 * k as f32 / 100_000.0).collect();
        for w in xs.windows(2) {
            assert!(tanh_f32(w[0]) <= tanh_f32(w[1]), "tanh at {} and {}", w[0], w[1]);
            assert!(exp_f32(w[0]) <= exp_f32(w[1]), "exp at {} and {}", w[0], w[1]);
            assert!(sigmoid_f32(w[0]) <= sigmoid_f32(w[1]), "sigmoid at {} and {}", w[0], w[1]);
        }
    }
}
