/* Weight-only int8 kernels for the CPU: int8 weights in groups of 32 along each row, one fp16
 * scale per group (GGUF's Q8_0 layout split into two arrays), fp32 activations.
 *
 * Decoding one token reads every weight once and does two flops per byte, so speed is the
 * memory bandwidth: int8 reads a quarter of the bytes of fp32. The loops are plain C that the
 * compiler vectorises for the machine it is built on (-O3 -march=native); rows are shared
 * among the threads of the OpenMP runtime that torch itself uses.
 * q8_rounded.c has the faster product for CPUs with AVX-512 VNNI.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "q8.h"

#define LANES 16

static inline float bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* IEEE half -> float without branches on the hot path, so the loop over scales vectorises. */
static inline float half_to_float(uint16_t h)
{
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normal = bits_to_float((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float subnormal = bits_to_float((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t magnitude = two_w < (1u << 27) ? float_to_bits(subnormal)
                                                  : float_to_bits(normal);
    return bits_to_float(sign | magnitude);
}

static inline uint16_t float_to_half(float f)
{
    /* Round to nearest even through the float unit: scale into the half range, add the
     * exponent's bias, and read the bits back (the classic trick, valid for finite f). */
    const float huge = 0x1.0p+112f, tiny = 0x1.0p-110f;
    float base = (f < 0 ? -f : f) * huge * tiny;
    const uint32_t w = float_to_bits(f);
    const uint32_t shl1 = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1 & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = bits_to_float((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = float_to_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1 > 0xFF000000u ? 0x7E00u : nonsign));
}

static inline uint16_t float_to_bf16(float f)
{
    uint32_t u = float_to_bits(f);
    u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

/* Each branch has row_scales (a row's fp16 scales as floats, converted many at a time rather
 * than once per group inside the hot loop) and dot_row (one row times one token). */
#if defined(__AVX512F__)
#include <immintrin.h>
static void row_scales(const uint16_t *s, int64_t groups, float *out)
{
    for (int64_t g = 0; g < groups; g += 16) {
        const __mmask16 live = groups - g >= 16 ? 0xFFFF : (__mmask16)((1u << (groups - g)) - 1);
        const __m256i h = _mm256_maskz_loadu_epi16(live, s + g);
        _mm512_mask_storeu_ps(out + g, live, _mm512_cvtph_ps(h));
    }
}

static inline __m512 load16(const int8_t *q)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const void *)q)));
}

/* One group: 32 int8 weights times 32 floats, summed into 16 lanes, then scaled. */
static float dot_row(const int8_t *q, const float *scale, const float *x, int64_t groups)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        const int8_t *qg = q + g * GROUP;
        const float *xg = x + g * GROUP;
        PREFETCH(qg);
        const __m512 part = _mm512_fmadd_ps(load16(qg + 16), _mm512_loadu_ps(xg + 16),
                                            _mm512_mul_ps(load16(qg), _mm512_loadu_ps(xg)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(scale[g]), part, acc);
    }
    return _mm512_reduce_add_ps(acc);
}
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
static void row_scales(const uint16_t *s, int64_t groups, float *out)
{
    int64_t g = 0;
    for (; g + 8 <= groups; g += 8)
        _mm256_storeu_ps(out + g, _mm256_cvtph_ps(_mm_loadu_si128((const void *)(s + g))));
    for (; g < groups; g++)
        out[g] = _cvtsh_ss(s[g]);
}

static inline __m256 load8(const int8_t *q)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const void *)q)));
}

static inline __m256 group8x4(const int8_t *qg, const float *xg)
{
    /* Two short chains instead of one of four dependent FMAs. */
    const __m256 a = _mm256_fmadd_ps(load8(qg + 16), _mm256_loadu_ps(xg + 16),
                                     _mm256_mul_ps(load8(qg), _mm256_loadu_ps(xg)));
    const __m256 b = _mm256_fmadd_ps(load8(qg + 24), _mm256_loadu_ps(xg + 24),
                                     _mm256_mul_ps(load8(qg + 8), _mm256_loadu_ps(xg + 8)));
    return _mm256_add_ps(a, b);
}

static float dot_row(const int8_t *q, const float *scale, const float *x, int64_t groups)
{
    __m256 acc = _mm256_setzero_ps();
    for (int64_t g = 0; g < groups; g++) {
        PREFETCH(q + g * GROUP);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(scale[g]), group8x4(q + g * GROUP, x + g * GROUP),
                              acc);
    }
    const __m128 half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    const __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}
