/* Dropout masks from a counter: entry i of a mask with stream `seed` is kept when
 *
 *     u(i) = bits 16 (i mod 4) .. 16 (i mod 4) + 15 of splitmix64(seed + (i / 4 + 1) * GAMMA)
 *
 * is below `threshold` = round((1 - p) 2^16). No state: any range of entries can be computed
 * on its own (threads split ranges; backward recomputes the mask instead of storing it), and
 * mygo.fast.counter computes the same u(i) with torch operations where this file is not built.
 *
 * Every function takes the element range [start, end) of a contiguous tensor and the tensor's
 * base pointer. bf16 is handled as its bit pattern (uint16); products are formed in float and
 * rounded to the nearest even bf16, as torch rounds.
 */
#include <stdint.h>
#include <string.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the lanes of a word are read little-endian"
#endif

#define GAMMA 0x9E3779B97F4A7C15ULL
#define BLOCK 1024                                     /* words made at a time: 4096 entries */

static inline uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* the words g0 .. g1 - 1; read as 16-bit numbers (little-endian), entry 4 g + k is lane k of word g */
typedef union { uint64_t word[BLOCK]; uint16_t lane[4 * BLOCK]; } Lanes;

static inline void make_lanes(Lanes *l, int64_t g0, int64_t g1, uint64_t seed) {
    for (int64_t g = g0; g < g1; g++) l->word[g - g0] = mix(seed + ((uint64_t)g + 1) * GAMMA);
}

/* BODY runs for each entry i in [start, end) with `kept` set: the lanes are made a block at a
 * time, and BODY's loop is a plain loop over i that the compiler vectorises */
#define FOR_ENTRIES(start, end, seed, threshold, BODY)                                         \
    do {                                                                                       \
        Lanes l_;                                                                              \
        int64_t last_ = ((end) + 3) >> 2;                                                      \
        for (int64_t g0_ = (start) >> 2; g0_ < last_; g0_ += BLOCK) {                          \
            int64_t g1_ = g0_ + BLOCK < last_ ? g0_ + BLOCK : last_;                          \
            make_lanes(&l_, g0_, g1_, (seed));                                                 \
            int64_t lo_ = 4 * g0_ > (start) ? 4 * g0_ : (start);                              \
            int64_t hi_ = 4 * g1_ < (end) ? 4 * g1_ : (end);                                  \
            const uint16_t *v_ = l_.lane + (lo_ - 4 * g0_);                                    \
            for (int64_t i = lo_; i < hi_; i++) {                                              \
                int kept = v_[i - lo_] < (threshold);                                          \
                BODY;                                                                          \
            }                                                                                  \
        }                                                                                      \
    } while (0)

static inline float bf16_to_float(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline uint16_t float_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    if ((b & 0x7FFFFFFF) > 0x7F800000) return 0x7FC0;              /* NaN */
    b += 0x7FFF + ((b >> 16) & 1);                                   /* round to nearest even */
    return (uint16_t)(b >> 16);
}

/* dst[0 .. n) = src[0 .. n) (bytes) with non-temporal stores where the CPU has them and dst is
 * aligned: a large output written once goes to memory without first being read into the cache
 * (call store_fence() before returning) */
static inline void stream_bytes(void *restrict dst, const void *restrict src, int64_t n) {
    char *d = (char *)dst;
    const char *s = (const char *)src;
#if defined(__AVX512F__)
    if (((uintptr_t)d & 63) == 0 && n % 64 == 0) {
        for (int64_t q = 0; q < n; q += 64)
            _mm512_stream_si512((void *)(d + q), _mm512_loadu_si512((const void *)(s + q)));
        return;
    }
#elif defined(__AVX__)
    if (((uintptr_t)d & 31) == 0 && n % 32 == 0) {
        for (int64_t q = 0; q < n; q += 32)
            _mm256_stream_si256((__m256i *)(d + q), _mm256_loadu_si256((const __m256i *)(s + q)));
        return;
    }
#elif defined(__SSE2__)
    if (((uintptr_t)d & 15) == 0 && n % 16 == 0) {
        for (int64_t q = 0; q < n; q += 16)
            _mm_stream_si128((__m128i *)(d + q), _mm_loadu_si128((const __m128i *)(s + q)));
        return;
    }
#endif
    memcpy(d, s, (size_t)n);
}

