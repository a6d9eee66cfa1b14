/* The CPU fast path's native code: SmolLM2's Llama blocks on x86, 4-bit weights against int16 activations.
 *
 * Weights stay in their GGUF Q4_1 blocks (32 weights: 16 bytes of nibbles, scale d and minimum m as fp16);
 * activations are quantized per block of 32 to int16 (scale da, and sa = da * sum of the codes), and a block's dot
 * product is d*da*sum(q_w*q_a) + m*sa, the integer sum of 4-bit codes widened to int16 times the int16 activations
 * on VNNI (vpdpwssd) where the CPU has it, else vpmaddwd. int8 activations (llama.cpp's Q8_1, vpdpbusd) were faster
 * but moved the argmax at 2.6% of positions; int16 at none of 382. Two entry points, called through ctypes:
 *
 *   nc_gemm:        y (M, N) = x (M, K) @ W.T for any M (prefill, and the model's other matmuls);
 *   nc_decode_step: every transformer block of one decode step for B sequences (RMSNorm, q/k/v, rotary, the KV
 *                   cache write, grouped-query attention, output, SwiGLU), one call per token instead of ~2,000
 *                   PyTorch operations.
 *
 * Threads: a pool of its own (pthreads, spinning briefly between jobs, then sleeping), not OpenMP: a second OpenMP
 * runtime beside PyTorch's would oversubscribe the cores. This file knows the Llama block and nothing of Python,
 * tokens or scheduling. Built by native.py with -O3 and the ISA flags chosen there.
 */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define NC_AVX512 1
#define NC_ISA "avx512-vnni"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define NC_AVX2 1
#if defined(__AVXVNNI__)
#define NC_ISA "avx2-vnni"
#else
#define NC_ISA "avx2"
#endif
#else
#error "native_cpu.c needs AVX2, FMA and F16C (or AVX-512 with VNNI)"
#endif

#define QK 32          /* weights per block */
#define MAX_THREADS 64
/* activation rows multiplied per pass over a weight row: their accumulators stay in registers (32 zmm, 16 ymm) */
#if NC_AVX512
#define ROW_CHUNK 16
#else
#define ROW_CHUNK 8
#endif
#define SPIN_LIMIT 20000

const char *nc_isa(void) { return NC_ISA; }

/* --- thread pool ------------------------------------------------------------------------------------------------ */

typedef void (*nc_job)(void *ctx, int ith, int nth);

typedef struct {
    int nth;
    pthread_t threads[MAX_THREADS];
    _Atomic int generation;
    _Atomic int pending;
    _Atomic int quit;
    nc_job fn;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} Pool;

typedef struct {
    Pool *pool;
    int ith;
} WorkerArg;

static void *worker_main(void *arg) {
    WorkerArg *w = (WorkerArg *)arg;
    Pool *p = w->pool;
    int ith = w->ith;
    free(w);
    int seen = atomic_load(&p->generation);
    for (;;) {
        int spins = 0;
        int g;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&p->quit, memory_order_relaxed)) return NULL;
            if (++spins < SPIN_LIMIT) {
                _mm_pause();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = g;
        p->fn(p->ctx, ith, p->nth);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
    }
}

static Pool *pool_new(int nth) {
    Pool *p = (Pool *)calloc(1, sizeof(Pool));
    p->nth = nth < 1 ? 1 : (nth > MAX_THREADS ? MAX_THREADS : nth);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 1; i < p->nth; i++) {
        WorkerArg *w = (WorkerArg *)malloc(sizeof(WorkerArg));
        w->pool = p;
        w->ith = i;
        pthread_create(&p->threads[i], NULL, worker_main, w);
    }
    return p;
}

static void pool_free(Pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nth; i++) pthread_join(p->threads[i], NULL);
    free(p);
}

/* Run fn on every thread (the caller is thread 0); returns when all are done. */
static void pool_run(Pool *p, nc_job fn, void *ctx) {
    if (p->nth == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, p->nth - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->nth);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) _mm_pause();
}

/* --- quantized weights and activations -------------------------------------------------------------------------- */

/* One linear layer: N output rows of K inputs. nib: (N, K/2) bytes, per block 16 bytes whose low nibbles are weights
 * 0..15 and high nibbles 16..31 (the GGUF order). dm: (N, 2 * K/32) fp16, per row the K/32 scales d then the K/32
 * minimums m. */
typedef struct {
    const uint8_t *nib;
    const uint16_t *dm;
    int n, k;
} QLinear;

