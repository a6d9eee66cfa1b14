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
 * With 4 rows or more (batched decode, prefill) the AVX-512 matmuls and head run in tiles of 4 rows by 4 outputs
 * (each activation vector loaded once for 4 outputs, each widened weight vector used for 4 rows), prefetching the next
 * block of weights while they compute; a tile does per (row, output) what the one-row code does, in the same order.
 *
 * Threads: a pool of its own (pthreads, spinning briefly between jobs, then sleeping; a job's items claimed one at a
 * time, so a thread off its core delays nothing), not OpenMP: a second OpenMP
 * runtime beside PyTorch's would oversubscribe the cores. This file knows the Llama block and nothing of Python,
 * tokens or scheduling. Built by native.py with -O3 and the ISA flags chosen there.
 */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
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
#define ROW_CHUNK 8 /* an int32 and a float accumulator a row */
#else
#define ROW_CHUNK 8
#endif
#define SPIN_LIMIT 20000

const char *nc_isa(void) { return NC_ISA; }

/* NC_PROFILE (a local build, never the engine's): TSC cycles per phase of the decode step and the head */
#ifdef NC_PROFILE
static uint64_t nc_prof[16];
#define PROF_T0 uint64_t _pt = __rdtsc()
#define PROF(i) do { uint64_t _n = __rdtsc(); nc_prof[i] += _n - _pt; _pt = _n; } while (0)
void nc_profile(uint64_t *out) { memcpy(out, nc_prof, sizeof nc_prof); memset(nc_prof, 0, sizeof nc_prof); }
uint64_t nc_tsc(void) { return __rdtsc(); }
#if NC_AVX512
/* TSC cycles of n rounds of 12 independent vpdpwssd (the instruction's throughput without loads: the ceiling of the
 * int16 products); 0 without AVX-512 */
uint64_t nc_vnni_cycles(int64_t n) {
    __m512i a0 = _mm512_set1_epi32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0,
            a10 = a0, a11 = a0;
    const __m512i x = _mm512_set1_epi16((short)n), y = _mm512_set1_epi16(3);
    const uint64_t t = __rdtsc();
    for (int64_t i = 0; i < n; i++) {
        a0 = _mm512_dpwssd_epi32(a0, x, y), a1 = _mm512_dpwssd_epi32(a1, x, y), a2 = _mm512_dpwssd_epi32(a2, x, y);
        a3 = _mm512_dpwssd_epi32(a3, x, y), a4 = _mm512_dpwssd_epi32(a4, x, y), a5 = _mm512_dpwssd_epi32(a5, x, y);
        a6 = _mm512_dpwssd_epi32(a6, x, y), a7 = _mm512_dpwssd_epi32(a7, x, y), a8 = _mm512_dpwssd_epi32(a8, x, y);
        a9 = _mm512_dpwssd_epi32(a9, x, y), a10 = _mm512_dpwssd_epi32(a10, x, y), a11 = _mm512_dpwssd_epi32(a11, x, y);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
        __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    return __rdtsc() - t;
}
#else
uint64_t nc_vnni_cycles(int64_t n) { return (void)n, 0; }
#endif
#else
#define PROF_T0
#define PROF(i)
#endif

/* --- thread pool ------------------------------------------------------------------------------------------------ */

/* A job is cut into ITEMS_PER_THREAD * nth items, fn(ctx, item, items), that the threads claim one at a time from a
 * shared counter: when a thread is off its core (a shared machine, another process running), the others take its
 * items instead of waiting for it, and the caller waits only for items already started. (With a fixed half of each
 * job per thread, a batch-1 decode step on 2 busy cores took 200 ms instead of 6: every one of its 150 jobs waited
 * for a descheduled thread.) A row's results do not depend on which thread computed them. */
typedef void (*nc_job)(void *ctx, int item, int items);

#define ITEMS_PER_THREAD 4
#define CLOSED 0xFFFFFFFFu

typedef struct {
    int nth;
    pthread_t threads[MAX_THREADS];
    _Atomic uint64_t state; /* generation << 32 | next item to claim (CLOSED between jobs) */
    _Atomic int done;       /* items finished in this generation */
    _Atomic int quit;
    nc_job fn;
    void *ctx;
    int items;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} Pool;

typedef struct {
    Pool *pool;
    int ith;
} WorkerArg;

/* Claim and run items of generation gen until none is left. A claim succeeds only while the generation is gen and
 * items remain, so fn, ctx and items (written before the generation was published, rewritten only after it closed)
 * belong to it. */
static void run_items(Pool *p, uint32_t gen) {
    uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(s >> 32) != gen) return;
        const uint32_t next = (uint32_t)s;
        const nc_job fn = p->fn;
        void *const ctx = p->ctx;
        const int items = p->items;
        if (next == CLOSED || (int)next >= items) return;
        if (!atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        fn(ctx, (int)next, items);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        s = atomic_load_explicit(&p->state, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    WorkerArg *w = (WorkerArg *)arg;
    Pool *p = w->pool;
    free(w);
    uint32_t seen = (uint32_t)(atomic_load(&p->state) >> 32);
    for (;;) {
        int spins = 0;
        uint32_t g;
        while ((g = (uint32_t)(atomic_load_explicit(&p->state, memory_order_acquire) >> 32)) == seen) {
            if (atomic_load_explicit(&p->quit, memory_order_relaxed)) return NULL;
            if (++spins < SPIN_LIMIT) {
                _mm_pause();
                if (spins % 1024 == 0) sched_yield(); /* let a thread of ours that waits for this core run */
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while ((uint32_t)(atomic_load(&p->state) >> 32) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = g;
        run_items(p, g);
    }
}

static Pool *pool_new(int nth) {
    Pool *p = (Pool *)calloc(1, sizeof(Pool));
    p->nth = nth < 1 ? 1 : (nth > MAX_THREADS ? MAX_THREADS : nth);
    atomic_store(&p->state, (uint64_t)CLOSED);
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

/* Run the `items` items of fn (the caller claims items too); returns when all are done. */
static void pool_run_items(Pool *p, nc_job fn, void *ctx, int items) {
    if (p->nth == 1 || items == 1) {
        for (int i = 0; i < items; i++) fn(ctx, i, items);
        return;
    }
    const uint32_t gen = (uint32_t)(atomic_load_explicit(&p->state, memory_order_relaxed) >> 32) + 1;
    p->fn = fn; /* the state is CLOSED: no thread can claim until the release below */
    p->ctx = ctx;
    p->items = items;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->state, (uint64_t)gen << 32, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    run_items(p, gen);
    for (int spins = 1; atomic_load_explicit(&p->done, memory_order_acquire) < p->items; spins++) {
        _mm_pause();
        if (spins % 256 == 0) sched_yield(); /* the thread with the last item may be waiting for this core */
    }
    atomic_store_explicit(&p->state, ((uint64_t)gen << 32) | CLOSED, memory_order_release);
}

/* Run fn as ITEMS_PER_THREAD items a thread (a single item, 0 of 1, on one thread). */
static void pool_run(Pool *p, nc_job fn, void *ctx) {
    if (p->nth == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool_run_items(p, fn, ctx, ITEMS_PER_THREAD * p->nth);
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
 * the blocks' scales da as the kernel reads them (AVX-512: per group of blocks, one per int32 lane; AVX2: each block's
 * da repeated over the 8 lanes its products land in); sa (M, K/32) da * the sum of the block's codes (for the
 * minimums' term). */
typedef struct {
    int16_t *qs;
    float *dx;
    float *sa;
    int m, k;
} QAct;

static void *alloc64(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    memset(p, 0, bytes);
    return p;
}

/* Room for `rows` rows of K activations quantized per block of 32 (m set to `rows`). */
static QAct qact_new(int rows, int k) {
    const size_t r = (size_t)rows;
    return (QAct){(int16_t *)alloc64(r * k * sizeof(int16_t)), (float *)alloc64(r * (k / QK) * 8 * sizeof(float)),
                  (float *)alloc64(r * (k / QK) * sizeof(float)), rows, k};
}

static void qact_free(QAct *a) {
    free(a->qs);
    free(a->dx);
    free(a->sa);
}

#if NC_AVX512
/* The AVX-512 layout. A row's K/32 blocks go in groups of G = 16 blocks (the last ones of a row in groups of 8, 4 or
 * 2): a group is G vpdpwssd instructions of 32 int16 pairs whose int32 lane l sums block l / L of the group (L = 16 / G
 * lanes a block), so after the group one conversion and one multiply-add per row scale all 16 lanes at once, 16 blocks
 * for one float operation where a block pair took three. Pair p (weights 2p, 2p+1) of block b goes to instruction
 * p % G, lane b * L + p / G. Weights (nc_pack_q4_1, nc_pack_q8_0) and activations are laid out alike. */
static inline int group_blocks(int nb, int j0) {
    int left = nb - j0;
    return left >= 16 ? 16 : left >= 8 ? 8 : left >= 4 ? 4 : 2;
}

/* where pair p of block b of a group of G goes, in int32 units from the group's start */
static inline int pair_slot(int G, int b, int p) { return (p % G) * 16 + b * (16 / G) + p / G; }

static void quantize_row(const float *x, int k, int16_t *qs, float *dx, float *sa) {
    const int nb = k / QK;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    for (int j0 = 0, gi = 0; j0 < nb; gi++) {
        const int G = group_blocks(nb, j0), L = 16 / G;
        int32_t *dst = (int32_t *)(qs + (size_t)j0 * QK);
        float dblk[16];
        for (int b = 0; b < G; b++) {
            const float *xb = x + (size_t)(j0 + b) * QK;
            __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
            float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(v0, absmask), _mm512_and_ps(v1, absmask)));
            float d = amax / 32767.0f;
            float id = d > 0.0f ? 1.0f / d : 0.0f;
            /* cvtps rounds to nearest even, as nearbyintf */
            __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, _mm512_set1_ps(id)));
            __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, _mm512_set1_ps(id)));
            int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
            int32_t pairs[16];
            _mm256_storeu_si256((__m256i *)pairs, _mm512_cvtepi32_epi16(i0));
            _mm256_storeu_si256((__m256i *)(pairs + 8), _mm512_cvtepi32_epi16(i1));
            for (int p = 0; p < 16; p++) dst[pair_slot(G, b, p)] = pairs[p];
            dblk[b] = d;
            sa[j0 + b] = d * (float)sum;
        }
        for (int l = 0; l < 16; l++) dx[gi * 16 + l] = dblk[l / L];
        j0 += G;
    }
}

static void quantize_rows(const float *x, int m, int k, QAct *a) {
    const int nb = k / QK;
    for (int r = 0; r < m; r++)
        quantize_row(x + (size_t)r * k, k, a->qs + (size_t)r * k, a->dx + (size_t)r * nb * 8, a->sa + (size_t)r * nb);
}
#else
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
    memcpy(qs + j * QK, q, QK * sizeof(int16_t));
    float *dx = a->dx + (row * nb + j) * 8;
    for (int i = 0; i < 8; i++) dx[i] = d;
    a->sa[row * nb + j] = d * (float)sum;
}