static inline void store_fence(void) {
#if defined(__SSE__)
    _mm_sfence();
#endif
}

#define ROW_BUFFER 4096                                  /* floats staged per streamed row piece */

/* out[i] = 1 where kept (0 where dropped; the other way round with `dropped`) */
void keep_u8(uint8_t *out, int64_t start, int64_t end, uint64_t seed, uint32_t threshold, int dropped) {
    uint8_t flip = dropped != 0;
    FOR_ENTRIES(start, end, seed, threshold, out[i] = (uint8_t)kept ^ flip);
}

/* x[i] = x[i] where kept, x[i] 0 where dropped (0, -0 or NaN, as x * mask gives), in place */
void mask_f32(float *restrict x, int64_t start, int64_t end, uint64_t seed, uint32_t threshold) {
    FOR_ENTRIES(start, end, seed, threshold, x[i] = kept ? x[i] : x[i] * 0.0f);
}

void mask_bf16(uint16_t *restrict x, int64_t start, int64_t end, uint64_t seed, uint32_t threshold) {
    FOR_ENTRIES(start, end, seed, threshold, x[i] = kept ? x[i] : float_to_bf16(bf16_to_float(x[i]) * 0.0f));
}

/* x[i] = relu(x[i]) masked, in place (relu keeps NaN, as torch's does) */
void relu_mask_f32(float *restrict x, int64_t start, int64_t end, uint64_t seed, uint32_t threshold) {
    FOR_ENTRIES(start, end, seed, threshold, {
        float v = x[i] < 0.0f ? 0.0f : x[i];
        x[i] = kept ? v : v * 0.0f;
    });
}

void relu_mask_bf16(uint16_t *restrict x, int64_t start, int64_t end, uint64_t seed, uint32_t threshold) {
    FOR_ENTRIES(start, end, seed, threshold, {
        float v = bf16_to_float(x[i]);
        v = v < 0.0f ? 0.0f : v;
        x[i] = float_to_bf16(kept ? v : v * 0.0f);
    });
}

/* out[i] = x[i] scale where kept, x[i] 0 where dropped */
void scale_mask_f32(const float *restrict x, float *restrict out, int64_t start, int64_t end, uint64_t seed,
                    uint32_t threshold, float scale) {
    FOR_ENTRIES(start, end, seed, threshold, out[i] = x[i] * (kept ? scale : 0.0f));
}

void scale_mask_bf16(const uint16_t *restrict x, uint16_t *restrict out, int64_t start, int64_t end, uint64_t seed,
                     uint32_t threshold, float scale) {
    FOR_ENTRIES(start, end, seed, threshold, out[i] = float_to_bf16(bf16_to_float(x[i]) * (kept ? scale : 0.0f)));
}

/* out[b, i, j] = a[b, i] c[b, j] times entry (b d1 + i) d2 + j of the 0 / 1 mask, for the rows b
 * in [start, end): a (B, d1), c (B, d2), out (B, d1, d2) */
void outer_mask_f32(const float *restrict a, const float *restrict c, float *restrict out, int64_t start, int64_t end,
                    int64_t d1, int64_t d2, uint64_t seed, uint32_t threshold) {
    float row[ROW_BUFFER] __attribute__((aligned(64)));
    for (int64_t b = start; b < end; b++)
        for (int64_t r = b * d1; r < (b + 1) * d1; r++) {
            float ar = a[r];
            const float *cb = c + b * d2;
            /* staged in pieces, then streamed: the (B, d1, d2) output is written once, read later */
            for (int64_t p0 = r * d2; p0 < (r + 1) * d2; p0 += ROW_BUFFER) {
                int64_t p1 = p0 + ROW_BUFFER < (r + 1) * d2 ? p0 + ROW_BUFFER : (r + 1) * d2;
                const float *cp = cb + (p0 - r * d2);
                FOR_ENTRIES(p0, p1, seed, threshold, row[i - p0] = ar * cp[i - p0] * (kept ? 1.0f : 0.0f));
                stream_bytes(out + p0, row, (p1 - p0) * (int64_t)sizeof(float));
            }
        }
    store_fence();
}