/* Activations of M rows quantized to int16 per block of 32: qs (M, K) in the order the kernel reads; dx (M, K/32 * 8)
 * each block's scale da repeated over the 8 int32 lanes its products land in; sa (M, K/32) da * the sum of the
 * block's codes (for the minimums' term). */
typedef struct {
    int16_t *qs;
    float *dx;
    float *sa;
    int m, k;
} QAct;

/* Block j of row `row` of x (32 floats) into a: scale amax / 32767, so the rounding error is at most 1/65534 of the
 * block's largest value (int8 blocks: 1/254, which cost 1.6 points of argmax agreement with the fp32 model). */
static inline void quantize_block(const float *xb, QAct *a, size_t row, int j) {
    const int nb = a->k / QK;
    float amax = 0.0f;
    for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
    float d = amax / 32767.0f;
    float id = d > 0.0f ? 1.0f / d : 0.0f;
    int16_t q[QK];
    int sum = 0;
    for (int i = 0; i < QK; i++) {
        q[i] = (int16_t)nearbyintf(xb[i] * id);
        sum += q[i];
    }
    int16_t *qs = a->qs + row * a->k;
#if NC_AVX512
    /* Blocks go in pairs (2p, 2p+1) of 64 codes: [a0[0:16], a1[0:16], a0[16:32], a1[16:32]], matching the weight
     * registers [low nibbles of both blocks] and [high nibbles of both blocks] widened to int16. */
    int16_t *pair = qs + (j / 2) * 64;
    int half = (j % 2) * 16;
    memcpy(pair + half, q, 16 * sizeof(int16_t));
    memcpy(pair + 32 + half, q + 16, 16 * sizeof(int16_t));
#else
    memcpy(qs + j * QK, q, QK * sizeof(int16_t));
#endif
    float *dx = a->dx + (row * nb + j) * 8;
    for (int i = 0; i < 8; i++) dx[i] = d;
    a->sa[row * nb + j] = d * (float)sum;
}

static void quantize_rows(const float *x, int m, int k, QAct *a) {
    for (int r = 0; r < m; r++)
        for (int j = 0; j < k / QK; j++) quantize_block(x + (size_t)r * k + j * QK, a, (size_t)r, j);
}

/* y[r, n] for rows r0..r0+nr (nr <= ROW_CHUNK) and output n of W: per block d * da * sum(q_w * q_a) + m * sa.
 * Always inlined, and called with a constant nr, so that the loops over rows unroll and acc stays in registers. */
static inline __attribute__((always_inline)) void dot_rows(const QLinear *w, int n, const QAct *a, int r0, int nr, float *y, int ldy) {
    const int k = w->k;
    const int nb = k / QK;
    const uint8_t *wn = w->nib + (size_t)n * (k / 2);
    const uint16_t *dw16 = w->dm + (size_t)n * 2 * nb;
    const uint16_t *mw16 = dw16 + nb;
#if NC_AVX512
    __m512 acc[ROW_CHUNK];
    for (int r = 0; r < nr; r++) acc[r] = _mm512_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m512i pat_d = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    for (int p = 0; p < nb / 2; p++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(wn + p * 32));
        __m256i lo = _mm256_and_si256(v, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        /* bytes 0..15 of v are block 2p, 16..31 block 2p+1: widened, lo is [b0 w0..15, b1 w0..15], hi the same for
         * weights 16..31; an int32 lane of the products sums a pair of them, so lanes 0..7 are block 2p's */
        __m512i wlo = _mm512_cvtepu8_epi16(lo);
        __m512i whi = _mm512_cvtepu8_epi16(hi);
        int32_t d_pair;
        memcpy(&d_pair, dw16 + 2 * p, sizeof d_pair);
        __m512 dwv = _mm512_permutexvar_ps(pat_d, _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(d_pair))));
        for (int r = 0; r < nr; r++) {
            const size_t row = (size_t)(r0 + r);
            const int16_t *aq = a->qs + row * k + p * 64;
#if defined(__AVX512VNNI__)
            __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), wlo, _mm512_loadu_si512((const void *)aq));
            s = _mm512_dpwssd_epi32(s, whi, _mm512_loadu_si512((const void *)(aq + 32)));
#else
            __m512i s = _mm512_add_epi32(_mm512_madd_epi16(wlo, _mm512_loadu_si512((const void *)aq)),
                                         _mm512_madd_epi16(whi, _mm512_loadu_si512((const void *)(aq + 32))));