static void quantize_rows(const float *x, int m, int k, QAct *a) {
    for (int r = 0; r < m; r++)
        for (int j = 0; j < k / QK; j++) quantize_block(x + (size_t)r * k + j * QK, a, (size_t)r, j);
}
#endif

/* Weights into the layout the kernel reads (AVX-512: the groups above; AVX2: as stored). nc_pack_q4_1: nibbles (N, K/2)
 * of Q4_1 blocks as stored (per block 16 bytes, low nibbles weights 0..15, high 16..31) -> out (N, K/2): in a group,
 * byte e of chunk c (32 bytes) holds instruction c's int16 slot e in its low nibble and instruction c + G/2's in its
 * high one. */
void nc_pack_q4_1(const uint8_t *in, int n, int k, uint8_t *out) {
#if NC_AVX512
    const int nb = k / QK;
    /* from[2 e + h]: the weight (index in the row) whose code goes to nibble h of output byte e; the same every row */
    int *from = (int *)malloc((size_t)k * sizeof(int));
    for (int j0 = 0; j0 < nb;) {
        const int G = group_blocks(nb, j0);
        for (int b = 0; b < G; b++)
            for (int w = 0; w < QK; w++) {
                const int unit = pair_slot(G, b, w / 2), instr = unit / 16, e = (unit % 16) * 2 + w % 2;
                const int byte = j0 * 16 + (instr % (G / 2)) * 32 + e;
                from[2 * byte + (instr < G / 2 ? 0 : 1)] = (j0 + b) * QK + w;
            }
        j0 += G;
    }
    for (size_t row = 0; row < (size_t)n; row++) {
        const uint8_t *src = in + row * (k / 2);
        uint8_t *dst = out + row * (k / 2);
        for (int e = 0; e < k / 2; e++) {
            uint8_t q[2];
            for (int h = 0; h < 2; h++) {
                const int w = from[2 * e + h];
                const uint8_t byte = src[(w / QK) * 16 + (w % 16)];
                q[h] = (w % QK) < 16 ? byte & 15 : byte >> 4;
            }
            dst[e] = (uint8_t)(q[0] | (q[1] << 4));
        }
    }
    free(from);
#else
    memcpy(out, in, (size_t)n * (k / 2));
#endif
}

/* Q8_0 codes (N, K) int8, rearranged in place into the layout of the activations (AVX-512; as stored on AVX2).
 * order (K): the natural index of each position of a row, for reading rows back. */
void nc_pack_q8_0(int8_t *codes, int n, int k, int32_t *order) {
    const int nb = k / QK;
    for (int i = 0; i < k; i++) order[i] = i;
#if NC_AVX512
    for (int j0 = 0; j0 < nb;) {
        const int G = group_blocks(nb, j0);
        for (int b = 0; b < G; b++)
            for (int w = 0; w < QK; w++) order[j0 * QK + pair_slot(G, b, w / 2) * 2 + w % 2] = (j0 + b) * QK + w;
        j0 += G;
    }
    int8_t *tmp = (int8_t *)malloc(k);
    for (size_t row = 0; row < (size_t)n; row++) {
        int8_t *r = codes + row * k;
        for (int i = 0; i < k; i++) tmp[i] = r[order[i]];
        memcpy(r, tmp, k);
    }
    free(tmp);
#else
    (void)nb;
    (void)codes;
    (void)n;
#endif
}

