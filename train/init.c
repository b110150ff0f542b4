/* train/init.c - LoRA parameter initialisation as PEFT does it, and the trainer's RNG
 *
 * PEFT's default init_lora_weights=True: lora_A is nn.Linear's kaiming_uniform_ with
 * a = sqrt(5) on a weight [r, in], whose bound is gain * sqrt(3 / fan_in) with
 * gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), i.e. U(-1/sqrt(in), 1/sqrt(in)); lora_B is zero,
 * so a fresh adapter leaves the model unchanged. Draws come from splitmix64 seeded by the
 * user's --seed, in the adapter's fixed parameter order (layer, slot, row, column), so the
 * same seed gives the same adapter on every machine and thread count.
 */
#include "infer/model_int.h"
#include "train/train_int.h"

#include <math.h>
#include <string.h>

uint64_t werk_train_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 random bits: exactly representable as a float. */
static float rng_uniform(uint64_t *state) {
    return (float)(werk_train_rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

void werk_lora_init_peft(werk_lora *l, const werk_model *m, uint64_t seed) {
    uint64_t rng = seed ^ 0x4c6f5241696e6974ull; // "LoRAinit": a stream apart from other uses of seed
    for (int64_t il = 0; il < l->n_layer; il++) {
        for (int s = 0; s < WERK_LORA_N_SLOTS; s++) {
            werk_lora_mat *mat = &l->mats[il * WERK_LORA_N_SLOTS + s];
            if (!mat->a) {
                continue;
            }
            const werk_layer *L                    = &m->layers[il];
            const werk_wview *w[WERK_LORA_N_SLOTS] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                                      &L->w_gate, &L->w_up, &L->w_down};
            int64_t           n_in = w[s]->cols, n_out = w[s]->rows;
            float             bound = 1.0f / sqrtf((float)n_in);
            for (int64_t i = 0; i < mat->r * n_in; i++) {
                mat->a[i] = (2.0f * rng_uniform(&rng) - 1.0f) * bound;
            }
            memset(mat->b, 0, (size_t)(mat->r * n_out) * sizeof(float));
        }
    }
}