#endif
            __m512 dd = _mm512_mul_ps(dwv, _mm512_loadu_ps(a->dx + (row * nb + 2 * p) * 8));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dd, acc[r]);
        }
    }
    /* the minimums' term, sum over blocks of m * sa, 16 blocks at a time */
    for (int j = 0; j < nb; j += 16) {
        __mmask16 mask = nb - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nb - j)) - 1);
        __m512 mv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, mw16 + j));
        for (int r = 0; r < nr; r++)
            acc[r] = _mm512_fmadd_ps(mv, _mm512_maskz_loadu_ps(mask, a->sa + (size_t)(r0 + r) * nb + j), acc[r]);
    }
    for (int r = 0; r < nr; r++) y[(size_t)(r0 + r) * ldy + n] = _mm512_reduce_add_ps(acc[r]);
#else
    __m256 acc[ROW_CHUNK];
    float msum[ROW_CHUNK];
    for (int r = 0; r < nr; r++) {
        acc[r] = _mm256_setzero_ps();
        msum[r] = 0.0f;
    }
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int j = 0; j < nb; j++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(wn + j * 16));
        __m256i wlo = _mm256_cvtepu8_epi16(_mm_and_si128(v, low4));
        __m256i whi = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), low4));
        __m256 dw = _mm256_set1_ps(_cvtsh_ss(dw16[j]));
        float mw = _cvtsh_ss(mw16[j]);
        for (int r = 0; r < nr; r++) {
            const size_t row = (size_t)(r0 + r);
            const int16_t *aq = a->qs + row * k + j * QK;
#if defined(__AVXVNNI__)
            __m256i s = _mm256_dpwssd_avx_epi32(_mm256_setzero_si256(), wlo, _mm256_loadu_si256((const __m256i *)aq));
            s = _mm256_dpwssd_avx_epi32(s, whi, _mm256_loadu_si256((const __m256i *)(aq + 16)));
#else
            __m256i s = _mm256_add_epi32(_mm256_madd_epi16(wlo, _mm256_loadu_si256((const __m256i *)aq)),
                                         _mm256_madd_epi16(whi, _mm256_loadu_si256((const __m256i *)(aq + 16))));
#endif
            __m256 dd = _mm256_mul_ps(dw, _mm256_loadu_ps(a->dx + (row * nb + j) * 8));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc[r]);
            msum[r] += mw * a->sa[row * nb + j];
        }
    }
    for (int r = 0; r < nr; r++) {
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
        y[(size_t)(r0 + r) * ldy + n] = _mm_cvtss_f32(s4) + msum[r];
    }
#endif
}

/* Outputs n0..n1 of y (M, N) for all M rows. */
static void gemm_range(const QLinear *w, const QAct *a, float *y, int ldy, int n0, int n1) {
    int r0 = 0;
    for (; a->m - r0 >= ROW_CHUNK; r0 += ROW_CHUNK)
        for (int n = n0; n < n1; n++) dot_rows(w, n, a, r0, ROW_CHUNK, y, ldy);
    /* the rest in chunks of constant size (8, 4, 2, 1 rows) */
#if ROW_CHUNK > 8
    if (a->m - r0 >= 8) {
        for (int n = n0; n < n1; n++) dot_rows(w, n, a, r0, 8, y, ldy);
        r0 += 8;
    }
#endif
    if (a->m - r0 >= 4) {
        for (int n = n0; n < n1; n++) dot_rows(w, n, a, r0, 4, y, ldy);
        r0 += 4;
    }
    if (a->m - r0 >= 2) {
        for (int n = n0; n < n1; n++) dot_rows(w, n, a, r0, 2, y, ldy);
        r0 += 2;
    }
    if (a->m - r0 >= 1)
        for (int n = n0; n < n1; n++) dot_rows(w, n, a, r0, 1, y, ldy);
}

static void split(int total, int align, int ith, int nth, int *lo, int *hi) {
    int units = (total + align - 1) / align;
    int per = (units + nth - 1) / nth;
    *lo = ith * per * align;
    *hi = (ith + 1) * per * align;
    if (*lo > total) *lo = total;
    if (*hi > total) *hi = total;
}

/* --- plain GEMM (prefill) ------------------------------------------------------------------------------------- */

typedef struct {
    const QLinear *w;
    const QAct *a;
    float *y;
} GemmJob;