/* y[r, n] for rows r0..r0+nr (nr <= ROW_CHUNK) and output n of W: per block d * da * sum(q_w * q_a) + m * sa.
 * Always inlined, and called with a constant nr, so that the loops over rows unroll and acc stays in registers. */
#if NC_AVX512
/* lane l of a group of G blocks belongs to block l / (16 / G) */
static inline __m512i group_lanes(int G) {
    switch (G) {
    case 8: return _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    case 4: return _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    default: return _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    }
}

/* the G fp16 values at h as the group's 16 lanes */
static inline __m512 group_scales_f16(const uint16_t *h, int G) {
    if (G == 16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
    __m512 v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)((1u << G) - 1), h));
    return _mm512_permutexvar_ps(group_lanes(G), v);
}

static inline __m512 group_scales_f32(const float *s, int G) {
    if (G == 16) return _mm512_loadu_ps(s);
    return _mm512_permutexvar_ps(group_lanes(G), _mm512_maskz_loadu_ps((__mmask16)((1u << G) - 1), s));
}

/* lane t: the sum of the 16 lanes of v[t] (a transposing tree: 45 operations for 16 sums, where 16 reductions take
 * 128). Per vector the sums are grouped as in sum1, so a row's results do not depend on which of the two made them. */
static inline __m512 sum16(const __m512 v[16]) {
    __m512 w[8], x[4], y[2];
    for (int i = 0; i < 8; i++)
        w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        const __m512d a = _mm512_castps_pd(w[2 * i]), b = _mm512_castps_pd(w[2 * i + 1]);
        x[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    /* x[i] holds, per 128-bit chunk c, the chunk-c sums of v[4i..4i+3] */
    for (int i = 0; i < 2; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x88), _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], 0x88), _mm512_shuffle_f32x4(y[0], y[1], 0xDD));
}

/* the sum of v's 16 lanes, grouped as sum16 does: in each 128-bit chunk (v0 + v2) + (v1 + v3), then chunks (c0 + c1) +
 * (c2 + c3) */
static inline float sum1(__m512 v) {
    v = _mm512_add_ps(v, _mm512_shuffle_ps(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_shuffle_ps(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    const __m128 c01 = _mm_add_ss(_mm512_castps512_ps128(v), _mm512_extractf32x4_ps(v, 1));
    const __m128 c23 = _mm_add_ss(_mm512_extractf32x4_ps(v, 2), _mm512_extractf32x4_ps(v, 3));
    return _mm_cvtss_f32(_mm_add_ss(c01, c23));
}

static inline __attribute__((always_inline)) void dot_rows(const QLinear *w, int n, const QAct *a, int r0, int nr, float *y, int ldy) {
    const int k = w->k;
    const int nb = k / QK;
    const uint8_t *wn = w->nib + (size_t)n * (k / 2);
    const uint16_t *dw16 = w->dm + (size_t)n * 2 * nb;
    const uint16_t *mw16 = dw16 + nb;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m512 acc[ROW_CHUNK];
    for (int r = 0; r < nr; r++) acc[r] = _mm512_setzero_ps();
    for (int j0 = 0, gi = 0; j0 < nb; gi++) {
        const int G = group_blocks(nb, j0), half = G / 2;
        const uint8_t *wg = wn + (size_t)j0 * 16;
        __m512i s[ROW_CHUNK];
        for (int r = 0; r < nr; r++) s[r] = _mm512_setzero_si512();
        for (int c = 0; c < half; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(wg + c * 32));
            __m512i wlo = _mm512_cvtepu8_epi16(_mm256_and_si256(v, low4));
            __m512i whi = _mm512_cvtepu8_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
            for (int r = 0; r < nr; r++) {
                const int16_t *aq = a->qs + (size_t)(r0 + r) * k + (size_t)j0 * QK;
                s[r] = _mm512_dpwssd_epi32(s[r], wlo, _mm512_loadu_si512((const void *)(aq + c * 32)));
                s[r] = _mm512_dpwssd_epi32(s[r], whi, _mm512_loadu_si512((const void *)(aq + (c + half) * 32)));
            }
        }
        const __m512 dv = group_scales_f16(dw16 + j0, G);
        for (int r = 0; r < nr; r++) {
            __m512 dd = _mm512_mul_ps(dv, _mm512_loadu_ps(a->dx + (size_t)(r0 + r) * nb * 8 + gi * 16));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]), dd, acc[r]);
        }
        j0 += G;
    }
    /* the minimums' term, sum over blocks of m * sa, 16 blocks at a time */
    for (int j = 0; j < nb; j += 16) {
        __mmask16 mask = nb - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nb - j)) - 1);
        __m512 mv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, mw16 + j));
        for (int r = 0; r < nr; r++)
            acc[r] = _mm512_fmadd_ps(mv, _mm512_maskz_loadu_ps(mask, a->sa + (size_t)(r0 + r) * nb + j), acc[r]);
    }
    for (int r = 0; r < nr; r++) y[(size_t)(r0 + r) * ldy + n] = sum1(acc[r]);
}

/* The same sums for a tile of TILE_R rows by TILE_N outputs: each activation vector loaded once for TILE_N outputs
 * and each widened weight vector used for TILE_R rows (dot_rows loads a row's activations again for every output, and
 * a batch-16 step was bound by those loads, not by vpdpwssd). Per (row, output) the same operations in the same order
 * as dot_rows, so a row's result does not depend on whether a tile or dot_rows computed it. */
#ifndef TILE_R
#define TILE_R 4
#endif
#ifndef TILE_N
#define TILE_N 4
#endif
#if TILE_R * TILE_N == 16
/* y[r * ldy + j] = the sum of acc[r][j]'s lanes, all 16 in one transposing tree */
static inline __attribute__((always_inline)) void tile_store(__m512 acc[TILE_R][TILE_N], float *y, int ldy) {
    __m512 v[16];
    for (int r = 0; r < TILE_R; r++)
        for (int j = 0; j < TILE_N; j++) v[r * TILE_N + j] = acc[r][j];
    float out[16];
    _mm512_storeu_ps(out, sum16(v));
    for (int r = 0; r < TILE_R; r++) memcpy(y + (size_t)r * ldy, out + r * TILE_N, TILE_N * sizeof(float));
}
#else
static inline __attribute__((always_inline)) void tile_store(__m512 acc[TILE_R][TILE_N], float *y, int ldy) {
    for (int r = 0; r < TILE_R; r++)
        for (int j = 0; j < TILE_N; j++) y[(size_t)r * ldy + j] = sum1(acc[r][j]);
}
#endif

