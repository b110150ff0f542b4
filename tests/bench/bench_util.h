/* tests/bench/bench_util.h - what werk's model benches share: wall clock, thread setup and
 * the two rooflines measured in the same run (copy bandwidth, OpenBLAS sgemm GFLOP/s)
 *
 * Threads: werk uses OpenMP only (OpenBLAS single-threaded inside werk_sgemm's pieces,
 * infer/ops/gemm.c), so bench_set_threads sets OpenMP; bench_sgemm_gflops lets OpenBLAS
 * use the same number of threads for its own measurement and then sets it back to one.
 */
#ifndef WERK_BENCH_UTIL_H
#define WERK_BENCH_UTIL_H

#include "infer/model_int.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static inline double bench_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void bench_set_threads(int n) {
    werk_gemm_init();
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}

/* Copy bandwidth in GB/s (read + write bytes) on threads threads, best of 5 after a warm-up. */
static inline double bench_copy_gbs(int threads) {
    const size_t n = (size_t)256 << 20;
    char        *a = malloc(n), *b = malloc(n);
    if (!a || !b) {
        free(a), free(b);
        return 0;
    }
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e30;
    for (int s = -1; s < 5; s++) {
        double t0 = bench_wall_s();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int c = 0; c < 64; c++) {
            memcpy(b + (size_t)c * (n / 64), a + (size_t)c * (n / 64), n / 64);
        }
        double t = bench_wall_s() - t0;
        if (s >= 0 && t < best) {
            best = t;
        }
    }
    free(a), free(b);
    return 2.0 * (double)n / best * 1e-9;
}

/* Plain cblas_sgemm GFLOP/s on threads OpenBLAS threads for C[M,N] = A[M,K] B[N,K]^T, best
 * of 5 after a warm-up. */
static inline double bench_sgemm_gflops(int64_t M, int64_t N, int64_t K, int threads) {
    float *a = malloc((size_t)(M * K) * sizeof(float));
    float *b = malloc((size_t)(K * N) * sizeof(float));
    float *c = malloc((size_t)(M * N) * sizeof(float));
    if (!a || !b || !c) {
        free(a), free(b), free(c);
        return 0;
    }
    for (int64_t i = 0; i < M * K; i++) {
        a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    }
    for (int64_t i = 0; i < K * N; i++) {
        b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    }
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int s = -1; s < 5; s++) {
        double t0 = bench_wall_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, a, (int)K, b,
                    (int)K, 0.0f, c, (int)N);
        double t = bench_wall_s() - t0;
        if (s >= 0 && t < best) {
            best = t;
        }
    }
    openblas_set_num_threads(1);
    free(a), free(b), free(c);
    return 2.0 * (double)M * (double)N * (double)K / best * 1e-9;
}

#endif