void outer_mask_bf16(const uint16_t *restrict a, const uint16_t *restrict c, uint16_t *restrict out, int64_t start,
                     int64_t end, int64_t d1, int64_t d2, uint64_t seed, uint32_t threshold) {
    uint16_t row[ROW_BUFFER] __attribute__((aligned(64)));
    for (int64_t b = start; b < end; b++)
        for (int64_t r = b * d1; r < (b + 1) * d1; r++) {
            float ar = bf16_to_float(a[r]);
            const uint16_t *cb = c + b * d2;
            for (int64_t p0 = r * d2; p0 < (r + 1) * d2; p0 += ROW_BUFFER) {          /* as in outer_mask_f32 */
                int64_t p1 = p0 + ROW_BUFFER < (r + 1) * d2 ? p0 + ROW_BUFFER : (r + 1) * d2;
                const uint16_t *cp = cb + (p0 - r * d2);
                FOR_ENTRIES(p0, p1, seed, threshold,
                            row[i - p0] = float_to_bf16(ar * bf16_to_float(cp[i - p0]) * (kept ? 1.0f : 0.0f)));
                stream_bytes(out + p0, row, (p1 - p0) * (int64_t)sizeof(uint16_t));
            }
        }
    store_fence();
}

/* Gathered token slots of a sequence, dropout and slot bias in one pass: for the entities e in
 * [start, end) and their k tokens j, the row rows[ids[e k + j]] (d floats) times entry
 * (e k + j) d + c of the mask (kept: `scale`, dropped: 0), plus bias[j d + c], is written to
 * out[(e L + offset + j) d + c]: out (E, L, d) the sequence, its slots offset .. offset + k - 1. */
void gather_mask_bias_f32(const float *restrict rows, const int64_t *restrict ids, const float *restrict bias,
                          float *restrict out, int64_t start, int64_t end, int64_t k, int64_t d, int64_t L,
                          int64_t offset, uint64_t seed, uint32_t threshold, float scale) {
    for (int64_t e = start; e < end; e++)
        for (int64_t j = 0; j < k; j++) {
            const float *src = rows + ids[e * k + j] * d;
            const float *b = bias + j * d;
            float *dst = out + (e * L + offset + j) * d;
            int64_t base = (e * k + j) * d;
            FOR_ENTRIES(base, base + d, seed, threshold,
                        dst[i - base] = src[i - base] * (kept ? scale : 0.0f) + b[i - base]);
        }
}

/* Its backward: the sequence's gradient grad (E, L, d) at those slots, times the mask's entries,
 * added into rows_grad[ids[e k + j]] in token order, for the tokens whose row is in
 * [row_start, row_end) (threads take ranges of rows: no two write one row); and those tokens'
 * gradients summed into bias_grad (k, d) (in double, added to what it holds). */
void scatter_mask_f32(const float *restrict grad, const int64_t *restrict ids, float *restrict rows_grad,
                      double *restrict bias_grad, int64_t row_start, int64_t row_end, int64_t E, int64_t k,
                      int64_t d, int64_t L, int64_t offset, uint64_t seed, uint32_t threshold, float scale) {
    for (int64_t e = 0; e < E; e++)
        for (int64_t j = 0; j < k; j++) {
            int64_t row = ids[e * k + j];
            if (row < row_start || row >= row_end) continue;
            const float *g = grad + (e * L + offset + j) * d;
            float *r = rows_grad + row * d;
            double *b = bias_grad + j * d;
            int64_t base = (e * k + j) * d;
            FOR_ENTRIES(base, base + d, seed, threshold, {
                float v = g[i - base];
                b[i - base] += v;
                r[i - base] += v * (kept ? scale : 0.0f);
            });
        }
}

/* The feed-forward's ReLU-and-dropout backward (mygo.fast.dropout): out[i] = g[i] where y[i] > 0,
 * else g[i] 0 (as g times y's 0 / 1 sign gives), in one pass for i in [start, end) */
void relu_grad_f32(const float *restrict g, const float *restrict y, float *restrict out, int64_t start, int64_t end) {
    for (int64_t i = start; i < end; i++) out[i] = g[i] * (y[i] > 0.0f ? 1.0f : 0.0f);
}

void relu_grad_bf16(const uint16_t *restrict g, const uint16_t *restrict y, uint16_t *restrict out, int64_t start,
                    int64_t end) {
    for (int64_t i = start; i < end; i++)
        out[i] = float_to_bf16(bf16_to_float(g[i]) * (bf16_to_float(y[i]) > 0.0f ? 1.0f : 0.0f));
}