/* acc[r][j] += the group's integer sums s[r][j] times the weights' scales w_scale[j] times row r's activation scales
 * (the quantized and the head's tiles alike) */
static inline __attribute__((always_inline)) void tile_scale_group(__m512 acc[TILE_R][TILE_N], __m512i s[TILE_R][TILE_N],
                                                                   const __m512 w_scale[TILE_N], const QAct *a, int r0,
                                                                   int nb, int gi) {
    for (int r = 0; r < TILE_R; r++) {
        const __m512 dx = _mm512_loadu_ps(a->dx + (size_t)(r0 + r) * nb * 8 + gi * 16);
        for (int j = 0; j < TILE_N; j++)
            acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r][j]), _mm512_mul_ps(w_scale[j], dx), acc[r][j]);
    }
}

static inline __attribute__((always_inline)) void dot_tile(const QLinear *w, int n, const QAct *a, int r0, float *y, int ldy,
                                                           int pf) {
    const int k = w->k;
    const int nb = k / QK;
    const uint8_t *wn[TILE_N];
    const uint16_t *dw16[TILE_N];
    for (int j = 0; j < TILE_N; j++) {
        wn[j] = w->nib + (size_t)(n + j) * (k / 2);
        dw16[j] = w->dm + (size_t)(n + j) * 2 * nb;
    }
    if (pf)
        for (int j = 0; j < TILE_N; j++)
            for (int b = 0; b < 4 * nb; b += 64) _mm_prefetch((const char *)(dw16[j] + (size_t)pf * 2 * nb) + b, _MM_HINT_T0);
    const __m512i low4 = _mm512_set1_epi16(0x0F);
    __m512 acc[TILE_R][TILE_N];
    for (int r = 0; r < TILE_R; r++)
        for (int j = 0; j < TILE_N; j++) acc[r][j] = _mm512_setzero_ps();
    for (int j0 = 0, gi = 0; j0 < nb; gi++) {
        const int G = group_blocks(nb, j0), half = G / 2;
        __m512i s[TILE_R][TILE_N];
        for (int r = 0; r < TILE_R; r++)
            for (int j = 0; j < TILE_N; j++) s[r][j] = _mm512_setzero_si512();
        for (int c = 0; c < half; c++) {
            __m512i wlo[TILE_N], whi[TILE_N];
            for (int j = 0; j < TILE_N; j++) {
                /* the same bytes of the output pf rows on (the next block's, first read by the next tile) */
                if (pf && !(c & 1)) _mm_prefetch((const char *)(wn[j] + (size_t)pf * (k / 2) + (size_t)j0 * 16 + c * 32), _MM_HINT_T0);
                /* bytes widened to words: the low nibble masked, the high one shifted down */
                __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(wn[j] + (size_t)j0 * 16 + c * 32)));
                wlo[j] = _mm512_and_si512(v, low4);
                whi[j] = _mm512_srli_epi16(v, 4);
            }
            for (int r = 0; r < TILE_R; r++) {
                const int16_t *aq = a->qs + (size_t)(r0 + r) * k + (size_t)j0 * QK;
                const __m512i xl = _mm512_loadu_si512((const void *)(aq + c * 32));
                const __m512i xh = _mm512_loadu_si512((const void *)(aq + (c + half) * 32));
                for (int j = 0; j < TILE_N; j++) {
                    s[r][j] = _mm512_dpwssd_epi32(s[r][j], wlo[j], xl);
                    s[r][j] = _mm512_dpwssd_epi32(s[r][j], whi[j], xh);
                }
            }
        }
        __m512 dv[TILE_N];
        for (int j = 0; j < TILE_N; j++) dv[j] = group_scales_f16(dw16[j] + j0, G);
        tile_scale_group(acc, s, dv, a, r0, nb, gi);
        j0 += G;
    }
    /* the minimums' term, as dot_rows */
    for (int j = 0; j < nb; j += 16) {
        __mmask16 mask = nb - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nb - j)) - 1);
        for (int o = 0; o < TILE_N; o++) {
            __m512 mv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, dw16[o] + nb + j));
            for (int r = 0; r < TILE_R; r++)
                acc[r][o] = _mm512_fmadd_ps(mv, _mm512_maskz_loadu_ps(mask, a->sa + (size_t)(r0 + r) * nb + j), acc[r][o]);
        }
    }
    tile_store(acc, y + (size_t)r0 * ldy + n, ldy);
}
#else
static inline __attribute__((always_inline)) void dot_rows(const QLinear *w, int n, const QAct *a, int r0, int nr, float *y, int ldy) {
    const int k = w->k;
    const int nb = k / QK;
    const uint8_t *wn = w->nib + (size_t)n * (k / 2);
    const uint16_t *dw16 = w->dm + (size_t)n * 2 * nb;
    const uint16_t *mw16 = dw16 + nb;
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
}
#endif

/* Outputs n0..n1 of y (M, N) for all M rows: 16 outputs at a time (their weights stay in L1) for every chunk of rows,
 * chunks of constant size (ROW_CHUNK, then 8, 4, 2, 1 rows). A row's result does not depend on its chunk. */
static void gemm_range(const QLinear *w, const QAct *a, float *y, int ldy, int n0, int n1) {
    for (int nt = n0; nt < n1; nt += 16) {
        const int ne = nt + 16 < n1 ? nt + 16 : n1;
        int r0 = 0;
#if NC_AVX512
        if ((ne - nt) % TILE_N == 0)
            for (; a->m - r0 >= TILE_R; r0 += TILE_R)
                for (int n = nt; n < ne; n += TILE_N) dot_tile(w, n, a, r0, y, ldy, r0 == 0 && ne + 16 <= n1 ? 16 : 0);
#endif
        for (; a->m - r0 >= ROW_CHUNK; r0 += ROW_CHUNK)
            for (int n = nt; n < ne; n++) dot_rows(w, n, a, r0, ROW_CHUNK, y, ldy);
#if ROW_CHUNK > 8
        if (a->m - r0 >= 8) {
            for (int n = nt; n < ne; n++) dot_rows(w, n, a, r0, 8, y, ldy);
            r0 += 8;
        }
#endif
        if (a->m - r0 >= 4) {
            for (int n = nt; n < ne; n++) dot_rows(w, n, a, r0, 4, y, ldy);
            r0 += 4;
        }
        if (a->m - r0 >= 2) {
            for (int n = nt; n < ne; n++) dot_rows(w, n, a, r0, 2, y, ldy);
            r0 += 2;
        }
        if (a->m - r0 >= 1)
            for (int n = nt; n < ne; n++) dot_rows(w, n, a, r0, 1, y, ldy);
    }
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
    int split_rows; /* decode steps of enough rows cut by rows, not by outputs (row_parts) */
} Context;

void *nc_context_new(int threads) {
    Context *c = (Context *)calloc(1, sizeof(Context));
    c->pool = pool_new(threads);
    c->split_rows = 1;
    return c;
}

