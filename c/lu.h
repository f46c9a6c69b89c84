/* SPDX-License-Identifier: MIT */
/*
 * The xenlu C reader/writer: what the epoch-independent part (lu_main.c) and
 * the per-epoch part (lu_epoch.c, compiled once per include/xen_lu_<X.Y>.h)
 * share. Nothing here describes a layout: layouts come from the headers.
 */
#ifndef XENLU_C_LU_H
#define XENLU_C_LU_H
#include <stddef.h>
#include <stdint.h>

/* A structural error: the xenlu error class, where, and what. */
struct lu_err {
    const char *cls;     /* "FramingError", "RecordError", ... */
    uint64_t offset;     /* absolute byte offset */
    char field[96];      /* "" when none */
    char msg[160];
};

/* What the reader needs to know about one record body once it is checked. */
struct lu_info {
    uint64_t entries;     /* count-prefixed records: entry count */
    uint32_t domid;       /* LU_DOMAIN, LU_SECTION_END */
    uint32_t domain_type; /* LU_DOMAIN */
    uint32_t nr_domains;  /* LU_HOST_INFO */
    uint32_t vcpu_id;     /* X86_PV_VCPU_* */
    uint32_t crc32c;      /* LU_SECTION_END */
    uint64_t section_bytes;
};

struct lu_field {
    const char *name;
    uint32_t offset;
    uint32_t size;
};

struct lu_layout {
    const char *name; /* struct name without the xen_lu_ prefix */
    uint32_t size;
    const struct lu_field *fields;
    size_t nfields;
};

enum lu_check { LU_OK = 0, LU_BAD = 1, LU_UNKNOWN = 2 };

struct lu_epoch {
    unsigned major, minor, last_minor;
    const struct lu_layout *layouts;
    size_t nlayouts;
    /* Check one record body (absolute body offset `off`, header at off - 8). */
    enum lu_check (*check)(uint32_t type, const uint8_t *body, uint32_t len, uint64_t off,
                           struct lu_info *info, struct lu_err *err);
    /* The name of a known record type, or NULL. */
    const char *(*type_name)(uint32_t type);
    /* Nonzero for count-prefixed LU records (entry counts in the summary). */
    int (*is_bulk)(uint32_t type);
    /* Nonzero for every libxc record type (allowed in a domain section or not). */
    int (*is_libxc)(uint32_t type);
};

int lu_fail(struct lu_err *err, const char *cls, uint64_t offset, const char *field,
            const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif
