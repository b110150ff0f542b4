/* quant/kquant_search.c - werk's scale searches for the K-quants
 *
 * A sub-block of 16 or 32 values x with weights w is coded as scale * l (- min) with
 * integer levels l. Finding the scale is the expensive part of K-quant quantization;
 * ggml tries candidate scales one after the other, each with two scalar passes (round
 * and fit, then measure the error), see quant/kquant_ggml.c. werk's search:
 *
 *   1. One pass over the values evaluates several candidate inverse scales at once: the
 *      candidates are the lanes of the inner loop (arrays of 4, 8 or 16 floats), each
 *      value is rounded (round_even, no float -> int conversion) and its weighted sums
 *      sum(w l), sum(w l^2), sum(w x l) accumulated per candidate. The inner loop has no
 *      branch and a fixed trip count, so GCC vectorizes it at -O2, and every lane adds in
 *      the same order whatever the vector width.
 *   2. Each candidate gets its exact weighted least-squares fit (scale, and min <= 0 for
 *      the asymmetric formats) and its error in closed form: at the optimum
 *      err = sum(w x^2) - scale * sum(w x l) - min * sum(w x), so ranking candidates
 *      needs no second pass and no cancellation against sum(w x^2).
 *   3. One Lloyd round: the levels nearest to the best fit, then their least-squares fit.
 *      Both steps can only lower the error. The same pass sums each sub-block's
 *      sensitivity in the error that is measured (metric weights: the imatrix, or 1).
 *
 * werk_kq_fit_sym_x16 runs steps 1-2 for the 16 sub-blocks of a Q3_K super-block with
 * the sub-blocks in the lanes, so no per-sub-block scalar work remains.
 *
 * The super-block then codes the sub-block scales (and mins) with 4-8 bits
 * (werk_kq_code_unsigned / _signed): five super-scales around max / nmax weighted by
 * the sensitivities, a weighted least-squares refit, and the levels rounded against the
 * fp16 value that is stored. For the asymmetric formats werk_kq_refine_codes then picks
 * per sub-block the scale and min codes just below / above the fit that give the lowest
 * measured error after re-rounding; this last step is where most of the gain over ggml
 * comes from (ggml rounds scale and min codes independently).
 *
 * Determinism: plain float32 arithmetic without contraction (quant_int.h), fixed
 * summation orders (8 partial sums reduced in the fixed tree of sum8), no data-dependent
 * loop counts inside the vector loops: the bytes depend only on the input. A SIMD
 * variant reproduces them by keeping these orders.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

#define KQ_MAGIC 12582912.f // 1.5 * 2^23: (v + M) - M rounds |v| < 2^22 to nearest even
#define KQ_CODE_STEPS 2     // super-scale candidates on each side of max / nmax

static inline float round_even(float v) { return (v + KQ_MAGIC) - KQ_MAGIC; }

/* Metric weights of 1 for callers without an imatrix (keeps the loops branch-free). */
static const float kq_ones[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

/* Reduces 8 partial sums in a fixed tree (an AVX2 variant can do the same). */
static inline float sum8(const float *p) {
    return ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
}

// ---- asymmetric fit: value = scale * l - min, l in 0..nmax ---------------------------

/* Weighted least squares of x on (l, 1) from the sums; min clamped to <= 0 as ggml.
 * Returns the explained weighted energy G = scale*sum(wxl) + m*sum(wx) (err = swx2 - G),
 * or -1 when the levels do not determine a fit. */
static inline float asym_fit(float sw, float swx, float sl, float sl2, float sxl, float *scale, float *m) {
    float D = sw * sl2 - sl * sl;
    if (!(D > 0)) {
        return -1.0f;
    }
    float s  = (sw * sxl - swx * sl) / D;
    float mm = (sl2 * swx - sl * sxl) / D;
    if (mm > 0) {
        mm = 0;
        s  = sxl / sl2;
    }
    *scale = s;
    *m     = mm;
    return s * sxl + mm * swx;
}

/* n values (a multiple of 8), NL candidate lanes per pass (4, 8 or 16), nc candidates. */
static inline __attribute__((always_inline)) void fit_asym(const float  *x,
                                                           const float  *w,
                                                           const float  *mw,
                                                           const int     n,
                                                           const int     nmax,
                                                           const float  *steps,
                                                           const int     nc,
                                                           const int     NL,
                                                           werk_kq_asym *out) {
    const float *mv    = mw ? mw : kq_ones;
    float        pw[8] = {0}, pwx[8] = {0};
    float        mn = x[0], mx = x[0];
    for (int i = 0; i < n; i += 8) {
        for (int k = 0; k < 8; k++) {
            pw[k] += w[i + k];
            pwx[k] += w[i + k] * x[i + k];
            mn = x[i + k] < mn ? x[i + k] : mn;
            mx = x[i + k] > mx ? x[i + k] : mx;
        }
    }
    const float sw = sum8(pw), swx = sum8(pwx);
    if (mn > 0) {
        mn = 0;
    }
    out->scale  = 0;
    out->min    = -mn;
    out->sens_s = 0;
    out->sens_m = 0;
    if (!(mx > mn) || !(mx - mn < INFINITY)) { // constant block (or NaN/inf): value = -min
        return;
    }
    const float fnmax = (float)nmax, irange = 1.0f / (mx - mn);
    float       best_g = -1.0f, best_s = 0, best_m = mn;
    for (int c0 = 0; c0 < nc; c0 += NL) {
        float it[16], sl[16] = {0}, sl2[16] = {0}, sxl[16] = {0};
        for (int k = 0; k < NL; k++) {
            it[k] = steps[c0 + k] * irange;
        }
        for (int i = 0; i < n; i++) {
            const float xm = x[i] - mn, wi = w[i], wxi = w[i] * x[i];
            for (int k = 0; k < NL; k++) {
                float r  = round_even(it[k] * xm);
                r        = r > fnmax ? fnmax : r;
                float wl = wi * r;
                sl[k] += wl;
                sl2[k] += wl * r;
                sxl[k] += wxi * r;
            }
        }
        for (int k = 0; k < NL; k++) {
            float s = 0, m = 0, g = asym_fit(sw, swx, sl[k], sl2[k], sxl[k], &s, &m);
            if (g > best_g) {
                best_g = g;
                best_s = s;
                best_m = m;
            }
        }
    }
    if (!(best_g >= 0) || !(best_s > 0)) { // no candidate fitted: the plain range
        best_s = (mx - mn) / fnmax;
        best_m = mn;
    }
    // one Lloyd round: levels nearest to the best fit, then their least-squares fit. Both
    // steps can only lower the error, so the result needs no check.
    const float inv   = 1.0f / best_s;
    float       pl[8] = {0}, pl2[8] = {0}, pxl[8] = {0}, ml2[8] = {0}, mm[8] = {0};
    for (int i = 0; i < n; i += 8) {
        for (int k = 0; k < 8; k++) {
            float r  = round_even((x[i + k] - best_m) * inv);
            r        = r < 0 ? 0 : (r > fnmax ? fnmax : r);
            float wl = w[i + k] * r, v = mv[i + k];
            pl[k] += wl;
            pl2[k] += wl * r;
            pxl[k] += w[i + k] * x[i + k] * r;
            ml2[k] += v * r * r;
            mm[k] += v;
        }
    }
    float s = 0, m = 0;
    if (asym_fit(sw, swx, sum8(pl), sum8(pl2), sum8(pxl), &s, &m) >= 0 && s > 0) {
        best_s = s;
        best_m = m;
    }
    out->scale  = best_s;
    out->min    = -best_m;
    out->sens_s = sum8(ml2);
    out->sens_m = sum8(mm);
}

void werk_kq_fit_asym16(const float  *x,
                        const float  *w,
                        const float  *mw,
                        int           nmax,
                        const float  *steps,
                        int           nc,
                        werk_kq_asym *out) {
    if (nc == 8) {
        fit_asym(x, w, mw, 16, nmax, steps, 8, 8, out);
    } else {
        fit_asym(x, w, mw, 16, nmax, steps, nc, 16, out);
    }
}

void werk_kq_fit_asym32(const float  *x,
                        const float  *w,
                        const float  *mw,
                        int           nmax,
                        const float  *steps,
                        int           nc,
                        werk_kq_asym *out) {
    if (nc == 8) {
        fit_asym(x, w, mw, 32, nmax, steps, 8, 8, out);
    } else {
        fit_asym(x, w, mw, 32, nmax, steps, nc, 16, out);
    }
}

// ---- symmetric fit: value = scale * l, l in -nmax..nmax-1 ------------------------------

static inline __attribute__((always_inline)) void fit_sym(const float *x,
                                                          const float *w,
                                                          const float *mw,
                                                          const int    n,
                                                          const int    nmax,
                                                          const float *steps,
                                                          const int    nc,
                                                          const int    NL,
                                                          werk_kq_sym *out) {
    const float *mv = mw ? mw : kq_ones;
    // the value of largest magnitude (the positive one on a tie), from vector min/max
    float pmx[8], pmn[8];
    for (int k = 0; k < 8; k++) {
        pmx[k] = pmn[k] = x[k];
    }
    for (int i = 8; i < n; i += 8) {
        for (int k = 0; k < 8; k++) {
            pmx[k] = x[i + k] > pmx[k] ? x[i + k] : pmx[k];
            pmn[k] = x[i + k] < pmn[k] ? x[i + k] : pmn[k];
        }
    }
    float vmx = pmx[0], vmn = pmn[0];
    for (int k = 1; k < 8; k++) {
        vmx = pmx[k] > vmx ? pmx[k] : vmx;
        vmn = pmn[k] < vmn ? pmn[k] : vmn;
    }
    const float max = vmx >= -vmn ? vmx : vmn, amax = fabsf(max);
    out->scale = 0;
    out->sens  = 0;
    if (!(amax >= 1e-15f) || !(amax < INFINITY)) {
        return;
    }
    const float lo = (float)-nmax, hi = (float)(nmax - 1), imax = -1.0f / max;
    float       best_num = 0, best_den = 1, best_s = max / lo; // best fit: sxl^2 / l2
    for (int c0 = 0; c0 < nc; c0 += NL) {
        float it[16], sl2[16] = {0}, sxl[16] = {0};
        for (int k = 0; k < NL; k++) {
            it[k] = steps[c0 + k] * imax;
        }
        for (int i = 0; i < n; i++) {
            const float xi = x[i], wi = w[i], wxi = w[i] * x[i];
            for (int k = 0; k < NL; k++) {
                float r = round_even(it[k] * xi);
                r       = r < lo ? lo : (r > hi ? hi : r);
                sl2[k] += wi * r * r;
                sxl[k] += wxi * r;
            }
        }
        for (int k = 0; k < NL; k++) {
            float num = sxl[k] * sxl[k];
            if (sl2[k] > 0 && num * best_den > best_num * sl2[k]) {
                best_num = num;
                best_den = sl2[k];
                best_s   = sxl[k] / sl2[k];
            }
        }
    }
    // one Lloyd round (see fit_asym)
    const float inv    = 1.0f / best_s;
    float       pl2[8] = {0}, pxl[8] = {0}, ml2[8] = {0};
    for (int i = 0; i < n; i += 8) {
        for (int k = 0; k < 8; k++) {
            float r = round_even(x[i + k] * inv);
            r       = r < lo ? lo : (r > hi ? hi : r);
            pl2[k] += w[i + k] * r * r;
            pxl[k] += w[i + k] * x[i + k] * r;
            ml2[k] += mv[i + k] * r * r;
        }
    }
    const float l2 = sum8(pl2);
    out->scale     = l2 > 0 ? sum8(pxl) / l2 : best_s;
    out->sens      = sum8(ml2);
}

void werk_kq_fit_sym16(
    const float *x, const float *w, const float *mw, int nmax, const float *steps, int nc, werk_kq_sym *out) {
    if (nc == 4) {
        fit_sym(x, w, mw, 16, nmax, steps, 4, 4, out);
    } else if (nc == 8) {
        fit_sym(x, w, mw, 16, nmax, steps, 8, 8, out);
    } else {
        fit_sym(x, w, mw, 16, nmax, steps, nc, 16, out);
    }
}

// ---- symmetric fit of 16 sub-blocks of 16 at once --------------------------------------

/* fit_sym for a whole 256-value super-block, the 16 sub-blocks in the vector lanes: the
 * values are transposed once (xt[l][j] = x[16 j + l]) so every loop runs over j with no
 * per-sub-block scalar work, and the best candidate per lane is kept with selects. Same
 * results as fit_sym with nc candidates and no Lloyd round. */
void werk_kq_fit_sym_x16(const float *x,
                         const float *qw,
                         float        sigma,
                         int          nmax,
                         const float *steps,
                         int          nc,
                         float       *scale,
                         float       *sens) {
    const float *mw = qw;
    float        xt[16][16], wxt[16][16], wt[16][16], mt[16][16];
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) {
            xt[l][j] = x[16 * j + l];
        }
    }
    if (qw) {
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) {
                mt[l][j] = qw[16 * j + l];
            }
        }
        memcpy(wt, mt, sizeof(wt));
    } else {
        for (int l = 0; l < 16; l++) {
            for (int j = 0; j < 16; j++) {
                wt[l][j] = sigma + fabsf(xt[l][j]);
            }
        }
    }
    for (int l = 0; l < 16; l++) {
        for (int j = 0; j < 16; j++) {
            wxt[l][j] = wt[l][j] * xt[l][j];
        }
    }
    float mx[16], mn[16];
    for (int j = 0; j < 16; j++) {
        mx[j] = mn[j] = xt[0][j];
    }
    for (int l = 1; l < 16; l++) {
        for (int j = 0; j < 16; j++) {
            mx[j] = xt[l][j] > mx[j] ? xt[l][j] : mx[j];
            mn[j] = xt[l][j] < mn[j] ? xt[l][j] : mn[j];
        }
    }
    const float lo = (float)-nmax, hi = (float)(nmax - 1);
    float       imax[16], bnum[16], bden[16], bsxl[16];
    for (int j = 0; j < 16; j++) {
        const float max  = mx[j] >= -mn[j] ? mx[j] : mn[j]; // largest magnitude, + on a tie
        const float amax = max < 0 ? -max : max;
        const bool  ok   = amax >= 1e-15f && amax < INFINITY;
        imax[j]          = ok ? -1.0f / max : 0.0f;
        bnum[j]          = 0;
        bden[j]          = 1;
        bsxl[j]          = 0;
    }
    for (int c = 0; c < nc; c++) {
        float it[16], sl2[16] = {0}, sxl[16] = {0};
        for (int j = 0; j < 16; j++) {
            it[j] = steps[c] * imax[j];
        }
        for (int l = 0; l < 16; l++) {
            for (int j = 0; j < 16; j++) {
                float r = round_even(it[j] * xt[l][j]);
                r       = r < lo ? lo : (r > hi ? hi : r);
                sl2[j] += wt[l][j] * r * r;
                sxl[j] += wxt[l][j] * r;
            }
        }
        for (int j = 0; j < 16; j++) {
            const float num    = sxl[j] * sxl[j];
            const bool  better = sl2[j] > 0 && num * bden[j] > bnum[j] * sl2[j];
            bnum[j]            = better ? num : bnum[j];
            bden[j]            = better ? sl2[j] : bden[j];
            bsxl[j]            = better ? sxl[j] : bsxl[j];
        }
    }
    float inv[16], ml2[16] = {0};
    for (int j = 0; j < 16; j++) {
        scale[j] = bsxl[j] / bden[j];
        inv[j]   = bsxl[j] != 0 ? bden[j] / bsxl[j] : 0.0f;
    }
    for (int l = 0; l < 16; l++) {
        for (int j = 0; j < 16; j++) {
            float r = round_even(xt[l][j] * inv[j]);
            r       = r < lo ? lo : (r > hi ? hi : r);
            ml2[j] += (mw ? mt[l][j] : 1.0f) * r * r;
        }
    }
    for (int j = 0; j < 16; j++) {
        sens[j] = ml2[j];
    }
}