/* 1: a step of enough rows is cut by rows between the threads (the default); 0: always by outputs (to compare). */
void nc_set_split_rows(void *ctx, int on) { ((Context *)ctx)->split_rows = on; }

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
    QAct a = qact_new(m, k);
    quantize_rows(x, m, k, &a);
    GemmJob job = {&w, &a, y};
    pool_run(c->pool, gemm_job, &job);
    qact_free(&a);
}

/* --- the tied head over the Q8_0 embedding ------------------------------------------------------------------- */

/* logits (M, V) = x (M, K) @ E.T with E the embedding's Q8_0 codes (V, K) int8 (in the kernel's layout, nc_pack_q8_0)
 * and block scales (V, K/32) fp32, x quantized to int16 per block of 32 as for the matmuls. Exact to the activations'
 * rounding (about 2e-5 relative), where an int8 head needs its best candidates recomputed; and no second copy of the
 * table (28 MB). The same code for any number of rows: a row's logits do not depend on the others. */
typedef struct {
    const int8_t *codes;
    const float *scales;
    const QAct *a;
    float *y;
    int n;
} HeadJob;

static inline __attribute__((always_inline)) void head_rows(const HeadJob *h, int v, int r0, int nr) {
    const QAct *a = h->a;
    const int k = a->k, nb = k / QK;
    const int8_t *wc = h->codes + (size_t)v * k;
    const float *ws = h->scales + (size_t)v * nb;
#if NC_AVX512
    __m512 acc[ROW_CHUNK];
    for (int r = 0; r < nr; r++) acc[r] = _mm512_setzero_ps();
    for (int j0 = 0, gi = 0; j0 < nb; gi++) {
        const int G = group_blocks(nb, j0);
        __m512i s[ROW_CHUNK];
        for (int r = 0; r < nr; r++) s[r] = _mm512_setzero_si512();
        for (int i = 0; i < G; i++) {
            __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(wc + (size_t)(j0 + i) * QK)));
            for (int r = 0; r < nr; r++)
                s[r] = _mm512_dpwssd_epi32(
                    s[r], w, _mm512_loadu_si512((const void *)(a->qs + (size_t)(r0 + r) * k + (size_t)(j0 + i) * QK)));
        }
        const __m512 sv = group_scales_f32(ws + j0, G);
        for (int r = 0; r < nr; r++) {
            __m512 dd = _mm512_mul_ps(sv, _mm512_loadu_ps(a->dx + (size_t)(r0 + r) * nb * 8 + gi * 16));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[r]), dd, acc[r]);
        }
        j0 += G;
    }
    for (int r = 0; r < nr; r++) h->y[(size_t)(r0 + r) * h->n + v] = sum1(acc[r]);
#else
    const int16_t *qs = a->qs;
    const float *dx = a->dx;
    __m256 acc[ROW_CHUNK];
    for (int r = 0; r < nr; r++) acc[r] = _mm256_setzero_ps();
    for (int j = 0; j < nb; j++) {
        __m256i wlo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wc + j * QK)));
        __m256i whi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wc + j * QK + 16)));
        __m256 sw = _mm256_set1_ps(ws[j]);
        for (int r = 0; r < nr; r++) {
            const size_t row = (size_t)(r0 + r);
            const int16_t *aq = qs + row * k + j * QK;
            __m256i s = _mm256_add_epi32(_mm256_madd_epi16(wlo, _mm256_loadu_si256((const __m256i *)aq)),
                                         _mm256_madd_epi16(whi, _mm256_loadu_si256((const __m256i *)(aq + 16))));
            __m256 dd = _mm256_mul_ps(sw, _mm256_loadu_ps(dx + (row * nb + j) * 8));
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

#if NC_AVX512
/* head_rows for a tile of TILE_R rows by TILE_N vocabulary rows (each widened code vector used for TILE_R rows, each
 * activation vector for TILE_N outputs), per (row, output) the same operations in the same order as head_rows */
static inline __attribute__((always_inline)) void head_tile(const HeadJob *h, int v, int r0, int pf) {
    const QAct *a = h->a;
    const int k = a->k, nb = k / QK;
    const int8_t *wc[TILE_N];
    const float *ws[TILE_N];
    for (int j = 0; j < TILE_N; j++) {
        wc[j] = h->codes + (size_t)(v + j) * k;
        ws[j] = h->scales + (size_t)(v + j) * nb;
    }
    if (pf)
        for (int j = 0; j < TILE_N; j++)
            for (int b = 0; b < 4 * nb; b += 64) _mm_prefetch((const char *)(ws[j] + (size_t)pf * nb) + b, _MM_HINT_T0);
    __m512 acc[TILE_R][TILE_N];
    for (int r = 0; r < TILE_R; r++)
        for (int j = 0; j < TILE_N; j++) acc[r][j] = _mm512_setzero_ps();
    for (int j0 = 0, gi = 0; j0 < nb; gi++) {
        const int G = group_blocks(nb, j0);
        __m512i s[TILE_R][TILE_N];
        for (int r = 0; r < TILE_R; r++)
            for (int j = 0; j < TILE_N; j++) s[r][j] = _mm512_setzero_si512();
        for (int i = 0; i < G; i++) {
            __m512i w[TILE_N];
            for (int j = 0; j < TILE_N; j++) {
                if (pf && !(i & 1)) _mm_prefetch((const char *)(wc[j] + (size_t)pf * k + (size_t)(j0 + i) * QK), _MM_HINT_T0);
                w[j] = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(wc[j] + (size_t)(j0 + i) * QK)));
            }
            for (int r = 0; r < TILE_R; r++) {
                const __m512i x = _mm512_loadu_si512((const void *)(a->qs + (size_t)(r0 + r) * k + (size_t)(j0 + i) * QK));
                for (int j = 0; j < TILE_N; j++) s[r][j] = _mm512_dpwssd_epi32(s[r][j], w[j], x);
            }
        }
        __m512 sv[TILE_N];
        for (int j = 0; j < TILE_N; j++) sv[j] = group_scales_f32(ws[j] + j0, G);
        tile_scale_group(acc, s, sv, a, r0, nb, gi);
        j0 += G;
    }
    tile_store(acc, h->y + (size_t)r0 * h->n + v, h->n);
}
#endif

static void head_job(void *ctx, int ith, int nth) {
    const HeadJob *h = (const HeadJob *)ctx;
    const int m = h->a->m;
    int v0, v1;
    split(h->n, 16, ith, nth, &v0, &v1);
    for (int vt = v0; vt < v1; vt += 16) {
        const int ve = vt + 16 < v1 ? vt + 16 : v1;
        int r0 = 0;
#if NC_AVX512
        if ((ve - vt) % TILE_N == 0)
            for (; m - r0 >= TILE_R; r0 += TILE_R)
                for (int v = vt; v < ve; v += TILE_N) head_tile(h, v, r0, r0 == 0 && ve + 16 <= v1 ? 16 : 0);
#endif
        for (; m - r0 >= ROW_CHUNK; r0 += ROW_CHUNK)
            for (int v = vt; v < ve; v++) head_rows(h, v, r0, ROW_CHUNK);
#if ROW_CHUNK > 8
        if (m - r0 >= 8) {
            for (int v = vt; v < ve; v++) head_rows(h, v, r0, 8);
            r0 += 8;
        }
#endif
        if (m - r0 >= 4) {
            for (int v = vt; v < ve; v++) head_rows(h, v, r0, 4);
            r0 += 4;
        }
        if (m - r0 >= 2) {
            for (int v = vt; v < ve; v++) head_rows(h, v, r0, 2);
            r0 += 2;
        }
        if (m - r0 >= 1)
            for (int v = vt; v < ve; v++) head_rows(h, v, r0, 1);
    }
}

