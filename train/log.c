/* train/log.c - the loss log of a fine-tune: JSONL (one record per optimizer step, val loss
 * where evaluated) and an SVG line chart of train and val loss against step
 *
 * Both files are rewritten whole and atomically (werk_write_file_atomic) at every eval and
 * at the end of a run, so a crash never leaves half a log. The SVG is plain SVG 1.1 with
 * no scripts or external references, small enough to view in any browser.
 */
#include "train/train_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

werk_status werk_loss_log_add(werk_loss_log *log, const werk_loss_rec *rec, werk_err *err) {
    if (log->n == log->cap) {
        int64_t        cap = log->cap ? log->cap * 2 : 256;
        werk_loss_rec *r   = realloc(log->recs, (size_t)cap * sizeof(*r));
        if (!r) {
            return WERK_FAIL(err, WERK_E_OOM, "loss log: out of memory at %lld records", (long long)log->n);
        }
        log->recs = r;
        log->cap  = cap;
    }
    log->recs[log->n++] = *rec;
    return WERK_OK;
}

void werk_loss_log_free(werk_loss_log *log) {
    free(log->recs);
    memset(log, 0, sizeof(*log));
}

static void put_num(werk_strbuf *b, double x, const char *fmt) {
    char s[64];
    if (isfinite(x)) {
        snprintf(s, sizeof(s), fmt, x);
    } else {
        snprintf(s, sizeof(s), "null");
    }
    werk_strbuf_puts(b, s);
}

static werk_status write_buf(werk_strbuf *b, const char *path, const char *what, werk_err *err) {
    if (b->oom) {
        werk_strbuf_free(b);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
    }
    werk_status st = werk_write_file_atomic(path, b->p ? b->p : "", b->n, err);
    werk_strbuf_free(b);
    return st;
}

werk_status werk_loss_log_write_jsonl(const werk_loss_log *log, const char *path, werk_err *err) {
    werk_strbuf b = {0};
    for (int64_t i = 0; i < log->n; i++) {
        const werk_loss_rec *r = &log->recs[i];
        char                 s[64];
        snprintf(s, sizeof(s), "{\"step\": %lld, \"train_loss\": ", (long long)r->step);
        werk_strbuf_puts(&b, s);
        put_num(&b, r->train_loss, "%.9g");
        werk_strbuf_puts(&b, ", \"val_loss\": ");
        put_num(&b, r->val_loss, "%.9g");
        werk_strbuf_puts(&b, ", \"lr\": ");
        put_num(&b, r->lr, "%.9g");
        werk_strbuf_puts(&b, ", \"tokens_per_s\": ");
        put_num(&b, r->tok_per_s, "%.1f");
        werk_strbuf_puts(&b, "}\n");
    }
    return write_buf(&b, path, "loss log", err);
}

// ---- SVG chart ---------------------------------------------------------------------------

enum { SVG_W = 800, SVG_H = 480, PAD_L = 70, PAD_R = 20, PAD_T = 30, PAD_B = 50 };

typedef struct chart {
    double x0, x1, y0, y1; // data ranges
} chart;

static double chart_x(const chart *c, double x) {
    return PAD_L + (x - c->x0) / (c->x1 - c->x0) * (SVG_W - PAD_L - PAD_R);
}
static double chart_y(const chart *c, double y) {
    return SVG_H - PAD_B - (y - c->y0) / (c->y1 - c->y0) * (SVG_H - PAD_T - PAD_B);
}

static void
put_series(werk_strbuf *b, const werk_loss_log *log, const chart *c, bool val, const char *color) {
    int64_t n_pts = 0;
    char    s[96];
    for (int64_t i = 0; i < log->n; i++) {
        double y = val ? log->recs[i].val_loss : log->recs[i].train_loss;
        if (!isfinite(y)) {
            continue;
        }
        if (n_pts++ == 0) {
            snprintf(s, sizeof(s), "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                     color);
            werk_strbuf_puts(b, s);
        }
        snprintf(s, sizeof(s), "%.2f,%.2f ", chart_x(c, (double)log->recs[i].step), chart_y(c, y));
        werk_strbuf_puts(b, s);
    }
    if (n_pts) {
        werk_strbuf_puts(b, "\"/>\n");
    }
}

werk_status werk_loss_log_write_svg(const werk_loss_log *log, const char *path, werk_err *err) {
    chart c       = {INFINITY, -INFINITY, INFINITY, -INFINITY};
    bool  has_val = false;
    for (int64_t i = 0; i < log->n; i++) {
        const werk_loss_rec *r     = &log->recs[i];
        double               ys[2] = {r->train_loss, r->val_loss};
        for (int k = 0; k < 2; k++) {
            if (!isfinite(ys[k])) {
                continue;
            }
            has_val = has_val || k == 1;
            c.x0    = fmin(c.x0, (double)r->step);
            c.x1    = fmax(c.x1, (double)r->step);
            c.y0    = fmin(c.y0, ys[k]);
            c.y1    = fmax(c.y1, ys[k]);
        }
    }
    if (!(c.x0 <= c.x1)) { // no points yet
        c = (chart){0, 1, 0, 1};
    }
    if (c.x1 - c.x0 < 1) {
        c.x1 = c.x0 + 1;
    }
    double pad = (c.y1 - c.y0) * 0.05;
    if (pad <= 0) {
        pad = 0.5;
    }
    c.y0 -= pad;
    c.y1 += pad;

    werk_strbuf b = {0};
    char        s[256];
    snprintf(s, sizeof(s),
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">\n",
             SVG_W, SVG_H, SVG_W, SVG_H);
    werk_strbuf_puts(&b, s);
    werk_strbuf_puts(&b, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                         "<g font-family=\"sans-serif\" font-size=\"12\" fill=\"#333\">\n");
    snprintf(s, sizeof(s), "<text x=\"%d\" y=\"18\" font-size=\"14\">werk finetune: loss per step</text>\n",
             PAD_L);
    werk_strbuf_puts(&b, s);
    for (int k = 0; k <= 4; k++) { // horizontal grid lines with loss labels
        double y = c.y0 + (c.y1 - c.y0) * k / 4.0;
        snprintf(s, sizeof(s),
                 "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#ddd\"/>"
                 "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%.3f</text>\n",
                 PAD_L, chart_y(&c, y), SVG_W - PAD_R, chart_y(&c, y), PAD_L - 6, chart_y(&c, y) + 4, y);
        werk_strbuf_puts(&b, s);
    }
    for (int k = 0; k <= 4; k++) { // step labels
        double x = c.x0 + (c.x1 - c.x0) * k / 4.0;
        snprintf(s, sizeof(s), "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n",
                 chart_x(&c, x), SVG_H - PAD_B + 18, x);
        werk_strbuf_puts(&b, s);
    }
    snprintf(s, sizeof(s), "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n",
             (SVG_W + PAD_L - PAD_R) / 2, SVG_H - 10);
    werk_strbuf_puts(&b, s);
    snprintf(s, sizeof(s), "<text x=\"%d\" y=\"%d\" fill=\"#1f77b4\">train</text>%s\n</g>\n",
             SVG_W - PAD_R - 110, PAD_T + 4,
             has_val ? "<text x=\"730\" y=\"34\" fill=\"#d62728\">val</text>" : "");
    werk_strbuf_puts(&b, s);
    put_series(&b, log, &c, false, "#1f77b4");
    put_series(&b, log, &c, true, "#d62728");
    werk_strbuf_puts(&b, "</svg>\n");
    return write_buf(&b, path, "loss curve", err);
}