// ---- super-block coding of the sub-block scales -------------------------------------------

/* Codes n values v[j] >= 0 as d * q[j], q in 0..nmax, minimising sum(sens[j] (v - d q)^2)
 * over a few super-scales d, then refitting d by least squares; d is returned as the
 * fp16 it is stored as, and q is rounded against that stored value. */
uint16_t werk_kq_code_unsigned(const float *v, const float *sens, int n, int nmax, uint8_t *q) {
    float max = 0;
    for (int j = 0; j < n; j++) {
        max = v[j] > max ? v[j] : max;
    }
    for (int j = 0; j < n; j++) {
        q[j] = 0;
    }
    if (!(max > 1e-15f)) {
        return 0;
    }
    const float fnmax  = (float)nmax;
    float       best_d = max / fnmax, best_e = INFINITY;
    for (int is = -KQ_CODE_STEPS; is <= KQ_CODE_STEPS; is++) {
        const float d = max / (fnmax + 0.2f * (float)is), id = 1.0f / d;
        float       e = 0;
        for (int j = 0; j < n; j++) {
            float l = round_even(v[j] * id);
            l       = l > fnmax ? fnmax : l;
            float r = v[j] - d * l;
            e += sens[j] * r * r;
        }
        if (e < best_e) {
            best_e = e;
            best_d = d;
        }
    }
    // refit d on the chosen levels, then round the levels against the stored fp16 d
    for (int iter = 0; iter < 2; iter++) {
        const float id  = 1.0f / best_d;
        float       svl = 0, sl2 = 0;
        for (int j = 0; j < n; j++) {
            float l = round_even(v[j] * id);
            l       = l > fnmax ? fnmax : l;
            svl += sens[j] * v[j] * l;
            sl2 += sens[j] * l * l;
        }
        if (sl2 > 0 && svl > 0) {
            best_d = svl / sl2;
        }
    }
    uint16_t    d16 = werk_fp32_to_fp16(best_d);
    const float d   = werk_fp16_to_fp32(d16);
    if (!(d > 0)) {
        return 0;
    }
    const float id = 1.0f / d;
    for (int j = 0; j < n; j++) {
        float l = round_even(v[j] * id);
        q[j]    = (uint8_t)(l > fnmax ? fnmax : l);
    }
    return d16;
}

