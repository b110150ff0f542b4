/* infer/ops/gemm.c - the one entry to OpenBLAS sgemm: cut into fixed pieces, run on OpenMP
 *
 * werk uses one thread pool: OpenMP. Debian's OpenBLAS (pthreads build) keeps a pool of
 * its own whose threads spin after each call, and OpenMP's threads spin after each
 * parallel region; alternating the two on a machine with few cores makes each pool wait
 * for cores the other is spinning on (measured: 2-thread LoRA training 15x slower than 1
 * thread on the 2-core CI machine). So OpenBLAS is set to one thread once, and
 * werk_sgemm splits C = alpha op(A) op(B) + beta C (row-major) into pieces of
 * WERK_GEMM_PIECE rows of C (or columns, when C is wide and short) that OpenMP threads
 * take in a static schedule. The pieces never split K and their shapes do not depend on
 * the thread count, so every element of C is computed by the same kernel call in the same
 * order for any number of threads: results are bit-identical across thread counts.
 * Inside an OpenMP parallel region (callers that already split work, e.g. attention per
 * head) it runs the pieces on the calling thread.
 */
#include "infer/model_int.h"

#include <cblas.h>
#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif

enum { WERK_GEMM_PIECE = 128, WERK_GEMM_MIN_FLOPS = 1 << 20 };

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void) { openblas_set_num_threads(1); }

void werk_gemm_init(void) { pthread_once(&blas_once, blas_single_thread); }

static void sgemm_piece(bool         ta,
                        bool         tb,
                        int64_t      M,
                        int64_t      N,
                        int64_t      K,
                        float        alpha,
                        const float *A,
                        int64_t      lda,
                        const float *B,
                        int64_t      ldb,
                        float        beta,
                        float       *C,
                        int64_t      ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void werk_sgemm(bool         ta,
                bool         tb,
                int64_t      M,
                int64_t      N,
                int64_t      K,
                float        alpha,
                const float *A,
                int64_t      lda,
                const float *B,
                int64_t      ldb,
                float        beta,
                float       *C,
                int64_t      ldc) {
    werk_gemm_init();
    if (M <= 0 || N <= 0) {
        return;
    }
    // Split the longer of M and N; a short, wide C (few tokens, many outputs) splits N.
    bool    split_m  = M >= N;
    int64_t len      = split_m ? M : N;
    int64_t n_pieces = (len + WERK_GEMM_PIECE - 1) / WERK_GEMM_PIECE;
    bool    parallel = n_pieces > 1 && (double)M * (double)N * (double)K >= WERK_GEMM_MIN_FLOPS;
#ifdef _OPENMP
    parallel = parallel && !omp_in_parallel() && omp_get_max_threads() > 1;
#else
    parallel = false;
#endif
    (void)parallel;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t p = 0; p < n_pieces; p++) {
        int64_t o = p * WERK_GEMM_PIECE, n = len - o < WERK_GEMM_PIECE ? len - o : WERK_GEMM_PIECE;
        if (split_m) {
            // rows o..o+n of C; A's rows (NoTrans) or columns (Trans)
            const float *a = ta ? A + o : A + o * lda;
            sgemm_piece(ta, tb, n, N, K, alpha, a, lda, B, ldb, beta, C + o * ldc, ldc);
        } else {
            // columns o..o+n of C; B's columns (NoTrans) or rows (Trans)
            const float *b = tb ? B + o * ldb : B + o;
            sgemm_piece(ta, tb, M, n, K, alpha, A, lda, b, ldb, beta, C + o, ldc);
        }
    }
}