void nc_head(void *ctx, const float *x, int m, int k, const int8_t *codes, const float *scales, int n, float *y) {
    Context *c = (Context *)ctx;
    PROF_T0;
    QAct a = qact_new(m, k);
    quantize_rows(x, m, k, &a);
    HeadJob job = {codes, scales, &a, y, n};
    PROF(8);
    pool_run(c->pool, head_job, &job);
    PROF(9);
    qact_free(&a);
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
    md->a_dim = qact_new(b, dim);
    md->a_ffn = qact_new(b, ffn);
    md->a_dim.m = md->a_ffn.m = 0; /* each step sets its batch */
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
    qact_free(&md->a_dim);
    qact_free(&md->a_ffn);
    free(md);
}

#if NC_AVX512
/* e^x in 16 lanes (Cephes' expf: a polynomial after reducing by ln 2, within 2 ulp of exp); x is clamped to
 * [-88, 88] (e^-88 = 6e-39, e^88 = 1.7e38), which softmax (x <= 0) and SiLU do not notice. */
static inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}
#endif

static void rms_norm(const float *x, const float *w, int n, float eps, float *out) {
#if NC_AVX512
    if (n % 16 == 0) {
        __m512 acc = _mm512_setzero_ps();
        for (int i = 0; i < n; i += 16) {
            __m512 v = _mm512_loadu_ps(x + i);
            acc = _mm512_fmadd_ps(v, v, acc);
        }
        const __m512 r = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)n + eps));
        for (int i = 0; i < n; i += 16)
            _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), r), _mm512_loadu_ps(w + i)));
        return;
    }
#endif
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

/* act[b, j0..j1] = silu(gate) * up of row b (and, AVX2, their blocks quantized into a_ffn) */
static void silu_mul(Model *md, int b, int j0, int j1) {
    const int ffn = md->ffn;
    const float *g = md->gu + (size_t)b * 2 * ffn;
    float *act = md->act + (size_t)b * ffn;
    int j = j0;
#if NC_AVX512
    for (; j + 16 <= j1; j += 16) {
        __m512 gv = _mm512_loadu_ps(g + j);
        __m512 sig = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
        _mm512_storeu_ps(act + j, _mm512_mul_ps(sig, _mm512_loadu_ps(g + ffn + j)));
    }
#endif
    for (; j < j1; j++) act[j] = g[j] / (1.0f + expf(-g[j])) * g[ffn + j];
#if !NC_AVX512
    /* quantize the blocks j0..j1 of this row in place in a_ffn (the AVX-512 layout's groups span the threads'
     * ranges: quantized after the job) */
    for (int blk = j0 / QK; blk < j1 / QK; blk++) quantize_block(act + blk * QK, &md->a_ffn, (size_t)b, blk);
#endif
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
    for (int b = 0; b < s->batch; b++) silu_mul(md, b, j0, j1);
}

#if NC_AVX512
/* Attention of the G <= 4 query heads q (G, 64) that share one KV head over its len cached positions: each key and
 * value row read once for all G heads, the value sums in registers. sc: G rows of ld floats of scratch; o (G, 64). */
static void attend_d64(const float *q, int G, const uint16_t *kb, const uint16_t *vb, int len, float scale, float *sc,
                       size_t ld, float *o) {
    /* scores 16 positions at a time: their keys widened once into kf, then per head 16 dot products whose
     * horizontal sums come out of one transposing tree (sum16) instead of 16 reductions */
    float kf[16 * 64] __attribute__((aligned(64)));
    float mx[4];
    __m512 mxv[4];
    for (int h = 0; h < G; h++) mxv[h] = _mm512_set1_ps(-INFINITY);
    for (int t0 = 0; t0 < len; t0 += 16) {
        const int n = len - t0 < 16 ? len - t0 : 16;
        const __mmask16 mask = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
        for (int tt = 0; tt < 16; tt++) {
            /* keys 16 positions on, and these positions' values (read after the softmax) */
            _mm_prefetch((const char *)(kb + (size_t)(t0 + 16 + tt) * 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(kb + (size_t)(t0 + 16 + tt) * 64) + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)(vb + (size_t)(t0 + tt) * 64), _MM_HINT_T1);
            _mm_prefetch((const char *)(vb + (size_t)(t0 + tt) * 64) + 64, _MM_HINT_T1);
            for (int i = 0; i < 4; i++) {
                __m512 v = tt < n ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                        (const __m256i *)(kb + (size_t)(t0 + tt) * 64 + i * 16))), 16))
                                  : _mm512_setzero_ps();
                _mm512_store_ps(kf + tt * 64 + i * 16, v);
            }
        }
        for (int h = 0; h < G; h++) {
            const float *qh = q + h * 64;
            const __m512 q0 = _mm512_loadu_ps(qh), q1 = _mm512_loadu_ps(qh + 16), q2 = _mm512_loadu_ps(qh + 32),
                         q3 = _mm512_loadu_ps(qh + 48);
            __m512 acc[16];
            for (int tt = 0; tt < 16; tt++) {
                const float *kt = kf + tt * 64;
                __m512 a = _mm512_mul_ps(q0, _mm512_load_ps(kt));
                a = _mm512_fmadd_ps(q1, _mm512_load_ps(kt + 16), a);
                a = _mm512_fmadd_ps(q2, _mm512_load_ps(kt + 32), a);
                acc[tt] = _mm512_fmadd_ps(q3, _mm512_load_ps(kt + 48), a);
            }
            const __m512 score = _mm512_mul_ps(sum16(acc), _mm512_set1_ps(scale));
            _mm512_mask_storeu_ps(sc + h * ld + t0, mask, score);
            mxv[h] = _mm512_mask_max_ps(mxv[h], mask, mxv[h], score);
        }
    }
    for (int h = 0; h < G; h++) mx[h] = _mm512_reduce_max_ps(mxv[h]);
    float inv[4];
    for (int h = 0; h < G; h++) {
        float *row = sc + h * ld;
        const __m512 m = _mm512_set1_ps(mx[h]);
        __m512 sum = _mm512_setzero_ps();
        for (int t = 0; t < len; t += 16) {
            __mmask16 mask = len - t >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (len - t)) - 1);
            __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, row + t), m));
            _mm512_mask_storeu_ps(row + t, mask, e);
            sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mask, e));
        }
        inv[h] = 1.0f / _mm512_reduce_add_ps(sum);
    }
    __m512 ov[4][4];
    for (int h = 0; h < G; h++)
        for (int i = 0; i < 4; i++) ov[h][i] = _mm512_setzero_ps();
    for (int t = 0; t < len; t++) {
        __m512 vv[4];
        for (int i = 0; i < 4; i++)
            vv[i] = _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(vb + (size_t)t * 64 + i * 16))), 16));
        for (int h = 0; h < G; h++) {
            const __m512 p = _mm512_set1_ps(sc[h * ld + t] * inv[h]);
            for (int i = 0; i < 4; i++) ov[h][i] = _mm512_fmadd_ps(p, vv[i], ov[h][i]);
        }
    }
    for (int h = 0; h < G; h++)
        for (int i = 0; i < 4; i++) _mm512_storeu_ps(o + h * 64 + i * 16, ov[h][i]);
}
#endif