static void gemm_job(void *ctx, int ith, int nth) {
    GemmJob *j = (GemmJob *)ctx;
    int n0, n1;
    split(j->w->n, 16, ith, nth, &n0, &n1);
    gemm_range(j->w, j->a, j->y, j->w->n, n0, n1);
}

typedef struct {
    Pool *pool;
} Context;

void *nc_context_new(int threads) {
    Context *c = (Context *)calloc(1, sizeof(Context));
    c->pool = pool_new(threads);
    return c;
}

void nc_context_free(void *ctx) {
    Context *c = (Context *)ctx;
    pool_free(c->pool);
    free(c);
}

int nc_threads(void *ctx) { return ((Context *)ctx)->pool->nth; }

/* y (M, N) f32 = x (M, K) f32 @ W.T, W as (nib, dm). */
void nc_gemm(void *ctx, const float *x, int m, const uint8_t *nib, const uint16_t *dm, int n, int k, float *y) {
    Context *c = (Context *)ctx;
    QLinear w = {nib, dm, n, k};
    QAct a;
    a.m = m;
    a.k = k;
    a.qs = (int16_t *)malloc((size_t)m * k * sizeof(int16_t));
    a.dx = (float *)malloc((size_t)m * (k / QK) * 8 * sizeof(float));
    a.sa = (float *)malloc((size_t)m * (k / QK) * sizeof(float));
    quantize_rows(x, m, k, &a);
    GemmJob job = {&w, &a, y};
    pool_run(c->pool, gemm_job, &job);
    free(a.qs);
    free(a.dx);
    free(a.sa);
}

/* --- the tied head over the Q8_0 embedding ------------------------------------------------------------------- */

/* logits (M, V) = x (M, K) @ E.T with E the embedding's Q8_0 codes (V, K) int8 and block scales (V, K/32) fp32, x
 * quantized to int16 per block of 32 in natural order. Exact to the activations' rounding (about 2e-5 relative), where
 * an int8 head needs its best candidates recomputed; and no second copy of the table (28 MB). */
#if NC_AVX512
#define HEAD_LANES 16
#else
#define HEAD_LANES 8
#endif

typedef struct {
    const int8_t *codes;
    const float *scales;
    const int16_t *qs; /* (M, K) */
    const float *dx;   /* (M, K/32, HEAD_LANES): each block's scale repeated */
    float *y;
    int m, k, n;
} HeadJob;

static inline __attribute__((always_inline)) void head_rows(const HeadJob *h, int v, int r0, int nr) {
    const int k = h->k, nb = k / QK;
    const int8_t *wc = h->codes + (size_t)v * k;
    const float *ws = h->scales + (size_t)v * nb;
#if NC_AVX512
    __m512 acc[ROW_CHUNK];
    for (int r = 0; r < nr; r++) acc[r] = _mm512_setzero_ps();
    for (int j = 0; j < nb; j++) {
        __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(wc + j * QK)));
        __m512 sw = _mm512_set1_ps(ws[j]);
        for (int r = 0; r < nr; r++) {
            const size_t row = (size_t)(r0 + r);
            __m512i s = _mm512_dpwssd_epi32(_mm512_setzero_si512(), w,
                                            _mm512_loadu_si512((const void *)(h->qs + row * k + j * QK)));
            __m512 dd = _mm512_mul_ps(sw, _mm512_loadu_ps(h->dx + (row * nb + j) * HEAD_LANES));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dd, acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) h->y[(size_t)(r0 + r) * h->n + v] = _mm512_reduce_add_ps(acc[r]);
#else
    __m256 acc[ROW_CHUNK];
    for (int r = 0; r < nr; r++) acc[r] = _mm256_setzero_ps();
    for (int j = 0; j < nb; j++) {
        __m256i wlo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wc + j * QK)));
        __m256i whi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wc + j * QK + 16)));
        __m256 sw = _mm256_set1_ps(ws[j]);
        for (int r = 0; r < nr; r++) {
            const size_t row = (size_t)(r0 + r);
            const int16_t *aq = h->qs + row * k + j * QK;
            __m256i s = _mm256_add_epi32(_mm256_madd_epi16(wlo, _mm256_loadu_si256((const __m256i *)aq)),
                                         _mm256_madd_epi16(whi, _mm256_loadu_si256((const __m256i *)(aq + 16))));
            __m256 dd = _mm256_mul_ps(sw, _mm256_loadu_ps(h->dx + (row * nb + j) * HEAD_LANES));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc[r]);
        }
    }
    for (int r = 0; r < nr; r++) {
        __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc[r]), _mm256_extractf128_ps(acc[r], 1));
        s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
        h->y[(size_t)(r0 + r) * h->n + v] = _mm_cvtss_f32(s4);
    }
