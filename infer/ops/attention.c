/* infer/ops/attention.c - causal (optionally sliding-window) attention with GQA, forward and backward
 *
 * werk_op_attention_fwd: one sequence at a time, full T x T scores per head in double
 * (the inference reference path). werk_op_attention_fwd_masked / _bwd: the training pair
 * (packed documents, tiles through sgemm), described above them below.
 */
#include "infer/model_int.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void werk_op_attention_fwd(float       *out,
                           const float *q,
                           const float *k,
                           const float *v,
                           int64_t      T,
                           int64_t      n_head,
                           int64_t      n_kv,
                           int64_t      hd,
                           float        scale,
                           int64_t      window) {
    int64_t group = n_head / n_kv;
    double *p     = malloc((size_t)(T > 0 ? T : 1) * sizeof(double));
    double *acc   = malloc((size_t)(hd > 0 ? hd : 1) * sizeof(double));
    WERK_ASSERT(p && acc);
    for (int64_t h = 0; h < n_head; h++) {
        int64_t kh = h / group;
        for (int64_t i = 0; i < T; i++) {
            const float *qi = q + (i * n_head + h) * hd;
            int64_t      j0 = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0;
            double       mx = -INFINITY;
            for (int64_t j = j0; j <= i; j++) {
                const float *kj = k + (j * n_kv + kh) * hd;
                double       s  = 0;
                for (int64_t d = 0; d < hd; d++) {
                    s += (double)qi[d] * kj[d];
                }
                p[j] = s * scale;
                mx   = p[j] > mx ? p[j] : mx;
            }
            double sum = 0;
            for (int64_t j = j0; j <= i; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            for (int64_t d = 0; d < hd; d++) {
                acc[d] = 0;
            }
            for (int64_t j = j0; j <= i; j++) {
                const float *vj = v + (j * n_kv + kh) * hd;
                double       w  = p[j] / sum;
                for (int64_t d = 0; d < hd; d++) {
                    acc[d] += w * vj[d];
                }
            }
            float *oi = out + (i * n_head + h) * hd;
            for (int64_t d = 0; d < hd; d++) {
                oi[d] = (float)acc[d];
            }
        }
    }
    free(p);
    free(acc);
}

/* ---- training: packed documents, saved log-sum-exp, backward ---------------------------
 *
 * Shapes: B rows of T tokens; q, out, dq, dout [B*T, n_head*hd]; k, v, dk, dv [B*T, n_kv*hd];
 * lse [B*T, n_head]; start [B*T] (index within its row of the first token of each token's
 * document; NULL: 0, one document per row). Row i of a sequence sees keys j with
 *   max(start_i, i - window + 1 if window > 0) <= j <= i.
 *   forward   S = scale Q K^T (masked), P = softmax(S), O = P V, lse_i = log sum_j exp S_ij
 *   backward  P = exp(S - lse), dP = dO V^T, D_i = dO_i . O_i, dS = P (dP - D),
 *             dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO
 * Queries are processed in tiles of QTILE rows against the keys the tile can see, each
 * product through werk_sgemm; float exponentials, softmax sums in double. Forward and dQ are split over
 * (row, head, query tile); dK and dV over (row, kv head, key tile), each key tile summing
 * over the query tiles that see it and the heads of its group in a fixed order (S and dP
 * are recomputed there, transposed). Every output is written by one thread in a fixed
 * order: the result does not depend on the thread count.
 */
enum { QTILE = 64 };

static int64_t row_lo(const int32_t *start, int64_t i, int64_t window) {
    int64_t lo = start ? start[i] : 0;
    if (window > 0 && i - window + 1 > lo) {
        lo = i - window + 1;
    }
    return lo;
}

/* Key range [*jlo, i1) a query tile [i0, i1) of one sequence can see. */
static void tile_keys(const int32_t *start, int64_t i0, int64_t i1, int64_t window, int64_t *jlo) {
    int64_t lo = i1;
    for (int64_t i = i0; i < i1; i++) {
        int64_t l = row_lo(start, i, window);
        lo        = l < lo ? l : lo;
    }
    *jlo = lo;
}

/* s [nq, nk]: scores in, P of the tile out (masked entries 0). lse_in (stride n_head): P =
 * exp(S - lse) from the forward's statistics; else they are computed and stored in lse_out. */
static void tile_probs(float         *s,
                       int64_t        nq,
                       int64_t        nk,
                       int64_t        i0,
                       int64_t        jlo,
                       const int32_t *start,
                       int64_t        window,
                       const float   *lse_in,
                       float         *lse_out,
                       int64_t        lse_stride) {
    for (int64_t r = 0; r < nq; r++) {
        int64_t i = i0 + r, lo = row_lo(start, i, window) - jlo, hi = i - jlo; // valid [lo, hi]
        float  *sr = s + r * nk;
        if (lse_in) {
            float l = lse_in[r * lse_stride];
            for (int64_t c = 0; c < nk; c++) {
                sr[c] = c >= lo && c <= hi ? expf(sr[c] - l) : 0.0f;
            }
            continue;
        }
        float  mx  = -INFINITY;
        double sum = 0;
        for (int64_t c = lo; c <= hi; c++) {
            mx = sr[c] > mx ? sr[c] : mx;
        }
        for (int64_t c = 0; c < nk; c++) {
            float e = c >= lo && c <= hi ? expf(sr[c] - mx) : 0.0f;
            sr[c]   = e;
            sum += e;
        }
        float inv = (float)(1.0 / sum);
        for (int64_t c = lo; c <= hi; c++) {
            sr[c] *= inv;
        }
        lse_out[r * lse_stride] = (float)(mx + log(sum));
    }
}

void werk_op_attention_fwd_masked(float         *out,
                                  float         *lse,
                                  const float   *q,
                                  const float   *k,
                                  const float   *v,
                                  int64_t        B,
                                  int64_t        T,
                                  int64_t        n_head,
                                  int64_t        n_kv,
                                  int64_t        hd,
                                  float          scale,
                                  int64_t        window,
                                  const int32_t *start) {
    int64_t group = n_head / n_kv, qd = n_head * hd, kd = n_kv * hd;
    int64_t n_tiles = (T + QTILE - 1) / QTILE, n_units = B * n_head * n_tiles;
#pragma omp parallel
    {
        float *s = malloc((size_t)(QTILE * T) * sizeof(float));
        WERK_ASSERT(s);
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < n_units; u++) {
            int64_t        b = u / (n_head * n_tiles), h = u / n_tiles % n_head, it = u % n_tiles;
            int64_t        i0 = it * QTILE, i1 = i0 + QTILE < T ? i0 + QTILE : T, nq = i1 - i0, jlo;
            const int32_t *st = start ? start + b * T : NULL;
            tile_keys(st, i0, i1, window, &jlo);
            int64_t      nk = i1 - jlo;
            const float *qt = q + (b * T + i0) * qd + h * hd;
            const float *kt = k + (b * T + jlo) * kd + (h / group) * hd;
            const float *vt = v + (b * T + jlo) * kd + (h / group) * hd;
            werk_sgemm(false, true, nq, nk, hd, scale, qt, qd, kt, kd, 0.0f, s, nk);
            tile_probs(s, nq, nk, i0, jlo, st, window, NULL, lse + (b * T + i0) * n_head + h, n_head);
            werk_sgemm(false, false, nq, hd, nk, 1.0f, s, nk, vt, kd, 0.0f, out + (b * T + i0) * qd + h * hd,
                       qd);
        }
        free(s);
    }
}