/* Attention is cut into tasks of one row each: a KV head's query heads together (AVX-512, head_dim 64, at most 4
 * query heads a KV head), else one query head. */
static inline int attention_tasks_per_row(const Model *md) {
#if NC_AVX512
    if (md->head_dim == 64 && md->n_heads / md->n_kv <= 4) return md->n_kv;
#endif
    return md->n_heads;
}

/* attention task `task` of the step: row task / attention_tasks_per_row over its cached positions 0..pos */
static void attention_task(const StepJob *s, int task) {
    Model *md = s->md;
    const int D = md->head_dim, H = md->n_heads, G = md->n_heads / md->n_kv;
    const int nqkv = (md->n_heads + 2 * md->n_kv) * D;
    const float scale = 1.0f / sqrtf((float)D);
    const size_t slot_stride = (size_t)md->n_kv * s->max_len * D, head_stride = (size_t)s->max_len * D;
    const uint16_t *kc = s->k_cache[s->layer], *vc = s->v_cache[s->layer];
#if NC_AVX512
    if (D == 64 && G <= 4) {
        int b = task / md->n_kv, g = task % md->n_kv;
        size_t base = (size_t)s->slots[b] * slot_stride + g * head_stride;
        attend_d64(md->qkvo + (size_t)b * nqkv + g * G * D, G, kc + base, vc + base, (int)s->positions[b] + 1,
                   scale, md->scores + ((size_t)b * H + g * G) * s->max_len, (size_t)s->max_len,
                   md->attn + (size_t)b * H * D + g * G * D);
        return;
    }
#endif
    {
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

static void job_attention(void *ctx, int ith, int nth) {
    const StepJob *s = (const StepJob *)ctx;
    for (int task = ith; task < s->batch * attention_tasks_per_row(s->md); task += nth) attention_task(s, task);
}

static void rotate_half(float *x, const float *c, const float *sn, int D) {
    int half = D / 2;
    for (int i = 0; i < half; i++) {
        float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c[i] - x2 * sn[i];
        x[i + half] = x2 * c[i] + x1 * sn[i];
    }
}

/* The per-row work between a step's matmuls (rotary and the KV cache write, residual adds, RMSNorm, quantizing the
 * next matmul's input): on the caller alone it was 10% of a 16-row step on 2 threads, so from ROWS_PARALLEL rows on it is
 * a pool job too, a row at a time (the same code per row either way: a row's results do not depend on the thread). */
#define ROWS_PARALLEL 4

enum { ROW_ROPE_KV, ROW_QUANT_ATTN, ROW_POST_OUT, ROW_QUANT_ACT, ROW_POST_DOWN };

typedef struct {
    StepJob *s;
    float *resid, *out;
    int kind;
} RowJob;

static void quantize_one_row(const float *x, QAct *a, int row) {
#if NC_AVX512
    const int nb = a->k / QK;
    quantize_row(x, a->k, a->qs + (size_t)row * a->k, a->dx + (size_t)row * nb * 8, a->sa + (size_t)row * nb);
#else
    for (int j = 0; j < a->k / QK; j++) quantize_block(x + j * QK, a, (size_t)row, j);
#endif
}

static void row_work(const RowJob *rj, int b) {
    const StepJob *s = rj->s;
    Model *md = s->md;
    const int l = s->layer, D = md->head_dim, dim = md->dim, H = md->n_heads, KV = md->n_kv, half = D / 2;
    switch (rj->kind) {
    case ROW_ROPE_KV: {
        const int nqkv = (H + 2 * KV) * D;
        const size_t slot_stride = (size_t)KV * s->max_len * D, head_stride = (size_t)s->max_len * D;
        float *row = md->qkvo + (size_t)b * nqkv;
        const float *cb = md->cosv + b * half, *sb = md->sinv + b * half;
        for (int h = 0; h < H + KV; h++) rotate_half(row + h * D, cb, sb, D);
        uint16_t *kd = s->k_cache[l] + (size_t)s->slots[b] * slot_stride + (size_t)s->positions[b] * D;
        uint16_t *vd = s->v_cache[l] + (size_t)s->slots[b] * slot_stride + (size_t)s->positions[b] * D;
        for (int g = 0; g < KV; g++)
            for (int i = 0; i < D; i++) {
                kd[g * head_stride + i] = f32_to_bf16(row[(H + g) * D + i]);
                vd[g * head_stride + i] = f32_to_bf16(row[(H + KV + g) * D + i]);
            }
        break;
    }
    case ROW_QUANT_ATTN: quantize_one_row(md->attn + (size_t)b * H * D, &md->a_dim, b); break;
    case ROW_QUANT_ACT: quantize_one_row(md->act + (size_t)b * md->ffn, &md->a_ffn, b); break;
    case ROW_POST_OUT:
    case ROW_POST_DOWN: {
        float *r = rj->resid + (size_t)b * dim;
        const float *h = md->h + (size_t)b * dim;
        for (int i = 0; i < dim; i++) r[i] += h[i];
        const int last = rj->kind == ROW_POST_DOWN && l + 1 == md->n_layers;
        const float *w = rj->kind == ROW_POST_OUT ? md->ffn_norm[l] : last ? md->final_norm : md->attn_norm[l + 1];
        float *xn = last ? rj->out + (size_t)b * dim : md->xn + (size_t)b * dim;
        rms_norm(r, w, dim, md->eps, xn);
        if (!last) quantize_one_row(xn, &md->a_dim, b);
        break;
    }
    }
}

static void job_rows(void *ctx, int ith, int nth) {
    const RowJob *rj = (const RowJob *)ctx;
    for (int b = ith; b < rj->s->batch; b += nth) row_work(rj, b);
}

static void for_rows(Context *c, StepJob *s, float *resid, float *out, int kind) {
    RowJob rj = {s, resid, out, kind};
    if (s->batch >= ROWS_PARALLEL && c->pool->nth > 1)
        pool_run(c->pool, job_rows, &rj);
    else
        for (int b = 0; b < s->batch; b++) row_work(&rj, b);
}

/* Rows r0..r1 of a QAct, as a QAct of their own */
static QAct qact_rows(const QAct *a, int r0, int r1) {
    const size_t r = (size_t)r0, nb = (size_t)(a->k / QK);
    return (QAct){a->qs + r * a->k, a->dx + r * nb * 8, a->sa + r * nb, r1 - r0, a->k};
}

/* Layer s->layer for rows r0..r1 alone, on the calling thread: the same kernels on the same rows as the pooled
 * layer (a row's results do not depend on its chunk), with no thread waiting for another between them. Valid when no
 * sequence has rows both inside and outside r0..r1 (their attention would need the others' keys). */
static void layer_rows(StepJob *s, int r0, int r1, float *resid, float *out) {
    Model *md = s->md;
    const int l = s->layer;
    const QAct ad = qact_rows(&md->a_dim, r0, r1), af = qact_rows(&md->a_ffn, r0, r1);
    const QLinear *qkv = &md->qkv[l], *o = &md->out[l], *gu = &md->gate_up[l], *dn = &md->down[l];
    RowJob rj = {s, resid, out, ROW_ROPE_KV};
    gemm_range(qkv, &ad, md->qkvo + (size_t)r0 * qkv->n, qkv->n, 0, qkv->n);
    for (int b = r0; b < r1; b++) row_work(&rj, b);
    const int per_row = attention_tasks_per_row(md);
    for (int task = r0 * per_row; task < r1 * per_row; task++) attention_task(s, task);
    rj.kind = ROW_QUANT_ATTN;
    for (int b = r0; b < r1; b++) row_work(&rj, b);
    gemm_range(o, &ad, md->h + (size_t)r0 * o->n, o->n, 0, o->n);
    rj.kind = ROW_POST_OUT;
    for (int b = r0; b < r1; b++) row_work(&rj, b);
    gemm_range(gu, &ad, md->gu + (size_t)r0 * gu->n, gu->n, 0, gu->n);
    for (int b = r0; b < r1; b++) silu_mul(md, b, 0, md->ffn);
#if NC_AVX512
    rj.kind = ROW_QUANT_ACT;
    for (int b = r0; b < r1; b++) row_work(&rj, b);
#endif
    gemm_range(dn, &af, md->h + (size_t)r0 * dn->n, dn->n, 0, dn->n);
    rj.kind = ROW_POST_DOWN;
    for (int b = r0; b < r1; b++) row_work(&rj, b);
}

/* A step cut by rows: item i runs every layer for its part of the rows (bounds[i]..bounds[i + 1]). */
typedef struct {
    const StepJob *s;
    const int *bounds;
    float *resid, *out;
} RowSplit;

static void job_row_split(void *ctx, int item, int items) {
    (void)items;
    const RowSplit *rs = (const RowSplit *)ctx;
    StepJob s = *rs->s;
    for (int l = 0; l < s.md->n_layers; l++) {
        s.layer = l;
        layer_rows(&s, rs->bounds[item], rs->bounds[item + 1], rs->resid, rs->out);
    }
}

/* Below this many rows a thread, a step's matmuls are cut by outputs (every thread reads a part of the weights, and
 * they wait for each other after each matmul); from it on, by rows. */
#define SPLIT_ROWS_MIN 4

/* Cut `batch` rows into parts (bounds[0] = 0 < ... < bounds[parts] = batch), one a thread, with no sequence in two
 * parts: a cut goes only between rows whose slots' spans do not cross it (a prompt's rows are together), as near the
 * even cut as that allows. Returns the number of parts; 1 when the rows cannot be cut evenly enough. */
static int row_parts(const int64_t *slots, int batch, int nth, int *bounds) {
    if (nth < 2 || batch < SPLIT_ROWS_MIN * nth || batch > 64) return 1;
    /* crossed[c]: a sequence has rows both before and after a cut before row c */
    int crossed[65] = {0};
    for (int a = 0; a < batch; a++) {
        int last = a;
        for (int b = a + 1; b < batch; b++)
            if (slots[b] == slots[a]) last = b;
        for (int c = a + 1; c <= last; c++) crossed[c] = 1;
    }
    bounds[0] = 0;
    const int most = (batch * 5 + 4 * nth - 1) / (4 * nth); /* a part at most 1.25 times an even share */
    for (int i = 1; i < nth; i++) {
        const int even = (int)((int64_t)batch * i / nth);
        int cut = -1;
        for (int d = 0; d <= batch && cut < 0; d++) {
            if (even - d > bounds[i - 1] && !crossed[even - d]) cut = even - d;
            else if (even + d < batch && !crossed[even + d]) cut = even + d;
        }
        if (cut < 0 || cut - bounds[i - 1] > most || cut - bounds[i - 1] < SPLIT_ROWS_MIN) return 1;
        bounds[i] = cut;
    }
    bounds[nth] = batch;
    if (batch - bounds[nth - 1] > most || batch - bounds[nth - 1] < SPLIT_ROWS_MIN) return 1;
    return nth;
}

/* One decode step for `batch` sequences. resid (batch, dim) f32: the token embeddings in, overwritten by the residual
 * stream; out (batch, dim): the final RMSNorm of it. k_cache[l], v_cache[l]: bf16 (num_slots, n_kv, max_len, D).
 * Returns 0, or -1 when batch exceeds the model's max_batch. */
int nc_decode_step(void *ctx, void *model, int batch, float *resid, const int64_t *slots, const int64_t *positions,
                   uint16_t *const *k_cache, uint16_t *const *v_cache, int max_len, float *out) {
    Context *c = (Context *)ctx;
    Model *md = (Model *)model;
    if (batch > md->max_batch || batch < 1) return -1;
    const int D = md->head_dim, dim = md->dim, H = md->n_heads, half = D / 2;
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
    PROF_T0;
    for (int b = 0; b < batch; b++) rms_norm(resid + (size_t)b * dim, md->attn_norm[0], dim, md->eps, md->xn + (size_t)b * dim);
    quantize_rows(md->xn, batch, dim, &md->a_dim);
    int bounds[MAX_THREADS + 1];
    const int parts = c->split_rows ? row_parts(slots, batch, c->pool->nth, bounds) : 1;
    if (parts > 1) {
        RowSplit rs = {&job, bounds, resid, out};
        pool_run_items(c->pool, job_row_split, &rs, parts);
        PROF(10);
        return 0;
    }
    for (int l = 0; l < md->n_layers; l++) {
        job.layer = l;
        PROF(0);
        pool_run(c->pool, job_qkv, &job);
        PROF(1);
        for_rows(c, &job, resid, out, ROW_ROPE_KV);
        PROF(2);
        pool_run(c->pool, job_attention, &job);
        PROF(3);
        for_rows(c, &job, resid, out, ROW_QUANT_ATTN);
        PROF(4);
        pool_run(c->pool, job_out, &job);
        PROF(5);
        for_rows(c, &job, resid, out, ROW_POST_OUT);
        PROF(0);
        pool_run(c->pool, job_gate_up, &job);
        PROF(6);
#if NC_AVX512
        for_rows(c, &job, resid, out, ROW_QUANT_ACT);
#endif
        PROF(4);
        pool_run(c->pool, job_down, &job);
        PROF(7);
        for_rows(c, &job, resid, out, ROW_POST_DOWN);
        PROF(0);
    }
    return 0;
}