#endif
}

static void head_job(void *ctx, int ith, int nth) {
    const HeadJob *h = (const HeadJob *)ctx;
    int v0, v1;
    split(h->n, 16, ith, nth, &v0, &v1);
    int r0 = 0;
    for (; h->m - r0 >= ROW_CHUNK; r0 += ROW_CHUNK)
        for (int v = v0; v < v1; v++) head_rows(h, v, r0, ROW_CHUNK);
#if ROW_CHUNK > 8
    if (h->m - r0 >= 8) {
        for (int v = v0; v < v1; v++) head_rows(h, v, r0, 8);
        r0 += 8;
    }
#endif
    if (h->m - r0 >= 4) {
        for (int v = v0; v < v1; v++) head_rows(h, v, r0, 4);
        r0 += 4;
    }
    if (h->m - r0 >= 2) {
        for (int v = v0; v < v1; v++) head_rows(h, v, r0, 2);
        r0 += 2;
    }
    if (h->m - r0 >= 1)
        for (int v = v0; v < v1; v++) head_rows(h, v, r0, 1);
}

void nc_head(void *ctx, const float *x, int m, int k, const int8_t *codes, const float *scales, int n, float *y) {
    Context *c = (Context *)ctx;
    const int nb = k / QK;
    int16_t *qs = (int16_t *)malloc((size_t)m * k * sizeof(int16_t));
    float *dx = (float *)malloc((size_t)m * nb * HEAD_LANES * sizeof(float));
    for (int r = 0; r < m; r++)
        for (int j = 0; j < nb; j++) {
            const float *xb = x + (size_t)r * k + j * QK;
            float amax = 0.0f;
            for (int i = 0; i < QK; i++) amax = fmaxf(amax, fabsf(xb[i]));
            float d = amax / 32767.0f;
            float id = d > 0.0f ? 1.0f / d : 0.0f;
            for (int i = 0; i < QK; i++) qs[(size_t)r * k + j * QK + i] = (int16_t)nearbyintf(xb[i] * id);
            for (int i = 0; i < HEAD_LANES; i++) dx[((size_t)r * nb + j) * HEAD_LANES + i] = d;
        }
    HeadJob job = {codes, scales, qs, dx, y, m, k, n};
    pool_run(c->pool, head_job, &job);
    free(qs);
    free(dx);
}

/* --- the decode step ----------------------------------------------------------------------------------------- */

typedef struct {
    int n_layers, dim, n_heads, n_kv, head_dim, ffn, max_batch;
    float eps, rope_base;
    QLinear *qkv, *out, *gate_up, *down;
    const float **attn_norm, **ffn_norm;
    const float *final_norm;
    /* scratch, for max_batch rows */
    float *xn, *qkvo, *attn, *h, *gu, *act, *cosv, *sinv, *scores;
    size_t scores_len;
    QAct a_dim, a_ffn;
    float inv_freq[256];
} Model;

