/* quant/blocks.h - on-disk block layouts of the GGUF quantized types
 *
 * One struct per block format, byte for byte as ggml's ggml-common.h (the bytes a GGUF
 * file holds; all fields little-endian, halfs are IEEE binary16 bit patterns). Each
 * block encodes a fixed number of consecutive elements of one row. Plain C11 structs of
 * fixed-width integers with no padding (checked by the static asserts below), so the
 * header also builds under __CUDACC__ (C++) for device code.
 *
 * Legacy formats (32 elements per block), value = d * q (+ m):
 *
 *   type   OFFSET SIZE DESCRIPTION
 *   q4_0    0      2   d: scale (fp16)
 *           2     16   qs: 4-bit quants; byte j holds element j (low nibble) and j+16 (high); q - 8
 *   q4_1    0      2   d: scale (fp16)
 *           2      2   m: minimum (fp16); value = d*q + m
 *           4     16   qs: as q4_0, unsigned q
 *   q5_0    0      2   d: scale (fp16)
 *           2      4   qh: bit j = 5th bit of element j (little-endian uint32)
 *           6     16   qs: low 4 bits as q4_0; value = d * (q - 16)
 *   q5_1    0      2   d, 2 2 m (fp16), 4 4 qh, 8 16 qs: as q5_0 with value = d*q + m
 *   q8_0    0      2   d: scale (fp16)
 *           2     32   qs: int8 quants; value = d * q
 *   q8_1    0      2   d: scale (fp16)
 *           2      2   s: d * sum(qs) (fp16), a dot-product helper
 *           4     32   qs: int8 quants
 *
 * K-quants (QK_K = 256 elements per super-block, split in sub-blocks of 16 or 32):
 *
 *   q2_K    0     16   scales: per 16-element sub-block, low nibble scale, high nibble min
 *          16     64   qs: 2-bit quants, see quant/q2_k.c for the element order
 *          80      2   d: super-block scale of the scales (fp16)
 *          82      2   dmin: super-block scale of the mins (fp16)
 *   q3_K    0     32   hmask: high (3rd) bit of each quant; set means no -4 offset
 *          32     64   qs: low 2 bits of each quant
 *          96     12   scales: 16 6-bit scales, packed (quant/q3_k.c)
 *         108      2   d: super-block scale (fp16)
 *   q4_K    0      2   d: super-block scale of the scales (fp16)
 *           2      2   dmin: super-block scale of the mins (fp16)
 *           4     12   scales: 8 6-bit scales and 8 6-bit mins, packed (quant/q4_k.c)
 *          16    128   qs: 4-bit quants, 32-element sub-blocks in nibble pairs
 *   q5_K    0      2   d, 2 2 dmin, 4 12 scales: as q4_K
 *          16     32   qh: 5th bits
 *          48    128   qs: low 4 bits as q4_K
 *   q6_K    0    128   ql: low 4 bits of the quants
 *         128     64   qh: high 2 bits of the quants
 *         192     16   scales: int8 scale per 16-element sub-block
 *         208      2   d: super-block scale (fp16); value = d * scale * (q - 32)
 *   q8_K    0      4   d: scale (float32)
 *           4    256   qs: int8 quants; value = d * q
 *         260     32   bsums: int16 sums of qs per 16 elements (dot-product helper)
 *
 * Reference: ggml/src/ggml-common.h (MIT), read for the layouts; gguf-py's
 * gguf/constants.py GGML_QUANT_SIZES agrees except for q8_1, which it lists as 40 bytes
 * (an old float-scale layout); ggml's static_assert makes it 36, and so does werk.
 */
#ifndef WERK_QUANT_BLOCKS_H
#define WERK_QUANT_BLOCKS_H

#include <stdint.h>

#ifdef __cplusplus
#define WERK_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define WERK_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define WERK_QK4_0 32
#define WERK_QK4_1 32
#define WERK_QK5_0 32
#define WERK_QK5_1 32
#define WERK_QK8_0 32
#define WERK_QK8_1 32
#define WERK_QK_K 256
#define WERK_K_SCALE_SIZE 12

// ---- legacy 32-element blocks ------------------------------------------------------

/* 4.5 bpw: value = d * (q - 8), q in 0..15 */
typedef struct block_q4_0 {
    uint16_t d;
    uint8_t  qs[WERK_QK4_0 / 2];
} block_q4_0;
WERK_STATIC_ASSERT(sizeof(block_q4_0) == 2 + WERK_QK4_0 / 2, "block_q4_0 size");