#else
/* Other machines (ARM, older x86): plain C with one running sum per lane, which compilers
 * vectorise without reassociating floats. */
static void row_scales(const uint16_t *s, int64_t groups, float *out)
{
    for (int64_t g = 0; g < groups; g++)
        out[g] = half_to_float(s[g]);
}

static float dot_row(const int8_t *q, const float *scale, const float *x, int64_t groups)
{
    float acc[LANES] = {0};
    for (int64_t g = 0; g < groups; g++) {
        const int8_t *qg = q + g * GROUP;
        const float *xg = x + g * GROUP;
        float part[LANES];
        PREFETCH(qg);
        for (int j = 0; j < LANES; j++)
            part[j] = (float)qg[j] * xg[j] + (float)qg[j + LANES] * xg[j + LANES];
        for (int j = 0; j < LANES; j++)
            acc[j] += scale[g] * part[j];
    }
    float total = 0.0f;
    for (int j = 0; j < LANES; j++)
        total += acc[j];
    return total;
}
#endif

/* Which branch of dot_row this build took: 512 (AVX-512), 256 (AVX2), 0 (plain C). */
int q8_simd_bits(void)
{
#if defined(__AVX512F__)
    return 512;
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
    return 256;
#else
    return 0;
#endif
}

/* y[t, n] = sum over k of w[n, k] x[t, k] for a few tokens t (decode); x is [tokens, cols]. */
void q8_matvec(const float *x, int64_t tokens, const int8_t *q, const uint16_t *scales,
               int64_t rows, int64_t cols, float *y)
{
    const int64_t groups = cols / GROUP;
#pragma omp parallel for schedule(static) if (rows * cols >= PARALLEL_MIN)
    for (int64_t n = 0; n < rows; n++) {
        float scale[MAX_GROUPS];
        row_scales(scales + n * groups, groups, scale);
        for (int64_t t = 0; t < tokens; t++)
            y[t * rows + n] = dot_row(q + n * cols, scale, x + t * cols, groups);
    }
}

/* The dense weights, for prefill's matrix products: fp32 (bf16 = 0) or bf16 (bf16 = 1). */
void q8_dequantize(const int8_t *q, const uint16_t *scales, int64_t rows, int64_t cols,
                   void *out, int bf16)
{
    const int64_t groups = cols / GROUP;
#pragma omp parallel for schedule(static) if (rows * cols >= PARALLEL_MIN)
    for (int64_t n = 0; n < rows; n++) {
        for (int64_t g = 0; g < groups; g++) {
            const float s = half_to_float(scales[n * groups + g]);
            const int8_t *qg = q + n * cols + g * GROUP;
            const int64_t at = n * cols + g * GROUP;
            if (bf16) {
                uint16_t *o = (uint16_t *)out + at;
                for (int j = 0; j < GROUP; j++)
                    o[j] = float_to_bf16(s * (float)qg[j]);
            } else {
                float *o = (float *)out + at;
                for (int j = 0; j < GROUP; j++)
                    o[j] = s * (float)qg[j];
            }
        }
    }
}

/* fp32 -> int8 groups with an fp16 scale each (amax / 127, as GGUF's Q8_0 does). */
void q8_quantize(const float *w, int64_t rows, int64_t cols, int8_t *q, uint16_t *scales)
{
    const int64_t groups = cols / GROUP;
#pragma omp parallel for schedule(static) if (rows * cols >= PARALLEL_MIN)
    for (int64_t n = 0; n < rows; n++) {
        for (int64_t g = 0; g < groups; g++) {
            const float *wg = w + n * cols + g * GROUP;
            float amax = 0.0f;
            for (int j = 0; j < GROUP; j++) {
                const float a = wg[j] < 0 ? -wg[j] : wg[j];
                amax = a > amax ? a : amax;
            }
            const uint16_t h = float_to_half(amax / 127.0f);
            const float d = half_to_float(h);
            const float inv = d > 0.0f ? 1.0f / d : 0.0f;
            scales[n * groups + g] = h;
            for (int j = 0; j < GROUP; j++) {
                float v = wg[j] * inv;
                v = v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v);
                q[n * cols + g * GROUP + j] = (int8_t)(v < 0 ? v - 0.5f : v + 0.5f);
            }
        }
    }
}