static void *alloc64(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

/* Layers are given as arrays of pointers, one per layer: (nib, dm) of qkv, out, gate_up, down; the norms. */
void *nc_model_new(int n_layers, int dim, int n_heads, int n_kv, int head_dim, int ffn, int max_batch, float eps,
                   float rope_base, const uint8_t **qkv_nib, const uint16_t **qkv_dm, const uint8_t **out_nib,
                   const uint16_t **out_dm, const uint8_t **gu_nib, const uint16_t **gu_dm, const uint8_t **down_nib,
                   const uint16_t **down_dm, const float **attn_norm, const float **ffn_norm,
                   const float *final_norm) {
    Model *md = (Model *)calloc(1, sizeof(Model));
    md->n_layers = n_layers;
    md->dim = dim;
    md->n_heads = n_heads;
    md->n_kv = n_kv;
    md->head_dim = head_dim;
    md->ffn = ffn;
    md->max_batch = max_batch;
    md->eps = eps;
    md->rope_base = rope_base;
    int nqkv = (n_heads + 2 * n_kv) * head_dim;
    md->qkv = (QLinear *)calloc(n_layers, sizeof(QLinear));
    md->out = (QLinear *)calloc(n_layers, sizeof(QLinear));
    md->gate_up = (QLinear *)calloc(n_layers, sizeof(QLinear));
    md->down = (QLinear *)calloc(n_layers, sizeof(QLinear));
    md->attn_norm = (const float **)calloc(n_layers, sizeof(float *));
    md->ffn_norm = (const float **)calloc(n_layers, sizeof(float *));
    for (int l = 0; l < n_layers; l++) {
        md->qkv[l] = (QLinear){qkv_nib[l], qkv_dm[l], nqkv, dim};
        md->out[l] = (QLinear){out_nib[l], out_dm[l], dim, n_heads * head_dim};
        md->gate_up[l] = (QLinear){gu_nib[l], gu_dm[l], 2 * ffn, dim};
        md->down[l] = (QLinear){down_nib[l], down_dm[l], dim, ffn};
        md->attn_norm[l] = attn_norm[l];
        md->ffn_norm[l] = ffn_norm[l];
    }
    md->final_norm = final_norm;
    size_t b = (size_t)max_batch;
    md->xn = (float *)alloc64(b * dim * sizeof(float));
    md->qkvo = (float *)alloc64(b * nqkv * sizeof(float));
    md->attn = (float *)alloc64(b * n_heads * head_dim * sizeof(float));
    md->h = (float *)alloc64(b * dim * sizeof(float));
    md->gu = (float *)alloc64(b * 2 * ffn * sizeof(float));
    md->act = (float *)alloc64(b * ffn * sizeof(float));
    md->cosv = (float *)alloc64(b * head_dim / 2 * sizeof(float));
    md->sinv = (float *)alloc64(b * head_dim / 2 * sizeof(float));
    md->a_dim = (QAct){(int16_t *)alloc64(b * dim * sizeof(int16_t)), (float *)alloc64(b * dim / QK * 8 * sizeof(float)),
                       (float *)alloc64(b * dim / QK * sizeof(float)), 0, dim};
    md->a_ffn = (QAct){(int16_t *)alloc64(b * ffn * sizeof(int16_t)), (float *)alloc64(b * ffn / QK * 8 * sizeof(float)),
                       (float *)alloc64(b * ffn / QK * sizeof(float)), 0, ffn};
    for (int i = 0; i < head_dim / 2; i++) md->inv_freq[i] = 1.0f / powf(rope_base, (float)(2 * i) / (float)head_dim);
    return md;
}

void nc_model_free(void *model) {
    Model *md = (Model *)model;
    free(md->qkv);
    free(md->out);
    free(md->gate_up);
    free(md->down);
    free(md->attn_norm);
    free(md->ffn_norm);
    free(md->xn);
    free(md->qkvo);
    free(md->attn);
    free(md->h);
    free(md->gu);
    free(md->act);
    free(md->cosv);
    free(md->sinv);
    free(md->scores);
    free(md->a_dim.qs);
    free(md->a_dim.dx);
    free(md->a_dim.sa);
    free(md->a_ffn.qs);
    free(md->a_ffn.dx);
    free(md->a_ffn.sa);
    free(md);
}

static void rms_norm(const float *x, const float *w, int n, float eps, float *out) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64); /* NaN stays NaN */
    u += 0x7fff + ((u >> 16) & 1);                                         /* round to nearest even, as torch */
    return (uint16_t)(u >> 16);
}

/* q . k over head_dim with k in bf16 */
static inline float dot_bf16(const float *q, const uint16_t *k, int d) {
#if NC_AVX512
    __m512 acc = _mm512_setzero_ps();
    for (int i = 0; i < d; i += 16) {
        __m512i k32 = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(k + i))), 16);
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_castsi512_ps(k32), acc);
    }
    return _mm512_reduce_add_ps(acc);
#else
    __m256 acc = _mm256_setzero_ps();
    for (int i = 0; i < d; i += 8) {
        __m256i k32 = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(k + i))), 16);
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_castsi256_ps(k32), acc);
    }
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    return _mm_cvtss_f32(s4);
#endif
}

/* out += p * v over head_dim with v in bf16 */
static inline void axpy_bf16(float p, const uint16_t *v, float *out, int d) {
#if NC_AVX512
    __m512 pv = _mm512_set1_ps(p);
    for (int i = 0; i < d; i += 16) {
        __m512i v32 = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(v + i))), 16);
        _mm512_storeu_ps(out + i, _mm512_fmadd_ps(pv, _mm512_castsi512_ps(v32), _mm512_loadu_ps(out + i)));
    }
