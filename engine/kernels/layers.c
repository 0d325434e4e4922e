/* Every decoder layer of a one-token step in one call (engine/quant_step.py): the same kernels
 * as calling them one by one from Python, without a dozen foreign calls a layer (at 270M the
 * Python between them cost about 2 ms of a 19 ms step). The order of work is TextModel's:
 *   h = norm(x); q, k, v = qkv h; q, k = rope(norm(q)), rope(norm(k)); store k, v;
 *   x += norm(o attention(q)); x += norm(down (gelu(gate h') * up h')), h' = norm(x)
 */
#include <stdint.h>

void q8_matvec(const float *x, int64_t tokens, const int8_t *q, const uint16_t *scales,
               int64_t rows, int64_t cols, float *y);
void step_rmsnorm(const float *x, int64_t rows, int64_t dim, const float *w, float eps, float *out);
void step_rmsnorm_add(const float *x, int64_t dim, const float *w, float eps, float *residual);
void step_head_norm_rope(float *x, int64_t heads, int64_t dim, const float *w, float eps,
                         const float *cos_a, const float *sin_a);
void step_gelu_mul(const float *gate_up, int64_t ff, float *out);
int step_attention(const float *q, const float *k, const float *v, int64_t n_kv, int64_t group,
                   int64_t dim, int64_t keys, int64_t stride, const int64_t *positions,
                   int64_t oldest, float scale, float *out);
void step_store(const float *k_new, const float *v_new, float *k, float *v, int64_t n_kv,
                int64_t dim, int64_t stride, int64_t slot);

/* One int8 matrix: values and fp16 scales. */
typedef struct {
    const int8_t *q;
    const uint16_t *scales;
} Matrix;

/* What stays fixed for a layer. Norm weights hold (1 + w). */
typedef struct {
    Matrix qkv, o, gate_up, down;
    const float *input_norm, *post_attention_norm, *pre_feedforward_norm,
        *post_feedforward_norm, *q_norm, *k_norm;
    int64_t sliding;
} Layer;

/* What one step needs of a kind of layer (local or global): where the token goes in its cache,
 * how many slots it attends, the positions they hold and the oldest it may see (positions NULL:
 * all of them; see step_attention), and its RoPE angles. */
typedef struct {
    int64_t slot, keys;
    const int64_t *positions;
    int64_t oldest;
    const float *cos_a, *sin_a;
} Place;

typedef struct {
    int64_t hidden, heads, kv_heads, head_dim, intermediate;
    float eps, scale;
} Shape;

/* x [hidden] is updated in place; caches[2 i], caches[2 i + 1] are layer i's K and V buffers
 * [kv_heads, stride, head_dim] with strides[i] slots; scratch holds step_scratch_floats(). */
int64_t step_scratch_floats(const Shape *s)
{
    return s->hidden * 2 + (s->heads + 2 * s->kv_heads) * s->head_dim + s->heads * s->head_dim
           + 3 * s->intermediate;
}

int step_layers(float *x, const Layer *layers, int64_t count, const Shape *s,
                const Place *local, const Place *global, float *const *caches,
                const int64_t *strides, float *scratch)
{
    const int64_t d = s->hidden, hd = s->head_dim, q_width = s->heads * hd;
    const int64_t kv_width = s->kv_heads * hd, ff = s->intermediate;
    float *h = scratch, *out = h + d, *qkv = out + d, *attended = qkv + q_width + 2 * kv_width;
    float *gate_up = attended + q_width, *mid = gate_up + 2 * ff;
    for (int64_t i = 0; i < count; i++) {
        const Layer *l = layers + i;
        const Place *at = l->sliding ? local : global;
        float *k = caches[2 * i], *v = caches[2 * i + 1];
        step_rmsnorm(x, 1, d, l->input_norm, s->eps, h);
        q8_matvec(h, 1, l->qkv.q, l->qkv.scales, q_width + 2 * kv_width, d, qkv);
        step_head_norm_rope(qkv, s->heads, hd, l->q_norm, s->eps, at->cos_a, at->sin_a);
        step_head_norm_rope(qkv + q_width, s->kv_heads, hd, l->k_norm, s->eps, at->cos_a,
                            at->sin_a);
        step_store(qkv + q_width, qkv + q_width + kv_width, k, v, s->kv_heads, hd, strides[i],
                   at->slot);
        if (step_attention(qkv, k, v, s->kv_heads, s->heads / s->kv_heads, hd, at->keys,
                           strides[i], at->positions, at->oldest, s->scale, attended) != 0)
            return -1;
        q8_matvec(attended, 1, l->o.q, l->o.scales, d, q_width, out);
        step_rmsnorm_add(out, d, l->post_attention_norm, s->eps, x);
        step_rmsnorm(x, 1, d, l->pre_feedforward_norm, s->eps, h);
        q8_matvec(h, 1, l->gate_up.q, l->gate_up.scales, 2 * ff, d, gate_up);
        step_gelu_mul(gate_up, ff, mid);
        q8_matvec(mid, 1, l->down.q, l->down.scales, d, ff, out);
        step_rmsnorm_add(out, d, l->post_feedforward_norm, s->eps, x);
    }
    return 0;
}
