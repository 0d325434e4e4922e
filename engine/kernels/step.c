/* The small pieces of a one-token decode step, called in turn by layers.c (and one by one by
 * the tests).
 *
 * At one token these are a few thousand floats: in PyTorch each is several tensor operations
 * whose dispatch and allocation cost more than the arithmetic. All fp32, same formulas as
 * engine/text_model.py; norm weights already hold (1 + w).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static inline float dot(const float *a, const float *b, int64_t n); /* below, per SIMD branch */

static float inverse_rms(const float *x, int64_t dim, float eps)
{
    return 1.0f / sqrtf(dot(x, x, dim) / (float)dim + eps);
}

/* Gemma's RMSNorm of a few rows: out = x / sqrt(mean(x^2) + eps) * w. */
void step_rmsnorm(const float *x, int64_t rows, int64_t dim, const float *w, float eps, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        const float inv = inverse_rms(xr, dim, eps);
        float *o = out + r * dim;
        for (int64_t k = 0; k < dim; k++)
            o[k] = xr[k] * inv * w[k];
    }
}

/* The sandwich norm's residual: residual += rmsnorm(x) * w, one row. */
void step_rmsnorm_add(const float *x, int64_t dim, const float *w, float eps, float *residual)
{
    const float inv = inverse_rms(x, dim, eps);
    for (int64_t k = 0; k < dim; k++)
        residual[k] += x[k] * inv * w[k];
}

/* Per-head RMSNorm (the q or k norm), then rotary embedding in the rotate-half form, in place
 * on `heads` rows of `dim` values. cos and sin hold dim values (the angles twice over). */
void step_head_norm_rope(float *x, int64_t heads, int64_t dim, const float *w, float eps,
                         const float *cos_a, const float *sin_a)
{
    const int64_t half = dim / 2;
    for (int64_t h = 0; h < heads; h++) {
        float *r = x + h * dim;
        const float inv = inverse_rms(r, dim, eps);
        for (int64_t k = 0; k < half; k++) {
            const float a = r[k] * inv * w[k];
            const float b = r[k + half] * inv * w[k + half];
            r[k] = a * cos_a[k] - b * sin_a[k];
            r[k + half] = b * cos_a[k + half] + a * sin_a[k + half];
        }
    }
}

/* e^x for x in [-87, 88], to about 2 ulp, in plain arithmetic the compiler vectorises (the C
 * library's expf is a call per value: 4x slower here than all the rest of this file). */
static inline float exp_approx(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float n = (x * 1.44269504f + shifter) - shifter;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f; /* x - n ln 2, two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = (p * r * r + r) + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23; /* 2^n */
    float scale;
    __builtin_memcpy(&scale, &bits, 4);
    return p * scale;
}

/* The MLP's middle: out = gelu_tanh(gate) * up, with gate_up = [gate | up] (ff values each).
 * gelu_tanh(x) = x (1 + tanh z) / 2 = x / (1 + e^(-2z)), z = sqrt(2 / pi) (x + 0.044715 x^3). */
void step_gelu_mul(const float *gate_up, int64_t ff, float *out)
{
    const float *up = gate_up + ff;
    for (int64_t k = 0; k < ff; k++) {
        const float x = gate_up[k];
        const float z = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        out[k] = x / (1.0f + exp_approx(-2.0f * z)) * up[k];
    }
}