/* Signed version: q in -nmax..nmax-1, the largest magnitude near -nmax, as ggml's
 * Q3_K/Q6_K scales. Returns the stored fp16 d (may be negative). */
uint16_t werk_kq_code_signed(const float *v, const float *sens, int n, int nmax, int8_t *q) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        q[j] = 0;
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            max  = v[j];
        }
    }
    if (!(amax > 1e-15f)) {
        return 0;
    }
    const float lo = (float)-nmax, hi = (float)(nmax - 1);
    float       best_d = max / -(float)nmax, best_e = INFINITY;
    for (int is = -KQ_CODE_STEPS; is <= KQ_CODE_STEPS; is++) {
        const float d = max / -((float)nmax + 0.2f * (float)is), id = 1.0f / d;
        float       e = 0;
        for (int j = 0; j < n; j++) {
            float l = round_even(v[j] * id);
            l       = l < lo ? lo : (l > hi ? hi : l);
            float r = v[j] - d * l;
            e += sens[j] * r * r;
        }
        if (e < best_e) {
            best_e = e;
            best_d = d;
        }
    }
    for (int iter = 0; iter < 2; iter++) {
        const float id  = 1.0f / best_d;
        float       svl = 0, sl2 = 0;
        for (int j = 0; j < n; j++) {
            float l = round_even(v[j] * id);
            l       = l < lo ? lo : (l > hi ? hi : l);
            svl += sens[j] * v[j] * l;
            sl2 += sens[j] * l * l;
        }
        if (sl2 > 0 && svl != 0) {
            best_d = svl / sl2;
        }
    }
    uint16_t    d16 = werk_fp32_to_fp16(best_d);
    const float d   = werk_fp16_to_fp32(d16);
    if (!(fabsf(d) > 0) || !isfinite(d)) {
        return 0;
    }
    const float id = 1.0f / d;
    for (int j = 0; j < n; j++) {
        float l = round_even(v[j] * id);
        l       = l < lo ? lo : (l > hi ? hi : l);
        q[j]    = (int8_t)l;
    }
    return d16;
}