#else
    __m256 pv = _mm256_set1_ps(p);
    for (int i = 0; i < d; i += 8) {
        __m256i v32 = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(v + i))), 16);
        _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, _mm256_castsi256_ps(v32), _mm256_loadu_ps(out + i)));
    }
#endif
}

typedef struct {
    Model *md;
    int layer, batch, max_len;
    const int64_t *slots, *positions;
    uint16_t *const *k_cache;
    uint16_t *const *v_cache;
} StepJob;

static void job_qkv(void *ctx, int ith, int nth) {
    StepJob *s = (StepJob *)ctx;
    Model *md = s->md;
    const QLinear *w = &md->qkv[s->layer];
    int n0, n1;
    split(w->n, 16, ith, nth, &n0, &n1);
    gemm_range(w, &md->a_dim, md->qkvo, w->n, n0, n1);
}

static void job_out(void *ctx, int ith, int nth) {
    StepJob *s = (StepJob *)ctx;
    Model *md = s->md;
    const QLinear *w = &md->out[s->layer];
    int n0, n1;
    split(w->n, 16, ith, nth, &n0, &n1);
    gemm_range(w, &md->a_dim, md->h, w->n, n0, n1);
}

static void job_down(void *ctx, int ith, int nth) {
    StepJob *s = (StepJob *)ctx;
    Model *md = s->md;
    const QLinear *w = &md->down[s->layer];
    int n0, n1;
    split(w->n, 16, ith, nth, &n0, &n1);
    gemm_range(w, &md->a_ffn, md->h, w->n, n0, n1);
}

/* gate rows j and up rows ffn + j together, then silu(gate) * up and its quantization, for whole pairs of blocks */
static void job_gate_up(void *ctx, int ith, int nth) {
    StepJob *s = (StepJob *)ctx;
    Model *md = s->md;
    const QLinear *w = &md->gate_up[s->layer];
    const int ffn = md->ffn;
    int j0, j1;
    split(ffn, 2 * QK, ith, nth, &j0, &j1);
    if (j0 >= j1) return;
    gemm_range(w, &md->a_dim, md->gu, w->n, j0, j1);
    gemm_range(w, &md->a_dim, md->gu, w->n, ffn + j0, ffn + j1);
    for (int b = 0; b < s->batch; b++) {
        const float *g = md->gu + (size_t)b * 2 * ffn;
        float *act = md->act + (size_t)b * ffn;
        for (int j = j0; j < j1; j++) act[j] = g[j] / (1.0f + expf(-g[j])) * g[ffn + j];
        /* quantize the blocks j0..j1 of this row in place in a_ffn (their layout stays within these pairs) */
        for (int blk = j0 / QK; blk < j1 / QK; blk++) quantize_block(act + blk * QK, &md->a_ffn, (size_t)b, blk);
    }
}

/* attention of each (sequence, query head) over its cached positions 0..pos */
static void job_attention(void *ctx, int ith, int nth) {
    StepJob *s = (StepJob *)ctx;
    Model *md = s->md;
    const int D = md->head_dim, H = md->n_heads, G = md->n_heads / md->n_kv;
    const int nqkv = (md->n_heads + 2 * md->n_kv) * D;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t slot_stride = (size_t)md->n_kv * s->max_len * D, head_stride = (size_t)s->max_len * D;
    const uint16_t *kc = s->k_cache[s->layer], *vc = s->v_cache[s->layer];
    for (int task = ith; task < s->batch * H; task += nth) {
        int b = task / H, h = task % H, g = h / G;
        int len = (int)s->positions[b] + 1;
        const float *q = md->qkvo + (size_t)b * nqkv + h * D;
        const uint16_t *kb = kc + (size_t)s->slots[b] * slot_stride + g * head_stride;
        const uint16_t *vb = vc + (size_t)s->slots[b] * slot_stride + g * head_stride;
        float *sc = md->scores + (size_t)task * s->max_len;
        float mx = -INFINITY;
        for (int t = 0; t < len; t++) {
            sc[t] = dot_bf16(q, kb + (size_t)t * D, D) * scale;
            mx = sc[t] > mx ? sc[t] : mx;
        }
        float sum = 0.0f;
        for (int t = 0; t < len; t++) {
            sc[t] = expf(sc[t] - mx);
            sum += sc[t];
        }
        float *o = md->attn + (size_t)b * H * D + h * D;
        memset(o, 0, D * sizeof(float));
        float inv = 1.0f / sum;
        for (int t = 0; t < len; t++) axpy_bf16(sc[t] * inv, vb + (size_t)t * D, o, D);
    }
}