/* dot(a, b, n), and axpy_rows: out[0:width] = sum over s of p[s] * rows[s * stride + 0:width]
 * with width <= ROW_BLOCK. Both keep four independent running sums in registers: one chain of
 * dependent FMAs waits on its own latency, and sums kept in memory (what the compiler makes of
 * the plain-C form) cost 2.5x (measured on a dot of 256 values). One body serves AVX-512 and
 * AVX2 through the few operations below; plain C keeps lanes in an array. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define LANES 16
typedef __m512 vec;
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
static inline float v_sum(vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define LANES 8
typedef __m256 vec;
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
static inline float v_sum(vec v)
{
    const __m128 half = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}
#endif

#ifdef LANES
#define ROW_BLOCK (4 * LANES)
static inline float dot(const float *a, const float *b, int64_t n)
{
    vec s0 = V_ZERO(), s1 = s0, s2 = s0, s3 = s0;
    int64_t k = 0;
    for (; k + ROW_BLOCK <= n; k += ROW_BLOCK) {
        s0 = V_FMA(V_LOAD(a + k), V_LOAD(b + k), s0);
        s1 = V_FMA(V_LOAD(a + k + LANES), V_LOAD(b + k + LANES), s1);
        s2 = V_FMA(V_LOAD(a + k + 2 * LANES), V_LOAD(b + k + 2 * LANES), s2);
        s3 = V_FMA(V_LOAD(a + k + 3 * LANES), V_LOAD(b + k + 3 * LANES), s3);
    }
    float sum = v_sum(V_ADD(V_ADD(s0, s1), V_ADD(s2, s3)));
    for (; k < n; k++)
        sum += a[k] * b[k];
    return sum;
}

static inline void axpy_rows(const float *p, const float *rows, int64_t n, int64_t stride,
                             int64_t width, float *out)
{
    if (width < ROW_BLOCK) { /* the last columns of a head not a multiple of the block */
        for (int64_t j = 0; j < width; j++) {
            float sum = 0.0f;
            for (int64_t s = 0; s < n; s++)
                sum += p[s] * rows[s * stride + j];
            out[j] = sum;
        }
        return;
    }
    vec s0 = V_ZERO(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t s = 0; s < n; s++) {
        if (p[s] == 0.0f)
            continue;
        const vec w = V_SET1(p[s]);
        const float *r = rows + s * stride;
        s0 = V_FMA(w, V_LOAD(r), s0);
        s1 = V_FMA(w, V_LOAD(r + LANES), s1);
        s2 = V_FMA(w, V_LOAD(r + 2 * LANES), s2);
        s3 = V_FMA(w, V_LOAD(r + 3 * LANES), s3);
    }
    V_STORE(out, s0);
    V_STORE(out + LANES, s1);
    V_STORE(out + 2 * LANES, s2);
    V_STORE(out + 3 * LANES, s3);
}
#else
#define ROW_BLOCK 16
static inline float dot(const float *a, const float *b, int64_t n)
{
    float acc[16] = {0};
    int64_t k = 0;
    for (; k + 16 <= n; k += 16)
        for (int j = 0; j < 16; j++)
            acc[j] += a[k + j] * b[k + j];
    float sum = 0.0f;
    for (int j = 0; j < 16; j++)
        sum += acc[j];
    for (; k < n; k++)
        sum += a[k] * b[k];
    return sum;
}

static inline void axpy_rows(const float *p, const float *rows, int64_t n, int64_t stride,
                             int64_t width, float *out)
{
    float acc[ROW_BLOCK] = {0};
    for (int64_t s = 0; s < n; s++)
        for (int64_t j = 0; j < width; j++)
            acc[j] += p[s] * rows[s * stride + j];
    for (int64_t j = 0; j < width; j++)
        out[j] = acc[j];
}
#endif

/* One new token's attention over `keys` cached positions, in place of SDPA (whose fixed cost,
 * some 80 us a call, is most of a short conversation's attention). The `group` query heads
 * that share a KV head read each of its keys and values once. Threads take ranges of keys and
 * their partial softmaxes are merged (as in flash decoding), so long contexts use every core.
 *   q    [n_kv, group, dim]         out [n_kv, group, dim]
 *   k, v [n_kv, stride, dim]: the first `keys` rows of each KV head's buffer are attended
 *   positions [keys] the position each slot holds (-1: empty), or NULL: every slot is attended;
 *     slots below position `oldest` are outside a sliding window (or empty) and never read
 * Returns 0, or -1 when the scores cannot be allocated or the group is too large. */
#define ATTN_MAX_GROUP 16
#define ATTN_MAX_PARTS 64
/* Fewer keys than this a thread: not worth waking it. The keys come from memory (the weights
 * streamed since evicted them), so two threads read them faster even at 100 keys: the 270M's
 * 18 layers at 96 to 290 keys, 1.0-1.6 ms a step with 256 here, 0.7-1.0 ms with 32. */
#define ATTN_KEYS_PER_PART 32

/* Softmax-weighted sum of the values of keys [first, last) for each query of the group,
 * unnormalised: acc = sum p v with p = e^(score - max); returns max and sum p per query. */
