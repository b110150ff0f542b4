/* infer/ops/attention.c - causal (optionally sliding-window) attention with GQA, forward
 *
 * One sequence at a time, full T x T scores per head (reference path: fine for the short
 * sequences of tests; a KV-cache decode path comes later). Softmax in double.
 */
#include "infer/model_int.h"

#include <math.h>
#include <stdlib.h>

void werk_op_attention_fwd(float *out, const float *q, const float *k, const float *v, int64_t T,
                           int64_t n_head, int64_t n_kv, int64_t hd, float scale, int64_t window) {
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