/* D_i = dO_i . O_i per (token, head), in double. */
static void row_dots(double *dd, const float *dout, const float *out, int64_t N, int64_t n_head, int64_t hd) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < N; t++) {
        for (int64_t h = 0; h < n_head; h++) {
            const float *a = dout + (t * n_head + h) * hd, *b = out + (t * n_head + h) * hd;
            double       acc = 0;
            for (int64_t d = 0; d < hd; d++) {
                acc += (double)a[d] * b[d];
            }
            dd[t * n_head + h] = acc;
        }
    }
}

void werk_op_attention_bwd(float         *dq,
                           float         *dk,
                           float         *dv,
                           const float   *dout,
                           const float   *out,
                           const float   *lse,
                           const float   *q,
                           const float   *k,
                           const float   *v,
                           int64_t        B,
                           int64_t        T,
                           int64_t        n_head,
                           int64_t        n_kv,
                           int64_t        hd,
                           float          scale,
                           int64_t        window,
                           const int32_t *start) {
    int64_t group = n_head / n_kv, qd = n_head * hd, kd = n_kv * hd;
    int64_t n_tiles = (T + QTILE - 1) / QTILE;
    double *dd      = malloc((size_t)(B * T * n_head) * sizeof(double));
    WERK_ASSERT(dd);
    row_dots(dd, dout, out, B * T, n_head, hd);
#pragma omp parallel
    {
        float *s  = malloc((size_t)(QTILE * T) * sizeof(float));
        float *dp = malloc((size_t)(QTILE * T) * sizeof(float));
        WERK_ASSERT(s && dp);
        // pass 1, per (row, head, query tile): dQ = scale dS K over the keys the tile sees
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < B * n_head * n_tiles; u++) {
            int64_t b = u / (n_head * n_tiles), h = u / n_tiles % n_head, it = u % n_tiles, kh = h / group;
            int64_t i0 = it * QTILE, i1 = i0 + QTILE < T ? i0 + QTILE : T, nq = i1 - i0, jlo;
            const int32_t *st = start ? start + b * T : NULL;
            tile_keys(st, i0, i1, window, &jlo);
            int64_t      nk  = i1 - jlo;
            const float *qt  = q + (b * T + i0) * qd + h * hd;
            const float *kt  = k + (b * T + jlo) * kd + kh * hd;
            const float *vt  = v + (b * T + jlo) * kd + kh * hd;
            const float *dot = dout + (b * T + i0) * qd + h * hd;
            werk_sgemm(false, true, nq, nk, hd, scale, qt, qd, kt, kd, 0.0f, s, nk);
            tile_probs(s, nq, nk, i0, jlo, st, window, lse + (b * T + i0) * n_head + h, NULL, n_head);
            werk_sgemm(false, true, nq, nk, hd, 1.0f, dot, qd, vt, kd, 0.0f, dp, nk);
            for (int64_t r = 0; r < nq; r++) {
                double di = dd[(b * T + i0 + r) * n_head + h];
                for (int64_t c = 0; c < nk; c++) {
                    dp[r * nk + c] = (float)((double)s[r * nk + c] * ((double)dp[r * nk + c] - di));
                }
            }
            werk_sgemm(false, false, nq, hd, nk, scale, dp, nk, kt, kd, 0.0f, dq + (b * T + i0) * qd + h * hd,
                       qd);
        }
        // pass 2, per (row, kv head, key tile): dK = scale dS^T Q, dV = P^T dO over every
        // query tile that sees the key tile and every head of the group, in order
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < B * n_kv * n_tiles; u++) {
            int64_t        b = u / (n_kv * n_tiles), kh = u / n_tiles % n_kv, jt = u % n_tiles;
            int64_t        j0 = jt * QTILE, j1 = j0 + QTILE < T ? j0 + QTILE : T, nk = j1 - j0;
            const int32_t *st  = start ? start + b * T : NULL;
            const float   *kt  = k + (b * T + j0) * kd + kh * hd;
            const float   *vt  = v + (b * T + j0) * kd + kh * hd;
            float         *dkt = dk + (b * T + j0) * kd + kh * hd, *dvt = dv + (b * T + j0) * kd + kh * hd;
            for (int64_t c = 0; c < nk; c++) {
                memset(dkt + c * kd, 0, (size_t)hd * sizeof(float));
                memset(dvt + c * kd, 0, (size_t)hd * sizeof(float));
            }
            for (int64_t it = jt; it < n_tiles; it++) {
                int64_t i0 = it * QTILE, i1 = i0 + QTILE < T ? i0 + QTILE : T, nq = i1 - i0, jlo;
                tile_keys(st, i0, i1, window, &jlo);
                if (jlo >= j1) {
                    continue; // no query of this tile sees these keys
                }
                for (int64_t g = 0; g < group; g++) {
                    int64_t      h   = kh * group + g;
                    const float *qt  = q + (b * T + i0) * qd + h * hd;
                    const float *dot = dout + (b * T + i0) * qd + h * hd;
                    // S^T [nk, nq] and dP^T = V dO^T
                    werk_sgemm(false, true, nk, nq, hd, scale, kt, kd, qt, qd, 0.0f, s, nq);
                    werk_sgemm(false, true, nk, nq, hd, 1.0f, vt, kd, dot, qd, 0.0f, dp, nq);
                    for (int64_t r = 0; r < nq; r++) {
                        int64_t i = i0 + r, lo = row_lo(st, i, window);
                        float   l  = lse[(b * T + i) * n_head + h];
                        double  di = dd[(b * T + i) * n_head + h];
                        for (int64_t c = 0; c < nk; c++) {
                            int64_t j      = j0 + c;
                            float   pt     = j >= lo && j <= i ? expf(s[c * nq + r] - l) : 0.0f;
                            s[c * nq + r]  = pt;
                            dp[c * nq + r] = (float)((double)pt * ((double)dp[c * nq + r] - di));
                        }
                    }
                    werk_sgemm(false, false, nk, hd, nq, 1.0f, s, nq, dot, qd, 1.0f, dvt, kd);
                    werk_sgemm(false, false, nk, hd, nq, scale, dp, nq, qt, qd, 1.0f, dkt, kd);
                }
            }
        }
        free(s);
        free(dp);
    }
    free(dd);
}
