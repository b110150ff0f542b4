/* train/loss.c - LM head + masked cross-entropy over vocabulary chunks, forward and backward
 *
 * Only scored rows (target >= 0) are gathered: xs [S, D]. For each chunk of C vocab rows
 * Wc [C, D] (dequantized from the stored type; tied embeddings included):
 *   z = xs Wc^T [S, C]; per row an online softmax keeps the running max m, the running
 *   sum l = sum exp(z - m) (float exponentials, double sum) and acc = sum exp(z - m) W_v [D] (rescaled by
 *   exp(m_old - m_new) when m grows; the chunk's exp(z - m) is added with one sgemm).
 * At the end, per row with target t:
 *   forward   CE = m + log l - z_t
 *   backward  dx = softmax(z) W - W_t = acc / l - W_t
 * so the logits of a chunk are made once and never held for the whole vocabulary. Rows
 * are independent (one thread per row); the chunks run in a fixed order: the result does
 * not depend on the thread count.
 */
#include "train/grad_int.h"

#include <math.h>
#include <string.h>

static int64_t chunk_rows(const werk_wview *w, int64_t chunk) {
    if (chunk <= 0) {
        chunk = WERK_CE_DEFAULT_CHUNK;
    }
    return chunk < w->rows ? chunk : w->rows;
}

int64_t werk_ce_scratch(int64_t n, const werk_wview *w, int64_t chunk) {
    int64_t C = chunk_rows(w, chunk), D = w->cols;
    // m, l, zt doubles [n] (2 floats each); index [n]; xs, acc [n, D]; wc [C, D]; z [n, C]
    return 2 * n * D + C * D + n * C + 6 * n + n;
}

werk_status werk_ce_fwd_bwd(float            *dx,
                            const float      *x,
                            const int32_t    *targets,
                            int64_t           n,
                            const werk_wview *w,
                            int64_t           chunk,
                            float            *scratch,
                            double           *loss_sum,
                            int64_t          *n_scored,
                            werk_err         *err) {
    int64_t  C = chunk_rows(w, chunk), D = w->cols, V = w->rows;
    double  *mx = (double *)scratch, *l = mx + n, *zt = l + n; // scratch is malloc'd: aligned for doubles
    int32_t *idx = (int32_t *)(zt + n);
    float   *xs = (float *)(idx + n), *acc = xs + n * D, *wc = acc + n * D, *z = wc + C * D;
    int64_t  S = 0;
    for (int64_t i = 0; i < n; i++) {
        if (targets[i] >= V) {
            return WERK_FAIL(err, WERK_E_ARG, "loss: target %d at %lld is outside the vocabulary of %lld",
                             targets[i], (long long)i, (long long)V);
        }
        if (targets[i] >= 0) {
            idx[S++] = (int32_t)i;
        }
    }
    memset(dx, 0, (size_t)(n * D) * sizeof(float));
    if (S == 0) {
        return WERK_OK;
    }
    for (int64_t s = 0; s < S; s++) {
        memcpy(xs + s * D, x + (int64_t)idx[s] * D, (size_t)D * sizeof(float));
        mx[s] = -INFINITY;
        l[s]  = 0;
        zt[s] = 0;
    }
    memset(acc, 0, (size_t)(S * D) * sizeof(float));
    const char *base = w->data;
    for (int64_t c0 = 0; c0 < V; c0 += C) {
        int64_t nc = V - c0 < C ? V - c0 : C;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < nc; r++) {
            werk_dequantize_row(w->type, base + (uint64_t)(c0 + r) * w->row_bytes, wc + r * D, D);
        }
        werk_sgemm(false, true, S, nc, D, 1.0f, xs, D, wc, D, 0.0f, z, nc);
#pragma omp parallel for schedule(static)
        for (int64_t s = 0; s < S; s++) {
            float  *zs = z + s * nc;
            int64_t t  = targets[idx[s]];
            double  m  = mx[s];
            for (int64_t c = 0; c < nc; c++) {
                m = zs[c] > m ? zs[c] : m;
            }
            if (t >= c0 && t < c0 + nc) {
                zt[s] = zs[t - c0];
            }
            double f = exp(mx[s] - m), sum = 0; // f = 0 on the first chunk (mx = -inf)
            float  mf = (float)m;               // m is one of the float logits: exact
            for (int64_t c = 0; c < nc; c++) {
                float e = expf(zs[c] - mf);
                zs[c]   = e;
                sum += e;
            }
            l[s]  = l[s] * f + sum;
            mx[s] = m;
            if (f != 1.0) {
                float *as = acc + s * D;
                for (int64_t d = 0; d < D; d++) {
                    as[d] = (float)(as[d] * f);
                }
            }
        }
        werk_sgemm(false, false, S, D, nc, 1.0f, z, nc, wc, D, 1.0f, acc, D);
    }
    double total = 0;
    for (int64_t s = 0; s < S; s++) {
        total += mx[s] + log(l[s]) - zt[s];
    }
    // dx = acc / l - W_t; the target rows are dequantized into the (now free) chunk buffer
    for (int64_t s0 = 0; s0 < S; s0 += C) {
        int64_t ns = S - s0 < C ? S - s0 : C;
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < ns; j++) {
            int64_t s  = s0 + j;
            float  *wt = wc + j * D;
            werk_dequantize_row(w->type, base + (uint64_t)targets[idx[s]] * w->row_bytes, wt, D);
            float       *d   = dx + (int64_t)idx[s] * D;
            const float *as  = acc + s * D;
            double       inv = 1.0 / l[s];
            for (int64_t k = 0; k < D; k++) {
                d[k] = (float)((double)as[k] * inv - wt[k]);
            }
        }
    }
    *loss_sum += total;
    *n_scored += S;
    return WERK_OK;
}
