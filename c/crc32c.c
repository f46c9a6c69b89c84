/* SPDX-License-Identifier: MIT */
/*
 * crc32c (Castagnoli): reflected polynomial 0x82F63B78, initial value and
 * final xor 0xFFFFFFFF, the same value the Python `crc32c` package returns.
 * Slicing-by-one table, built on first use from the polynomial.
 */
#include "crc32c.h"

#define CASTAGNOLI_REFLECTED 0x82F63B78u

static uint32_t table[256];
static int table_ready;

static void build_table(void)
{
    uint32_t i, c;
    int k;

    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ CASTAGNOLI_REFLECTED : c >> 1;
        table[i] = c;
    }
    table_ready = 1;
}

uint32_t xenlu_crc32c(uint32_t crc, const uint8_t *data, size_t n)
{
    size_t i;

    if (!table_ready)
        build_table();
    crc = ~crc;
    for (i = 0; i < n; i++)
        crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}