static void rotate_half(float *x, const float *c, const float *sn, int D) {
    int half = D / 2;
    for (int i = 0; i < half; i++) {
        float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c[i] - x2 * sn[i];
        x[i + half] = x2 * c[i] + x1 * sn[i];
    }
}

/* One decode step for `batch` sequences. resid (batch, dim) f32: the token embeddings in, overwritten by the residual
 * stream; out (batch, dim): the final RMSNorm of it. k_cache[l], v_cache[l]: bf16 (num_slots, n_kv, max_len, D).
 * Returns 0, or -1 when batch exceeds the model's max_batch. */
int nc_decode_step(void *ctx, void *model, int batch, float *resid, const int64_t *slots, const int64_t *positions,
                   uint16_t *const *k_cache, uint16_t *const *v_cache, int max_len, float *out) {
    Context *c = (Context *)ctx;
    Model *md = (Model *)model;
    if (batch > md->max_batch || batch < 1) return -1;
    const int D = md->head_dim, dim = md->dim, H = md->n_heads, KV = md->n_kv, half = D / 2;
    const int nqkv = (H + 2 * KV) * D;
    size_t need = (size_t)batch * H * max_len;
    if (need > md->scores_len) {
        free(md->scores);
        md->scores = (float *)alloc64(need * sizeof(float));
        md->scores_len = need;
    }
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < half; i++) {
            float angle = (float)positions[b] * md->inv_freq[i];
            md->cosv[b * half + i] = cosf(angle);
            md->sinv[b * half + i] = sinf(angle);
        }
    md->a_dim.m = batch;
    md->a_ffn.m = batch;
    StepJob job = {md, 0, batch, max_len, slots, positions, k_cache, v_cache};
    for (int b = 0; b < batch; b++) rms_norm(resid + (size_t)b * dim, md->attn_norm[0], dim, md->eps, md->xn + (size_t)b * dim);
    quantize_rows(md->xn, batch, dim, &md->a_dim);
    const size_t slot_stride = (size_t)KV * max_len * D, head_stride = (size_t)max_len * D;
    for (int l = 0; l < md->n_layers; l++) {
        job.layer = l;
        pool_run(c->pool, job_qkv, &job);
        for (int b = 0; b < batch; b++) {
            float *row = md->qkvo + (size_t)b * nqkv;
            const float *cb = md->cosv + b * half, *sb = md->sinv + b * half;
            for (int h = 0; h < H + KV; h++) rotate_half(row + h * D, cb, sb, D);
            uint16_t *kd = k_cache[l] + (size_t)slots[b] * slot_stride + (size_t)positions[b] * D;
            uint16_t *vd = v_cache[l] + (size_t)slots[b] * slot_stride + (size_t)positions[b] * D;
            for (int g = 0; g < KV; g++)
                for (int i = 0; i < D; i++) {
                    kd[g * head_stride + i] = f32_to_bf16(row[(H + g) * D + i]);
                    vd[g * head_stride + i] = f32_to_bf16(row[(H + KV + g) * D + i]);
                }
        }
        pool_run(c->pool, job_attention, &job);
        quantize_rows(md->attn, batch, H * D, &md->a_dim);
        pool_run(c->pool, job_out, &job);
        for (int b = 0; b < batch; b++) {
            float *r = resid + (size_t)b * dim;
            const float *h = md->h + (size_t)b * dim;
            for (int i = 0; i < dim; i++) r[i] += h[i];
            rms_norm(r, md->ffn_norm[l], dim, md->eps, md->xn + (size_t)b * dim);
        }
        quantize_rows(md->xn, batch, dim, &md->a_dim);
        pool_run(c->pool, job_gate_up, &job);
        pool_run(c->pool, job_down, &job);
        const float *next = l + 1 < md->n_layers ? md->attn_norm[l + 1] : md->final_norm;
        for (int b = 0; b < batch; b++) {
            float *r = resid + (size_t)b * dim;
            const float *h = md->h + (size_t)b * dim;
            for (int i = 0; i < dim; i++) r[i] += h[i];
            rms_norm(r, next, dim, md->eps, l + 1 < md->n_layers ? md->xn + (size_t)b * dim : out + (size_t)b * dim);
        }
        if (l + 1 < md->n_layers) quantize_rows(md->xn, batch, dim, &md->a_dim);
    }
    return 0;
}
