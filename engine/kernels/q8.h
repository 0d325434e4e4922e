/* What the weight kernels (q8.c, q8_rounded.c, q5.c) share: groups of 32 along each row with
 * one fp16 scale each, how a matrix is streamed, and number conversions. */
#ifndef GEMMA_DESK_Q8_H
#define GEMMA_DESK_Q8_H

#include <stdint.h>
#include <string.h>

#define GROUP 32
/* Weights are read once, front to back: asking for them 4 KB ahead keeps more loads in
 * flight than the hardware prefetcher does (12 -> 17 GB/s on two cores, measured). Prefetching
 * past the end of a matrix is harmless. */
#define PREFETCH_AHEAD 4096
#define PREFETCH(p) __builtin_prefetch((const char *)(p) + PREFETCH_AHEAD)
#define MAX_GROUPS 2048 /* rows of up to 65,536 values (Gemma 3 27B's widest is 21,504) */
/* Below this many weights a matrix is read by one thread: waking the others costs more. */
#define PARALLEL_MIN (1 << 16)

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

static inline uint16_t float_to_bf16(float f)
{
    uint32_t u = float_to_bits(f);
    u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

void q8_matvec(const float *x, int64_t tokens, const int8_t *q, const uint16_t *scales,
               int64_t rows, int64_t cols, float *y);

#endif
