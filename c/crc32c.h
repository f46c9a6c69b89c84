/* SPDX-License-Identifier: MIT */
/* crc32c (Castagnoli, reflected polynomial 0x82F63B78), as docs/lu-stream.md §4.15 uses it. */
#ifndef XENLU_C_CRC32C_H
#define XENLU_C_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Continue a crc32c over n bytes; start with crc = 0. */
uint32_t xenlu_crc32c(uint32_t crc, const uint8_t *data, size_t n);

#endif
