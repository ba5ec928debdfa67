//! The sixteen-lane f32 vector the skinny kernel's loops (kernels/skinny_loops.rs) are written
//! in, for three instruction sets chosen at run time: one AVX-512 register, two AVX2 registers,
//! or a plain array the compiler vectorises as it can. The lanes and the order of every sum are
//! the same in all three, so AVX-512 and AVX2 (both with FMA) give the same bits.
//!
//! Weights widen to f32 as they load: bf16 by a 16-bit shift, f16 by `vcvtph2ps` (the plain
//! path by [`Elem::widen`]); both are exact.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use half::{bf16, f16};

/// Lanes per vector.
pub const L: usize = 16;

/// A weight element type the kernel takes: f32, bf16 or f16.
pub trait Elem: Copy + Send + Sync {
    /// The element as f32 (exact).
    fn widen(self) -> f32;
    /// # Safety
    /// `p` points at 16 readable elements; the CPU has AVX-512F.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load_avx512(p: *const Self) -> __m512;
    /// # Safety
    /// `p` points at 16 readable elements; the CPU has AVX2 and F16C.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load_avx2(p: *const Self) -> (__m256, __m256);
}

impl Elem for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load_avx512(p: *const Self) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load_avx2(p: *const Self) -> (__m256, __m256) {
        (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
    }
}

impl Elem for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load_avx512(p: *const Self) -> __m512 {
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i))))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load_avx2(p: *const Self) -> (__m256, __m256) {
        let half = |q: *const Self| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(q as *const __m128i))));
        (half(p), half(p.add(8)))
    }
}

impl Elem for f16 {
    /// Branch-free (so that it vectorises): the exponent is rebased by a multiply, which also
    /// gets subnormals right; infinities and NaNs get the f32 all-ones exponent.
    #[inline(always)]
    fn widen(self) -> f32 {
        let h = self.to_bits() as u32;
        let em = h & 0x7fff;
        let v = f32::from_bits(em << 13) * f32::from_bits(0x7780_0000); // 2^112
        let special = if em >= 0x7c00 { 0x7f80_0000 } else { 0 };
        f32::from_bits(v.to_bits() | special | ((h & 0x8000) << 16))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load_avx512(p: *const Self) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load_avx2(p: *const Self) -> (__m256, __m256) {
        (_mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)), _mm256_cvtph_ps(_mm_loadu_si128(p.add(8) as *const __m128i)))
    }
}

/// Sixteen f32 lanes and what the loops do with them. Every method is `unsafe`: it needs the
/// instruction set its implementation names, and pointers to 16 valid elements.
pub trait Simd: Copy {
    type V: Copy;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(a: f32) -> Self::V;
    unsafe fn load<W: Elem>(p: *const W) -> Self::V;
    unsafe fn loadf(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a · b + c` lane-wise.
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The same on one f32 (the loops' tails).
    unsafe fn madd1(a: f32, b: f32, c: f32) -> f32;
    /// The lanes' sum in a fixed tree: lane `l` plus lane `l + 8`, then `+ 4`, `+ 2`, `+ 1`.
    unsafe fn sum(v: Self::V) -> f32;
    /// Asks for the cache line at `p` in L2 (no effect on the plain path).
    unsafe fn prefetch<T>(p: *const T);
}

/// AVX-512F (with FMA): one register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx512 {
    type V = __m512;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(a: f32) -> __m512 {
        _mm512_set1_ps(a)
    }
    #[inline(always)]
    unsafe fn load<W: Elem>(p: *const W) -> __m512 {
        W::load_avx512(p)
    }
    #[inline(always)]
    unsafe fn loadf(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        _mm512_storeu_ps(p, v)
    }
    #[inline(always)]
    unsafe fn madd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn madd1(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        Avx2::sum((lo, hi))
    }
    #[inline(always)]
    unsafe fn prefetch<T>(p: *const T) {
        _mm_prefetch::<_MM_HINT_T1>(p as *const i8)
    }
}

/// AVX2 with FMA and F16C: two registers, lanes 0–7 and 8–15.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Simd for Avx2 {
    type V = (__m256, __m256);
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        (_mm256_setzero_ps(), _mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn splat(a: f32) -> Self::V {
        (_mm256_set1_ps(a), _mm256_set1_ps(a))
    }
    #[inline(always)]
    unsafe fn load<W: Elem>(p: *const W) -> Self::V {
        W::load_avx2(p)
    }
    #[inline(always)]
    unsafe fn loadf(p: *const f32) -> Self::V {
        (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        _mm256_storeu_ps(p, v.0);
        _mm256_storeu_ps(p.add(8), v.1)
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        (_mm256_fmadd_ps(a.0, b.0, c.0), _mm256_fmadd_ps(a.1, b.1, c.1))
    }
    #[inline(always)]
    unsafe fn madd1(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    unsafe fn sum(v: Self::V) -> f32 {
        let s8 = _mm256_add_ps(v.0, v.1);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)))
    }
    #[inline(always)]
    unsafe fn prefetch<T>(p: *const T) {
        _mm_prefetch::<_MM_HINT_T1>(p as *const i8)
    }
}

/// No vector instructions assumed (and no FMA: `a · b + c` rounds twice).
#[derive(Clone, Copy)]
pub struct Plain;

impl Simd for Plain {
    type V = [f32; L];
    #[inline(always)]
    unsafe fn zero() -> Self::V {
        [0.0; L]
    }
    #[inline(always)]
    unsafe fn splat(a: f32) -> Self::V {
        [a; L]
    }
    #[inline(always)]
    unsafe fn load<W: Elem>(p: *const W) -> Self::V {
        std::array::from_fn(|l| (*p.add(l)).widen())
    }
    #[inline(always)]
    unsafe fn loadf(p: *const f32) -> Self::V {
        std::array::from_fn(|l| *p.add(l))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self::V) {
        for (l, x) in v.iter().enumerate() {
            *p.add(l) = *x;
        }
    }
    #[inline(always)]
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        std::array::from_fn(|l| a[l] * b[l] + c[l])
    }
    #[inline(always)]
    unsafe fn madd1(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
    #[inline(always)]
    unsafe fn sum(mut v: Self::V) -> f32 {
        let mut w = L / 2;
        while w > 0 {
            for l in 0..w {
                v[l] += v[l + w];
            }
            w /= 2;
        }
        v[0]
    }
    #[inline(always)]
    unsafe fn prefetch<T>(_p: *const T) {}
}