/* 5.0 bpw: value = d * q + m, q in 0..15 */
typedef struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t  qs[WERK_QK4_1 / 2];
} block_q4_1;
WERK_STATIC_ASSERT(sizeof(block_q4_1) == 4 + WERK_QK4_1 / 2, "block_q4_1 size");

/* 5.5 bpw: value = d * (q - 16), q in 0..31 */
typedef struct block_q5_0 {
    uint16_t d;
    uint8_t  qh[4];
    uint8_t  qs[WERK_QK5_0 / 2];
} block_q5_0;
WERK_STATIC_ASSERT(sizeof(block_q5_0) == 2 + 4 + WERK_QK5_0 / 2, "block_q5_0 size");

/* 6.0 bpw: value = d * q + m, q in 0..31 */
typedef struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t  qh[4];
    uint8_t  qs[WERK_QK5_1 / 2];
} block_q5_1;
WERK_STATIC_ASSERT(sizeof(block_q5_1) == 4 + 4 + WERK_QK5_1 / 2, "block_q5_1 size");

/* 8.5 bpw: value = d * q, q in -128..127 */
typedef struct block_q8_0 {
    uint16_t d;
    int8_t   qs[WERK_QK8_0];
} block_q8_0;
WERK_STATIC_ASSERT(sizeof(block_q8_0) == 2 + WERK_QK8_0, "block_q8_0 size");

/* 9.0 bpw: value = d * q; s = d * sum(q) for dot products */
typedef struct block_q8_1 {
    uint16_t d;
    uint16_t s;
    int8_t   qs[WERK_QK8_1];
} block_q8_1;
WERK_STATIC_ASSERT(sizeof(block_q8_1) == 4 + WERK_QK8_1, "block_q8_1 size");

// ---- k-quants: 256-element super-blocks -------------------------------------------

/* 2.625 bpw: value = d * (sc & 15) * q - dmin * (sc >> 4), q in 0..3 */
typedef struct block_q2_K {
    uint8_t  scales[WERK_QK_K / 16];
    uint8_t  qs[WERK_QK_K / 4];
    uint16_t d;
    uint16_t dmin;
} block_q2_K;
WERK_STATIC_ASSERT(sizeof(block_q2_K) == 2 * 2 + WERK_QK_K / 16 + WERK_QK_K / 4, "block_q2_K size");

/* 3.4375 bpw: value = d * (sc - 32) * q, q in -4..3 */
typedef struct block_q3_K {
    uint8_t  hmask[WERK_QK_K / 8];
    uint8_t  qs[WERK_QK_K / 4];
    uint8_t  scales[12];
    uint16_t d;
} block_q3_K;
WERK_STATIC_ASSERT(sizeof(block_q3_K) == 2 + WERK_QK_K / 4 + WERK_QK_K / 8 + 12, "block_q3_K size");

/* 4.5 bpw: value = d * sc * q - dmin * m, q in 0..15 */
typedef struct block_q4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t  scales[WERK_K_SCALE_SIZE];
    uint8_t  qs[WERK_QK_K / 2];
} block_q4_K;
WERK_STATIC_ASSERT(sizeof(block_q4_K) == 2 * 2 + WERK_K_SCALE_SIZE + WERK_QK_K / 2, "block_q4_K size");

/* 5.5 bpw: value = d * sc * q - dmin * m, q in 0..31 */
typedef struct block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t  scales[WERK_K_SCALE_SIZE];
    uint8_t  qh[WERK_QK_K / 8];
    uint8_t  qs[WERK_QK_K / 2];
} block_q5_K;
WERK_STATIC_ASSERT(sizeof(block_q5_K) == 2 * 2 + WERK_K_SCALE_SIZE + WERK_QK_K / 2 + WERK_QK_K / 8,
                   "block_q5_K size");

/* 6.5625 bpw: value = d * sc * (q - 32), q in 0..63 */
typedef struct block_q6_K {
    uint8_t  ql[WERK_QK_K / 2];
    uint8_t  qh[WERK_QK_K / 4];
    int8_t   scales[WERK_QK_K / 16];
    uint16_t d;
} block_q6_K;
WERK_STATIC_ASSERT(sizeof(block_q6_K) == 2 + WERK_QK_K / 16 + 3 * WERK_QK_K / 4, "block_q6_K size");

/* 9.125 bpw (intermediate type for dot products): value = d * q */
typedef struct block_q8_K {
    float   d;
    int8_t  qs[WERK_QK_K];
    int16_t bsums[WERK_QK_K / 16];
} block_q8_K;
WERK_STATIC_ASSERT(sizeof(block_q8_K) == 4 + WERK_QK_K + WERK_QK_K / 16 * 2, "block_q8_K size");

#endif