// ---- final choice of the coded scale and min per sub-block -----------------------------

/* Error sum(mw (x - (ds*l - dm))^2) of a sub-block of n values re-rounded to levels 0..nmax. */
static inline __attribute__((always_inline)) float asym_code_err(
    const float *x, const float *mw, const int n, const float fnmax, const float ds, const float dm) {
    const float *mv    = mw ? mw : kq_ones;
    const float  id    = ds > 0 ? 1.0f / ds : 0.0f;
    float        pe[8] = {0};
    for (int i = 0; i < n; i += 8) {
        for (int k = 0; k < 8; k++) {
            float r = round_even((x[i + k] + dm) * id);
            r       = r < 0 ? 0 : (r > fnmax ? fnmax : r);
            float e = x[i + k] - (ds * r - dm);
            pe[k] += mv[i + k] * e * e;
        }
    }
    return sum8(pe);
}

static inline __attribute__((always_inline)) void refine_codes(const float *x,
                                                               const float *mw,
                                                               const int    n,
                                                               const int    nsub,
                                                               const int    nmax,
                                                               const int    qmax,
                                                               const float *sc,
                                                               const float *mn,
                                                               const float  d,
                                                               const float  dmin,
                                                               uint8_t     *ls,
                                                               uint8_t     *lm) {
    const float fnmax = (float)nmax;
    for (int j = 0; j < nsub; j++) {
        const float *xs = x + n * j, *ms = mw ? mw + n * j : NULL;
        // the codes on either side of the fitted scale and min
        int s0 = d > 0 ? (int)(sc[j] / d) : 0, m0 = dmin > 0 ? (int)(mn[j] / dmin) : 0;
        s0       = s0 < 0 ? 0 : (s0 > qmax ? qmax : s0);
        m0       = m0 < 0 ? 0 : (m0 > qmax ? qmax : m0);
        int   bs = ls[j], bm = lm[j];
        float best = asym_code_err(xs, ms, n, fnmax, d * (float)bs, dmin * (float)bm);
        for (int a = 0; a <= 1; a++) {
            for (int b = 0; b <= 1; b++) {
                const int sc2 = s0 + a, mc2 = m0 + b;
                if ((sc2 == ls[j] && mc2 == lm[j]) || sc2 > qmax || mc2 > qmax) {
                    continue;
                }
                float e = asym_code_err(xs, ms, n, fnmax, d * (float)sc2, dmin * (float)mc2);
                if (e < best) {
                    best = e;
                    bs   = sc2;
                    bm   = mc2;
                }
            }
        }
        ls[j] = (uint8_t)bs;
        lm[j] = (uint8_t)bm;
    }
}

void werk_kq_refine_codes16(const float *x,
                            const float *mw,
                            int          nsub,
                            int          nmax,
                            int          qmax,
                            const float *sc,
                            const float *mn,
                            float        d,
                            float        dmin,
                            uint8_t     *ls,
                            uint8_t     *lm) {
    refine_codes(x, mw, 16, nsub, nmax, qmax, sc, mn, d, dmin, ls, lm);
}

void werk_kq_refine_codes32(const float *x,
                            const float *mw,
                            int          nsub,
                            int          nmax,
                            int          qmax,
                            const float *sc,
                            const float *mn,
                            float        d,
                            float        dmin,
                            uint8_t     *ls,
                            uint8_t     *lm) {
    refine_codes(x, mw, 32, nsub, nmax, qmax, sc, mn, d, dmin, ls, lm);
}
