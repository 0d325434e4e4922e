/* What q8.c and q8_rounded.c share: the layout (int8 weights in groups of 32 along each row,
 * one fp16 scale per group) and how a matrix is streamed. */
#ifndef GEMMA_DESK_Q8_H
#define GEMMA_DESK_Q8_H

#include <stdint.h>

#define GROUP 32
/* Weights are read once, front to back: asking for them 4 KB ahead keeps more loads in
 * flight than the hardware prefetcher does (12 -> 17 GB/s on two cores, measured). Prefetching
 * past the end of a matrix is harmless. */
#define PREFETCH_AHEAD 4096
#define PREFETCH(p) __builtin_prefetch((const char *)(p) + PREFETCH_AHEAD)
#define MAX_GROUPS 2048 /* rows of up to 65,536 values (Gemma 3 27B's widest is 21,504) */
/* Below this many weights a matrix is read by one thread: waking the others costs more. */
#define PARALLEL_MIN (1 << 16)

void q8_matvec(const float *x, int64_t tokens, const int8_t *q, const uint16_t *scales,
               int64_t rows, int64_t cols, float *y);

#endif