static void attend_part(const float *q, const float *k, const float *v, int64_t group,
                        int64_t dim, int64_t first, int64_t last, const int64_t *positions,
                        int64_t oldest, float scale, float *scores, float *max_out,
                        float *sum_out, float *acc)
{
    const int64_t n = last - first;
    for (int64_t g = 0; g < group; g++)
        max_out[g] = -INFINITY;
    for (int64_t s = 0; s < n; s++) {
        if (positions && positions[first + s] < oldest) { /* masked: never read */
            for (int64_t g = 0; g < group; g++)
                scores[g * n + s] = -INFINITY;
            continue;
        }
        for (int64_t g = 0; g < group; g++) {
            const float score = dot(q + g * dim, k + (first + s) * dim, dim) * scale;
            scores[g * n + s] = score;
            max_out[g] = score > max_out[g] ? score : max_out[g];
        }
    }
    for (int64_t g = 0; g < group; g++) {
        float *sg = scores + g * n, sum = 0.0f;
        if (max_out[g] == -INFINITY) { /* every key of this part is masked */
            sum_out[g] = 0.0f;
            for (int64_t d = 0; d < dim; d++)
                acc[g * dim + d] = 0.0f;
            continue;
        }
        for (int64_t s = 0; s < n; s++)
            sg[s] = sg[s] == -INFINITY ? 0.0f : exp_approx(sg[s] - max_out[g]);
        for (int64_t s = 0; s < n; s++)
            sum += sg[s];
        for (int64_t d = 0; d < dim; d += ROW_BLOCK)
            axpy_rows(sg, v + first * dim + d, n, dim, dim - d < ROW_BLOCK ? dim - d : ROW_BLOCK,
                      acc + g * dim + d);
        sum_out[g] = sum;
    }
}

/* Ranges of keys for the threads: none below ATTN_KEYS_PER_PART keys each, and a multiple of
 * the thread count, so no thread does twice the work of another. */
static int64_t part_count(int64_t keys)
{
    int64_t parts = keys / ATTN_KEYS_PER_PART, threads = 1;
    if (parts <= 1)
        return 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    parts = (parts + threads - 1) / threads * threads;
    const int64_t most = ATTN_MAX_PARTS / threads * threads;
    return parts > most ? (most > 0 ? most : 1) : parts;
}

int step_attention(const float *q, const float *k, const float *v, int64_t n_kv, int64_t group,
                   int64_t dim, int64_t keys, int64_t stride, const int64_t *positions,
                   int64_t oldest, float scale, float *out)
{
    if (group > ATTN_MAX_GROUP || keys < 1)
        return -1;
    const int64_t parts = part_count(keys);
    const int64_t per_part = (keys + parts - 1) / parts;
    float *scores = malloc(sizeof(float) * (size_t)(n_kv * group * (keys + parts * dim)));
    if (!scores)
        return -1;
    float *partial = scores + n_kv * group * keys; /* [n_kv, parts, group, dim] */
    float maxes[ATTN_MAX_PARTS * ATTN_MAX_GROUP], sums[ATTN_MAX_PARTS * ATTN_MAX_GROUP];
    for (int64_t h = 0; h < n_kv; h++) {
#pragma omp parallel for schedule(static) if (parts > 1)
        for (int64_t p = 0; p < parts; p++) {
            const int64_t first = p * per_part, last = first + per_part < keys ? first + per_part
                                                                                : keys;
            if (first >= last) {
                for (int64_t g = 0; g < group; g++)
                    maxes[p * group + g] = -INFINITY, sums[p * group + g] = 0.0f;
                continue;
            }
            attend_part(q + h * group * dim, k + h * stride * dim, v + h * stride * dim, group,
                        dim, first, last, positions, oldest, scale,
                        scores + h * group * keys + first * group, maxes + p * group,
                        sums + p * group, partial + (h * parts + p) * group * dim);
        }
        for (int64_t g = 0; g < group; g++) { /* merge the parts' partial softmaxes */
            float top = -INFINITY, total = 0.0f;
            for (int64_t p = 0; p < parts; p++)
                top = maxes[p * group + g] > top ? maxes[p * group + g] : top;
            float *o = out + (h * group + g) * dim;
            for (int64_t d = 0; d < dim; d++)
                o[d] = 0.0f;
            for (int64_t p = 0; p < parts; p++) {
                if (maxes[p * group + g] == -INFINITY)
                    continue;
                const float w = exp_approx(maxes[p * group + g] - top);
                const float *part = partial + ((h * parts + p) * group + g) * dim;
                total += w * sums[p * group + g];
                for (int64_t d = 0; d < dim; d++)
                    o[d] += w * part[d];
            }
            const float inv = total > 0.0f ? 1.0f / total : 0.0f;
            for (int64_t d = 0; d < dim; d++)
                o[d] *= inv;
        }
    }
    free(scores);
    return 0;
}

/* A new token's keys and values [n_kv, dim] into its slot of the cache [n_kv, stride, dim]. */
void step_store(const float *k_new, const float *v_new, float *k, float *v, int64_t n_kv,
                int64_t dim, int64_t stride, int64_t slot)
{
    for (int64_t h = 0; h < n_kv; h++) {
        memcpy(k + (h * stride + slot) * dim, k_new + h * dim, sizeof(float) * (size_t)dim);
        memcpy(v + (h * stride + slot) * dim, v_new + h * dim, sizeof(float) * (size_t)dim);
    }
}
