/* infer/sample.c - token sampling: repetition penalty, top-k, top-p, min-p, temperature
 *
 * The PRNG is xoshiro256** (Blackman & Vigna) seeded by splitmix64, its state in werk_rng;
 * a werk_sampler owns one, so the same seed gives the same draws. Chain (llama.cpp's
 * default order): penalise the logits of tokens in the last repeat_last_n accepted tokens
 * (positive / penalty, negative x penalty), keep the top_k largest, then the smallest
 * prefix (by probability, descending; ties by lower id) whose mass reaches top_p, then
 * those with p >= min_p x p_max - probabilities from the softmax at temperature 1 - and
 * finally renormalise exp(logit / temp) over the survivors. temp <= 0 is greedy (argmax,
 * lowest id on ties). Sorting happens only when top_k or top_p need it.
 */
#include "infer/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float   l;
    int32_t id;
} cand;

struct werk_sampler {
    werk_sampler_params p;
    werk_rng            rng;
    int64_t             n_vocab;
    int32_t            *hist; // ring of the last repeat_last_n tokens
    int64_t             n_hist, hist_pos;
    float              *lg;    // penalised logits
    int32_t            *idx;   // candidate ids
    cand               *sort;  // scratch for sorting
    float              *probs; // distribution of the last call
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void werk_rng_seed(werk_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&seed);
    }
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t werk_rng_next(werk_rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double werk_rng_uniform(werk_rng *r) { return (double)(werk_rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

werk_sampler_params werk_sampler_default_params(void) {
    return (werk_sampler_params){
        .temp = 0, .top_k = 0, .top_p = 1, .min_p = 0, .repeat_penalty = 1, .repeat_last_n = 64, .seed = 0};
}

werk_status
werk_sampler_init(const werk_sampler_params *p, int64_t n_vocab, werk_sampler **out, werk_err *err) {
    *out = NULL;
    if (n_vocab <= 0 || n_vocab > INT32_MAX || p->top_k < 0 || p->repeat_last_n < 0 ||
        !(p->repeat_penalty > 0) || isnan(p->temp) || isnan(p->top_p) || isnan(p->min_p)) {
        return WERK_FAIL(err, WERK_E_ARG, "sampler: bad parameters (vocab %lld, top-k %d, penalty %g)",
                         (long long)n_vocab, (int)p->top_k, (double)p->repeat_penalty);
    }
    werk_sampler *s = calloc(1, sizeof(*s));
    if (!s) {
        return WERK_FAIL(err, WERK_E_OOM, "sampler: out of memory");
    }
    s->p       = *p;
    s->n_vocab = n_vocab;
    s->hist    = malloc((size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1) * sizeof(int32_t));
    s->lg      = malloc((size_t)n_vocab * sizeof(float));
    s->idx     = malloc((size_t)n_vocab * sizeof(int32_t));
    s->probs   = malloc((size_t)n_vocab * sizeof(float));
    s->sort    = malloc((size_t)n_vocab * sizeof(cand));
    if (!s->hist || !s->lg || !s->idx || !s->probs || !s->sort) {
        werk_sampler_free(s);
        return WERK_FAIL(err, WERK_E_OOM, "sampler: out of memory for %lld tokens", (long long)n_vocab);
    }
    werk_rng_seed(&s->rng, p->seed);
    *out = s;
    return WERK_OK;
}

void werk_sampler_free(werk_sampler *s) {
    if (!s) {
        return;
    }
    free(s->hist);
    free(s->lg);
    free(s->idx);
    free(s->probs);
    free(s->sort);
    free(s);
}

void werk_sampler_accept(werk_sampler *s, int32_t token) {
    if (s->p.repeat_last_n <= 0) {
        return;
    }
    s->hist[s->hist_pos] = token;
    s->hist_pos          = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->n_hist < s->p.repeat_last_n) {
        s->n_hist++;
    }
}

static int by_logit_desc(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->l != b->l) {
        return a->l > b->l ? -1 : 1;
    }
    return (a->id > b->id) - (a->id < b->id);
}

void werk_sampler_probs(werk_sampler *s, const float *logits, float *probs) {
    int64_t V  = s->n_vocab;
    float  *lg = s->lg;
    memcpy(lg, logits, (size_t)V * sizeof(float));
    if (s->p.repeat_penalty != 1.0f) {
        // each distinct token once, even when it repeats in the history
        for (int64_t i = 0; i < s->n_hist; i++) {
            int32_t t   = s->hist[i];
            bool    dup = false;
            for (int64_t j = 0; j < i && !dup; j++) {
                dup = s->hist[j] == t;
            }
            if (!dup && t >= 0 && t < V) {
                lg[t] = lg[t] > 0 ? lg[t] / s->p.repeat_penalty : lg[t] * s->p.repeat_penalty;
            }
        }
    }
    memset(probs, 0, (size_t)V * sizeof(float));
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++) {
        best = lg[i] > lg[best] ? i : best;
    }
    if (s->p.temp <= 0) {
        probs[best] = 1;
        return;
    }
    // candidates: all ids, sorted by logit when top-k / top-p need an order
    int32_t *idx = s->idx;
    int64_t  n   = V;
    for (int64_t i = 0; i < V; i++) {
        idx[i] = (int32_t)i;
    }
    bool sorted = false;
    if ((s->p.top_k > 0 && s->p.top_k < V) || s->p.top_p < 1) {
        for (int64_t i = 0; i < V; i++) {
            s->sort[i] = (cand){lg[i], (int32_t)i};
        }
        qsort(s->sort, (size_t)V, sizeof(cand), by_logit_desc);
        for (int64_t i = 0; i < V; i++) {
            idx[i] = s->sort[i].id;
        }
        sorted = true;
        if (s->p.top_k > 0 && s->p.top_k < n) {
            n = s->p.top_k;
        }
    }
    double mx = lg[best], z = 0;
    for (int64_t i = 0; i < n; i++) {
        z += exp((double)lg[idx[i]] - mx);
    }
    if (sorted && s->p.top_p < 1) {
        double  cum  = 0;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            cum += exp((double)lg[idx[i]] - mx) / z;
            if (cum >= s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->p.min_p > 0) {
        // p_i >= min_p * p_max  <=>  logit_i - max >= log(min_p); the max always survives
        double  lim = log((double)s->p.min_p);
        int64_t w   = 0;
        for (int64_t i = 0; i < n; i++) {
            if ((double)lg[idx[i]] - mx >= lim) {
                idx[w++] = idx[i];
            }
        }
        n = w;
    }
    double zt = 0;
    for (int64_t i = 0; i < n; i++) {
        zt += exp(((double)lg[idx[i]] - mx) / s->p.temp);
    }
    for (int64_t i = 0; i < n; i++) {
        probs[idx[i]] = (float)(exp(((double)lg[idx[i]] - mx) / s->p.temp) / zt);
    }
}

int32_t werk_sampler_sample(werk_sampler *s, const float *logits) {
    werk_sampler_probs(s, logits, s->probs);
    double  u = werk_rng_uniform(&s->rng), cum = 0;
    int32_t last = 0;
    for (int64_t i = 0; i < s->n_vocab; i++) {
        if (s->probs[i] > 0) {
            cum += s->probs[i];
            last = (int32_t)i;
            if (u < cum) {
                return (int32_t)i;
            }
        }
    }
    return last; // rounding left u above the total
}
