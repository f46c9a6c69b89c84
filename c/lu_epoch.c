/* SPDX-License-Identifier: MIT */
/*
 * The per-epoch part of the xenlu C reader/writer: record body checks and the
 * layout tables of one epoch, written against the generated header only.
 *
 * Compiled once per epoch:
 *   cc -Iinclude -DXEN_LU_HEADER='"xen_lu_4.21.h"' -DLU_EPOCH_NAME=lu_epoch_4_21 -c lu_epoch.c
 *
 * Every per-field rule (reserved zero, valid bits, allowed values, bounds)
 * comes from the header's <S>_RULES X-macro; every layout from its struct.
 * What is written here by hand is what docs/lu-stream.md says about a whole
 * body: its length, count prefixes, and the rules spanning several fields.
 */
#include <stdio.h>
#include <string.h>

#include XEN_LU_HEADER
#include "lu.h"

/* --- per-struct rule checks, from the header's X-macros ---------------------- */

static enum lu_check rule_fail(struct lu_err *err, uint64_t off, const char *pfx,
                               const char *field, const char *cond)
{
    char name[96];

    snprintf(name, sizeof(name), "%s%s", pfx, field);
    lu_fail(err, "RecordError", off, name, "rule broken: %s", cond);
    return LU_BAD;
}

#define RULE(f, cond)                                                                    \
    if (!(cond))                                                                         \
        return rule_fail(err, off + (uint64_t)((const char *)&p->f - (const char *)p), \
                         pfx, #f, #cond);

#define DEFINE_CHECK(S, UP)                                                              \
    static inline enum lu_check check_##S(const uint8_t *b, uint64_t off, const char *pfx, \
                                   struct lu_err *err)                                   \
    {                                                                                    \
        struct S v;                                                                      \
        const struct S *p = &v;                                                          \
        memcpy(&v, b, sizeof(v));                                                        \
        (void)p;                                                                         \
        (void)off;                                                                       \
        (void)pfx;                                                                       \
        (void)err;                                                                       \
        UP##_RULES(RULE, p)                                                              \
        return LU_OK;                                                                    \
    }
XEN_LU_LAYOUTS(DEFINE_CHECK)

/* --- layout tables (the writer fills structs by field name) ------------------ */

#define FIELD(S, f) {#f, (uint32_t)offsetof(struct S, f), (uint32_t)sizeof(((struct S *)0)->f)},
#define DEFINE_FIELDS(S, UP) static const struct lu_field fields_##S[] = {UP##_FIELDS(FIELD)};
XEN_LU_LAYOUTS(DEFINE_FIELDS)

#define LAYOUT(S, UP) \
    {&#S[7], UP##_SIZE, fields_##S, sizeof(fields_##S) / sizeof(fields_##S[0])},
static const struct lu_layout layouts[] = {XEN_LU_LAYOUTS(LAYOUT)};

/* --- record bodies ------------------------------------------------------------- */

typedef enum lu_check (*check_fn)(const uint8_t *, uint64_t, const char *, struct lu_err *);

static enum lu_check bad_length(struct lu_err *err, uint64_t off, uint32_t len,
                                const char *expected)
{
    /* The length field of the record header, 4 bytes before the body. */
    lu_fail(err, "RecordError", off - 4, "length", "body length wrong: expected %s, got %u",
            expected, len);
    return LU_BAD;
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static enum lu_check fixed(const uint8_t *b, uint32_t len, uint64_t off, uint32_t size,
                           check_fn fn, struct lu_err *err)
{
    char want[24];

    if (len != size) {
        snprintf(want, sizeof(want), "%u", size);
        return bad_length(err, off, len, want);
    }
    return fn(b, off, "", err);
}

/* §4 count-prefixed: {u32 count; u32 rsvd}, then exactly count entries. */
static enum lu_check counted(const uint8_t *b, uint32_t len, uint64_t off, uint32_t esize,
                             check_fn fn, uint64_t *count_out, struct lu_err *err)
{
    struct xen_lu_count_header ch;
    char want[48], pfx[40];
    uint64_t i;

    if (len < XEN_LU_COUNT_HEADER_SIZE)
        return bad_length(err, off, len, ">= 8 (count header)");
    if (check_xen_lu_count_header(b, off, "", err))
        return LU_BAD;
    memcpy(&ch, b, sizeof(ch));
    if ((uint64_t)len != XEN_LU_COUNT_HEADER_SIZE + (uint64_t)ch.count * esize) {
        snprintf(want, sizeof(want), "8 + %u x %u", ch.count, esize);
        return bad_length(err, off, len, want);
    }
    for (i = 0; i < ch.count; i++) {
        snprintf(pfx, sizeof(pfx), "entries[%llu].", (unsigned long long)i);
        if (fn(b + 8 + i * esize, off + 8 + i * esize, pfx, err))
            return LU_BAD;
    }
    *count_out = ch.count;
    return LU_OK;
}

static enum lu_check entry_fail(struct lu_err *err, uint64_t off, uint64_t i,
                                uint32_t esize, uint32_t foff, const char *field,
                                const char *msg)
{
    char name[96];

    snprintf(name, sizeof(name), "entries[%llu].%s", (unsigned long long)i, field);
    lu_fail(err, "RecordError", off + 8 + i * esize + foff, name, "%s", msg);
    return LU_BAD;
}

/* §4.7: frames by type, and no wrap of the gfn range. */
static enum lu_check p2m_rules(const uint8_t *b, uint64_t off, uint64_t n, struct lu_err *err)
{
    struct xen_lu_p2m_entry e;
    uint64_t i;

    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if (XEN_LU_P2M_TYPE_HAS_NO_FRAME(e.p2m_type) && e.mfn != XEN_LU_INVALID_MFN)
            return entry_fail(err, off, i, sizeof(e), XEN_LU_P2M_ENTRY_MFN_OFFSET, "mfn",
                              "p2m type has no frame");
    }
    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if (XEN_LU_P2M_TYPE_NEEDS_FRAME(e.p2m_type) && e.mfn == XEN_LU_INVALID_MFN)
            return entry_fail(err, off, i, sizeof(e), XEN_LU_P2M_ENTRY_MFN_OFFSET, "mfn",
                              "p2m type needs a frame");
    }
    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if (e.gfn + (uint64_t)(e.nr_pages - 1u) < e.gfn)
            return entry_fail(err, off, i, sizeof(e), XEN_LU_P2M_ENTRY_NR_PAGES_OFFSET,
                              "nr_pages", "gfn range wraps");
    }
    return LU_OK;
}

/* §4.9: a pinned page must be an L1-L4 page table. */
static enum lu_check page_type_rules(const uint8_t *b, uint64_t off, uint64_t n,
                                     struct lu_err *err)
{
    struct xen_lu_page_types_entry e;
    uint64_t i;

    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if ((e.flags & XEN_LU_PAGE_TYPES_ENTRY_FLAGS_PINNED) &&
            (e.type < XEN_LU_PAGE_TYPES_ENTRY_TYPE_L1 || e.type > XEN_LU_PAGE_TYPES_ENTRY_TYPE_L4))
            return entry_fail(err, off, i, sizeof(e), XEN_LU_PAGE_TYPES_ENTRY_TYPE_OFFSET, "type",
                              "pinned page is not a page table");
    }
    return LU_OK;
}

/* §4.11: at least one of device_map, host_map. */
static enum lu_check grant_map_rules(const uint8_t *b, uint64_t off, uint64_t n,
                                     struct lu_err *err)
{
    struct xen_lu_grant_maps_entry e;
    uint64_t i;

    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if (!(e.flags & (XEN_LU_GRANT_MAPS_ENTRY_FLAGS_DEVICE_MAP |
                         XEN_LU_GRANT_MAPS_ENTRY_FLAGS_HOST_MAP)))
            return entry_fail(err, off, i, sizeof(e), XEN_LU_GRANT_MAPS_ENTRY_FLAGS_OFFSET,
                              "flags", "neither device_map nor host_map");
    }
    return LU_OK;
}

/* §4.13: ports ascend; remote_domid and detail only where the state uses them. */
static enum lu_check evtchn_rules(const uint8_t *b, uint64_t off, uint64_t n,
                                  struct lu_err *err)
{
    struct xen_lu_evtchns_entry e, prev;
    uint64_t i;

    for (i = 1; i < n; i++) {
        memcpy(&prev, b + 8 + (i - 1) * sizeof(e), sizeof(e));
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if (e.port <= prev.port)
            return entry_fail(err, off, i, sizeof(e), XEN_LU_EVTCHNS_ENTRY_PORT_OFFSET, "port",
                              "ports do not ascend");
    }
    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if (e.state != XEN_LU_EVTCHNS_ENTRY_STATE_UNBOUND &&
            e.state != XEN_LU_EVTCHNS_ENTRY_STATE_INTERDOMAIN && e.remote_domid != 0)
            return entry_fail(err, off, i, sizeof(e), XEN_LU_EVTCHNS_ENTRY_REMOTE_DOMID_OFFSET,
                              "remote_domid", "remote_domid set for this state");
    }
    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if ((e.state == XEN_LU_EVTCHNS_ENTRY_STATE_RESERVED ||
             e.state == XEN_LU_EVTCHNS_ENTRY_STATE_UNBOUND ||
             e.state == XEN_LU_EVTCHNS_ENTRY_STATE_IPI) &&
            e.detail != 0)
            return entry_fail(err, off, i, sizeof(e), XEN_LU_EVTCHNS_ENTRY_DETAIL_OFFSET,
                              "detail", "detail set for this state");
    }
    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if (e.state == XEN_LU_EVTCHNS_ENTRY_STATE_VIRQ && e.detail > 23)
            return entry_fail(err, off, i, sizeof(e), XEN_LU_EVTCHNS_ENTRY_DETAIL_OFFSET,
                              "detail", "virq out of range");
    }
#ifdef XEN_LU_EVTCHNS_ENTRY_FIFO_LASTQ_OFFSET
    for (i = 0; i < n; i++) {
        memcpy(&e, b + 8 + i * sizeof(e), sizeof(e));
        if (((e.fifo_lastq & XEN_LU_EVTCHNS_ENTRY_FIFO_LASTQ_LAST_PRIORITY_MASK) >> 16) > 15)
            return entry_fail(err, off, i, sizeof(e), XEN_LU_EVTCHNS_ENTRY_FIFO_LASTQ_OFFSET,
                              "fifo_lastq", "last priority above 15");
    }
#endif
    return LU_OK;
}

/* §4.2: the LU bootmem is 2 MiB aligned, a non-zero multiple of 2 MiB, below 4 GiB. */
static enum lu_check host_rules(const uint8_t *b, uint64_t off, struct lu_info *info,
                                struct lu_err *err)
{
    struct xen_lu_host_info h;
    const uint64_t mib2 = 2u << 20;

    memcpy(&h, b, sizeof(h));
    if (h.lu_bootmem_start % mib2)
        return lu_fail(err, "RecordError", off + XEN_LU_HOST_INFO_LU_BOOTMEM_START_OFFSET,
                       "lu_bootmem_start", "LU bootmem not 2 MiB aligned"),
               LU_BAD;
    if (h.lu_bootmem_size == 0 || h.lu_bootmem_size % mib2)
        return lu_fail(err, "RecordError", off + XEN_LU_HOST_INFO_LU_BOOTMEM_SIZE_OFFSET,
                       "lu_bootmem_size", "LU bootmem size not a non-zero multiple of 2 MiB"),
               LU_BAD;
    if (h.lu_bootmem_start + h.lu_bootmem_size > (1ull << 32) ||
        h.lu_bootmem_start + h.lu_bootmem_size < h.lu_bootmem_start)
        return lu_fail(err, "RecordError", off + XEN_LU_HOST_INFO_LU_BOOTMEM_SIZE_OFFSET,
                       "lu_bootmem_size", "LU bootmem ends above 4 GiB"),
               LU_BAD;
    info->nr_domains = h.nr_domains;
    return LU_OK;
}

/* §4.6: cdf_flags.hvm agrees with domain_type; grant_opts version; nr_altp2m. */
static enum lu_check domain_rules(const uint8_t *b, uint64_t off, struct lu_info *info,
                                  struct lu_err *err)
{
    struct xen_lu_domain d;

    memcpy(&d, b, sizeof(d));
    if (!!(d.cdf_flags & XEN_LU_DOMAIN_CDF_FLAGS_HVM) !=
        (d.domain_type == XEN_LU_DOMAIN_DOMAIN_TYPE_X86_HVM))
        return lu_fail(err, "RecordError", off + XEN_LU_DOMAIN_CDF_FLAGS_OFFSET, "cdf_flags",
                       "cdf_flags.hvm disagrees with domain_type"),
               LU_BAD;
#ifdef XEN_LU_DOMAIN_GRANT_OPTS_OFFSET
    if ((d.grant_opts & XEN_LU_DOMAIN_GRANT_OPTS_MAX_VERSION_MASK) != 1 &&
        (d.grant_opts & XEN_LU_DOMAIN_GRANT_OPTS_MAX_VERSION_MASK) != 2)
        return lu_fail(err, "RecordError", off + XEN_LU_DOMAIN_GRANT_OPTS_OFFSET, "grant_opts",
                       "grant_opts max version not 1 or 2"),
               LU_BAD;
#endif
#ifdef XEN_LU_DOMAIN_NR_ALTP2M_OFFSET
    if (!!(d.altp2m_opts & XEN_LU_DOMAIN_ALTP2M_OPTS_MODE_MASK) != (d.nr_altp2m > 0))
        return lu_fail(err, "RecordError", off + XEN_LU_DOMAIN_NR_ALTP2M_OFFSET, "nr_altp2m",
                       "nr_altp2m must be > 0 exactly when the altp2m mode is not off"),
               LU_BAD;
#endif
    info->domid = d.domid;
    info->domain_type = d.domain_type;
    return LU_OK;
}

/* §4.10 */
static enum lu_check grant_table(const uint8_t *b, uint32_t len, uint64_t off,
                                 struct lu_info *info, struct lu_err *err)
{
    struct xen_lu_grant_table_header h;
    uint64_t want_status, n;
    char want[48];

    if (len < XEN_LU_GRANT_TABLE_HEADER_SIZE)
        return bad_length(err, off, len, ">= 16");
    if (check_xen_lu_grant_table_header(b, off, "", err))
        return LU_BAD;
    memcpy(&h, b, sizeof(h));
    want_status = h.version == XEN_LU_GRANT_TABLE_HEADER_VERSION_V1
                      ? 0
                      : ((uint64_t)h.nr_grant_frames + 7) / 8;
    if (h.nr_status_frames != want_status)
        return lu_fail(err, "RecordError", off + XEN_LU_GRANT_TABLE_HEADER_NR_STATUS_FRAMES_OFFSET,
                       "nr_status_frames", "nr_status_frames wrong for the table version"),
               LU_BAD;
    n = XEN_LU_GRANT_TABLE_HEADER_SIZE + 8 * ((uint64_t)h.nr_grant_frames + h.nr_status_frames);
    if (len != n) {
        snprintf(want, sizeof(want), "%llu", (unsigned long long)n);
        return bad_length(err, off, len, want);
    }
    info->entries = (uint64_t)h.nr_grant_frames + h.nr_status_frames;
    return LU_OK;
}

/* §4.12 */
static enum lu_check evtchn_abi(const uint8_t *b, uint32_t len, uint64_t off,
                                struct lu_err *err)
{
    struct xen_lu_evtchn_abi_header h;
    struct xen_lu_evtchn_abi_control_block cb;
    struct xen_lu_evtchn_abi_pages_header ph;
    uint64_t pages_at, i, n;
    char want[48], pfx[48];

    if (len < XEN_LU_EVTCHN_ABI_HEADER_SIZE)
        return bad_length(err, off, len, ">= 16");
    if (check_xen_lu_evtchn_abi_header(b, off, "", err))
        return LU_BAD;
    memcpy(&h, b, sizeof(h));
    if (h.abi == XEN_LU_EVTCHN_ABI_HEADER_ABI_TWO_LEVEL && h.nr_control_blocks)
        return lu_fail(err, "RecordError", off + XEN_LU_EVTCHN_ABI_HEADER_NR_CONTROL_BLOCKS_OFFSET,
                       "nr_control_blocks", "two-level ABI with control blocks"),
               LU_BAD;
    pages_at = XEN_LU_EVTCHN_ABI_HEADER_SIZE +
               (uint64_t)h.nr_control_blocks * XEN_LU_EVTCHN_ABI_CONTROL_BLOCK_SIZE;
    if (len < pages_at + XEN_LU_EVTCHN_ABI_PAGES_HEADER_SIZE) {
        snprintf(want, sizeof(want), ">= %llu",
                 (unsigned long long)(pages_at + XEN_LU_EVTCHN_ABI_PAGES_HEADER_SIZE));
        return bad_length(err, off, len, want);
    }
    for (i = 0; i < h.nr_control_blocks; i++) {
        uint64_t at = XEN_LU_EVTCHN_ABI_HEADER_SIZE + i * XEN_LU_EVTCHN_ABI_CONTROL_BLOCK_SIZE;
        snprintf(pfx, sizeof(pfx), "control_blocks[%llu].", (unsigned long long)i);
        if (check_xen_lu_evtchn_abi_control_block(b + at, off + at, pfx, err))
            return LU_BAD;
    }
    for (i = 0; i < h.nr_control_blocks; i++) {
        uint64_t at = XEN_LU_EVTCHN_ABI_HEADER_SIZE + i * XEN_LU_EVTCHN_ABI_CONTROL_BLOCK_SIZE;
        memcpy(&cb, b + at, sizeof(cb));
        if (cb.offset & 7) {
            snprintf(pfx, sizeof(pfx), "control_blocks[%llu].offset", (unsigned long long)i);
            return lu_fail(err, "RecordError",
                           off + at + XEN_LU_EVTCHN_ABI_CONTROL_BLOCK_OFFSET_OFFSET, pfx,
                           "control block offset not 8-aligned"),
                   LU_BAD;
        }
    }
    if (check_xen_lu_evtchn_abi_pages_header(b + pages_at, off + pages_at, "", err))
        return LU_BAD;
    memcpy(&ph, b + pages_at, sizeof(ph));
    if (h.abi == XEN_LU_EVTCHN_ABI_HEADER_ABI_TWO_LEVEL && ph.nr_event_array_pages)
        return lu_fail(err, "RecordError", off + pages_at, "nr_event_array_pages",
                       "two-level ABI with event-array pages"),
               LU_BAD;
    n = pages_at + XEN_LU_EVTCHN_ABI_PAGES_HEADER_SIZE + 8 * (uint64_t)ph.nr_event_array_pages;
    if (len != n) {
        snprintf(want, sizeof(want), "%llu", (unsigned long long)n);
        return bad_length(err, off, len, want);
    }
    return LU_OK;
}

/* §4.14 */
static enum lu_check ioreq_servers(const uint8_t *b, uint32_t len, uint64_t off,
                                   struct lu_info *info, struct lu_err *err)
{
    struct xen_lu_count_header ch;
    struct xen_lu_ioreq_servers_server s;
    struct xen_lu_ioreq_servers_range r;
    uint64_t pos = XEN_LU_COUNT_HEADER_SIZE, i, j, rpos;
    char pfx[64];

    if (len < XEN_LU_COUNT_HEADER_SIZE)
        return bad_length(err, off, len, ">= 8 (count header)");
    if (check_xen_lu_count_header(b, off, "", err))
        return LU_BAD;
    memcpy(&ch, b, sizeof(ch));
    for (i = 0; i < ch.count; i++) {
        if (pos + XEN_LU_IOREQ_SERVERS_SERVER_SIZE > len)
            return bad_length(err, off, len, "room for every server");
        snprintf(pfx, sizeof(pfx), "servers[%llu].", (unsigned long long)i);
        if (check_xen_lu_ioreq_servers_server(b + pos, off + pos, pfx, err))
            return LU_BAD;
        memcpy(&s, b + pos, sizeof(s));
        if ((s.bufioreq == XEN_LU_IOREQ_SERVERS_SERVER_BUFIOREQ_OFF) !=
            (s.bufioreq_gfn == XEN_LU_INVALID_MFN)) {
            snprintf(pfx, sizeof(pfx), "servers[%llu].bufioreq_gfn", (unsigned long long)i);
            return lu_fail(err, "RecordError",
                           off + pos + XEN_LU_IOREQ_SERVERS_SERVER_BUFIOREQ_GFN_OFFSET, pfx,
                           "bufioreq_gfn must be INVALID_MFN exactly when bufioreq is 0"),
                   LU_BAD;
        }
        rpos = pos + XEN_LU_IOREQ_SERVERS_SERVER_SIZE;
        if (rpos + (uint64_t)s.nr_ranges * XEN_LU_IOREQ_SERVERS_RANGE_SIZE > len)
            return bad_length(err, off, len, "room for every range");
        for (j = 0; j < s.nr_ranges; j++) {
            uint64_t at = rpos + j * XEN_LU_IOREQ_SERVERS_RANGE_SIZE;
            snprintf(pfx, sizeof(pfx), "servers[%llu].ranges[%llu].", (unsigned long long)i,
                     (unsigned long long)j);
            if (check_xen_lu_ioreq_servers_range(b + at, off + at, pfx, err))
                return LU_BAD;
        }
        for (j = 0; j < s.nr_ranges; j++) {
            uint64_t at = rpos + j * XEN_LU_IOREQ_SERVERS_RANGE_SIZE;
            memcpy(&r, b + at, sizeof(r));
            if (r.start > r.end) {
                snprintf(pfx, sizeof(pfx), "servers[%llu].ranges[%llu].start",
                         (unsigned long long)i, (unsigned long long)j);
                return lu_fail(err, "RecordError",
                               off + at + XEN_LU_IOREQ_SERVERS_RANGE_START_OFFSET, pfx,
                               "range start above end"),
                       LU_BAD;
            }
        }
        pos = rpos + (uint64_t)s.nr_ranges * XEN_LU_IOREQ_SERVERS_RANGE_SIZE;
    }
    if (pos != len)
        return bad_length(err, off, len, "the end of the last server");
    info->entries = ch.count;
    return LU_OK;
}

/* §4.16, reference §4.2: the HVM context blob. */
static enum lu_check hvm_context(const uint8_t *b, uint32_t len, uint64_t off,
                                 struct lu_info *info, struct lu_err *err)
{
    struct xen_lu_hvm_save_descriptor d;
    uint64_t pos = 0, i = 0, data_at;
    char name[64];

    if (len == 0)
        return bad_length(err, off, len, "> 0 (HEADER and END entries)");
    for (;; i++) {
        if (pos == len)
            return lu_fail(err, "RecordError", off + len, "", "HVM context has no END entry"),
                   LU_BAD;
        if (pos + XEN_LU_HVM_SAVE_DESCRIPTOR_SIZE > len) {
            snprintf(name, sizeof(name), "entries[%llu]", (unsigned long long)i);
            return lu_fail(err, "RecordError", off + pos, name,
                           "HVM context entry descriptor truncated"),
                   LU_BAD;
        }
        memcpy(&d, b + pos, sizeof(d));
        data_at = pos + XEN_LU_HVM_SAVE_DESCRIPTOR_SIZE;
        if (d.length > len - data_at) {
            snprintf(name, sizeof(name), "entries[%llu].length", (unsigned long long)i);
            return lu_fail(err, "RecordError", off + pos + XEN_LU_HVM_SAVE_DESCRIPTOR_LENGTH_OFFSET,
                           name, "HVM context entry runs past the end of the body"),
                   LU_BAD;
        }
        if (i == 0) {
            if (d.typecode != XEN_LU_HVM_HEADER)
                return lu_fail(err, "RecordError", off + pos, "entries[0].typecode",
                               "HVM context does not start with HEADER"),
                       LU_BAD;
            if (d.length != XEN_LU_HVM_SAVE_HEADER_SIZE)
                return lu_fail(err, "RecordError",
                               off + pos + XEN_LU_HVM_SAVE_DESCRIPTOR_LENGTH_OFFSET,
                               "entries[0].length", "HEADER entry length wrong"),
                       LU_BAD;
            if (check_xen_lu_hvm_save_header(b + data_at, off + data_at, "entries[0].", err))
                return LU_BAD;
            if (d.instance)
                return lu_fail(err, "RecordError",
                               off + pos + XEN_LU_HVM_SAVE_DESCRIPTOR_INSTANCE_OFFSET,
                               "entries[0].instance", "HEADER instance not 0"),
                       LU_BAD;
        } else if (d.typecode == XEN_LU_HVM_END) {
            snprintf(name, sizeof(name), "entries[%llu].", (unsigned long long)i);
            if (d.instance)
                return lu_fail(err, "RecordError",
                               off + pos + XEN_LU_HVM_SAVE_DESCRIPTOR_INSTANCE_OFFSET,
                               strcat(name, "instance"), "END entry instance not 0"),
                       LU_BAD;
            if (d.length)
                return lu_fail(err, "RecordError",
                               off + pos + XEN_LU_HVM_SAVE_DESCRIPTOR_LENGTH_OFFSET,
                               strcat(name, "length"), "END entry length not 0"),
                       LU_BAD;
            if (data_at != len)
                return lu_fail(err, "RecordError", off + data_at, "",
                               "bytes after the HVM context END entry"),
                       LU_BAD;
            info->entries = i + 1;
            return LU_OK;
        } else {
            snprintf(name, sizeof(name), "entries[%llu].", (unsigned long long)i);
            if (d.typecode > XEN_LU_HVM_SAVE_CODE_MAX)
                return lu_fail(err, "RecordError", off + pos, strcat(name, "typecode"),
                               "HVM context typecode not allowed in a Live Update stream"),
                       LU_BAD;
            if (!XEN_LU_HVM_TYPECODE_PER_VCPU(d.typecode) &&
                d.instance > XEN_LU_HVM_MAX_INSTANCE(d.typecode))
                return lu_fail(err, "RecordError",
                               off + pos + XEN_LU_HVM_SAVE_DESCRIPTOR_INSTANCE_OFFSET,
                               strcat(name, "instance"),
                               "instance too large for a domain-wide entry"),
                       LU_BAD;
            if ((d.typecode == XEN_LU_HVM_RTC_TYPECODE && d.length != XEN_LU_HVM_RTC_SIZE) ||
                (d.typecode == XEN_LU_HVM_VIRIDIAN_VCPU_TYPECODE &&
                 d.length != XEN_LU_HVM_VIRIDIAN_VCPU_SIZE))
                return lu_fail(err, "RecordError",
                               off + pos + XEN_LU_HVM_SAVE_DESCRIPTOR_LENGTH_OFFSET,
                               strcat(name, "length"), "entry length wrong for this epoch"),
                       LU_BAD;
        }
        pos = data_at + d.length;
    }
}

/* §1.6 of the libxc reference: the PV vCPU records' {u32 vcpu_id; u32 rsvd} header. */
static enum lu_check pv_vcpu(uint32_t type, const uint8_t *b, uint32_t len, uint64_t off,
                             struct lu_info *info, struct lu_err *err)
{
    if (len < XEN_LU_X86_PV_VCPU_HEADER_SIZE)
        return bad_length(err, off, len, ">= 8 (vcpu header)");
    if (len == XEN_LU_X86_PV_VCPU_HEADER_SIZE && type == XEN_LU_REC_X86_PV_VCPU_BASIC)
        return bad_length(err, off, len, "> 8 (vcpu header and vcpu_guest_context)");
    if (check_xen_lu_x86_pv_vcpu_header(b, off, "", err))
        return LU_BAD;
    info->vcpu_id = le32(b);
    return LU_OK;
}

static enum lu_check whole_entries(const uint8_t *b, uint32_t len, uint64_t off, uint32_t esize,
                                   check_fn fn, struct lu_info *info, struct lu_err *err)
{
    char want[48], pfx[40];
    uint64_t i;

    if (len == 0 || len % esize) {
        snprintf(want, sizeof(want), "a non-zero multiple of %u", esize);
        return bad_length(err, off, len, want);
    }
    for (i = 0; i < len / esize; i++) {
        snprintf(pfx, sizeof(pfx), "entries[%llu].", (unsigned long long)i);
        if (fn(b + i * esize, off + i * esize, pfx, err))
            return LU_BAD;
    }
    info->entries = len / esize;
    return LU_OK;
}

static enum lu_check check(uint32_t type, const uint8_t *b, uint32_t len, uint64_t off,
                           struct lu_info *info, struct lu_err *err)
{
    enum lu_check rc;
    uint64_t n = 0;

    memset(info, 0, sizeof(*info));
    switch (type) {
    case XEN_LU_REC_LU_VERSION:
        return fixed(b, len, off, XEN_LU_VERSION_SIZE, check_xen_lu_version, err);
    case XEN_LU_REC_LU_HOST_INFO:
        rc = fixed(b, len, off, XEN_LU_HOST_INFO_SIZE, check_xen_lu_host_info, err);
        return rc ? rc : host_rules(b, off, info, err);
    case XEN_LU_REC_LU_DOMAIN:
        rc = fixed(b, len, off, XEN_LU_DOMAIN_SIZE, check_xen_lu_domain, err);
        return rc ? rc : domain_rules(b, off, info, err);
    case XEN_LU_REC_LU_SECTION_END: {
        struct xen_lu_section_end s;
        rc = fixed(b, len, off, XEN_LU_SECTION_END_SIZE, check_xen_lu_section_end, err);
        if (rc)
            return rc;
        memcpy(&s, b, sizeof(s));
        info->domid = s.domid;
        info->crc32c = s.crc32c;
        info->section_bytes = s.section_bytes;
        return LU_OK;
    }
    case XEN_LU_REC_LU_REUSABLE_REGIONS:
        rc = counted(b, len, off, XEN_LU_REUSABLE_REGIONS_EXTENT_SIZE,
                     check_xen_lu_reusable_regions_extent, &n, err);
        break;
    case XEN_LU_REC_LU_XEN_PAGES:
        rc = counted(b, len, off, XEN_LU_XEN_PAGES_EXTENT_SIZE, check_xen_lu_xen_pages_extent,
                     &n, err);
        break;
    case XEN_LU_REC_LU_P2M:
        rc = counted(b, len, off, XEN_LU_P2M_ENTRY_SIZE, check_xen_lu_p2m_entry, &n, err);
        if (!rc)
            rc = p2m_rules(b, off, n, err);
        break;
    case XEN_LU_REC_LU_PAGE_OWNERSHIP:
        rc = counted(b, len, off, XEN_LU_PAGE_OWNERSHIP_ENTRY_SIZE,
                     check_xen_lu_page_ownership_entry, &n, err);
        break;
    case XEN_LU_REC_LU_PAGE_TYPES:
        rc = counted(b, len, off, XEN_LU_PAGE_TYPES_ENTRY_SIZE, check_xen_lu_page_types_entry,
                     &n, err);
        if (!rc)
            rc = page_type_rules(b, off, n, err);
        break;
    case XEN_LU_REC_LU_GRANT_MAPS:
        rc = counted(b, len, off, XEN_LU_GRANT_MAPS_ENTRY_SIZE, check_xen_lu_grant_maps_entry,
                     &n, err);
        if (!rc)
            rc = grant_map_rules(b, off, n, err);
        break;
    case XEN_LU_REC_LU_EVTCHNS:
        rc = counted(b, len, off, XEN_LU_EVTCHNS_ENTRY_SIZE, check_xen_lu_evtchns_entry, &n,
                     err);
        if (!rc)
            rc = evtchn_rules(b, off, n, err);
        break;
    case XEN_LU_REC_LU_GRANT_TABLE:
        return grant_table(b, len, off, info, err);
    case XEN_LU_REC_LU_EVTCHN_ABI:
        return evtchn_abi(b, len, off, err);
    case XEN_LU_REC_LU_IOREQ_SERVERS:
        return ioreq_servers(b, len, off, info, err);
    case XEN_LU_REC_END:
        if (len)
            return bad_length(err, off, len, "0");
        return LU_OK;
    case XEN_LU_REC_X86_PV_INFO:
        return fixed(b, len, off, XEN_LU_X86_PV_INFO_SIZE, check_xen_lu_x86_pv_info, err);
    case XEN_LU_REC_X86_TSC_INFO:
        return fixed(b, len, off, XEN_LU_X86_TSC_INFO_SIZE, check_xen_lu_x86_tsc_info, err);
    case XEN_LU_REC_X86_PV_VCPU_BASIC:
    case XEN_LU_REC_X86_PV_VCPU_EXTENDED:
    case XEN_LU_REC_X86_PV_VCPU_XSAVE:
    case XEN_LU_REC_X86_PV_VCPU_MSRS:
        return pv_vcpu(type, b, len, off, info, err);
    case XEN_LU_REC_HVM_CONTEXT:
        return hvm_context(b, len, off, info, err);
    case XEN_LU_REC_HVM_PARAMS: {
        struct xen_lu_hvm_params_header h;
        char want[48];
        if (len < XEN_LU_HVM_PARAMS_HEADER_SIZE)
            return bad_length(err, off, len, ">= 8 (count header)");
        if (check_xen_lu_hvm_params_header(b, off, "", err))
            return LU_BAD;
        memcpy(&h, b, sizeof(h));
        if ((uint64_t)len != XEN_LU_HVM_PARAMS_HEADER_SIZE + (uint64_t)h.count * XEN_LU_HVM_PARAM_SIZE) {
            snprintf(want, sizeof(want), "8 + 16 x %u", h.count);
            return bad_length(err, off, len, want);
        }
        info->entries = h.count;
        return LU_OK;
    }
    case XEN_LU_REC_X86_CPUID_POLICY:
        return whole_entries(b, len, off, XEN_LU_CPUID_LEAF_SIZE, check_xen_lu_cpuid_leaf, info,
                             err);
    case XEN_LU_REC_X86_MSR_POLICY:
        return whole_entries(b, len, off, XEN_LU_MSR_ENTRY_SIZE, check_xen_lu_msr_entry, info,
                             err);
    default:
        return LU_UNKNOWN;
    }
    info->entries = n;
    return rc;
}

#define NAME_CASE(name, code) \
    case code:                \
        return #name;

static const char *type_name(uint32_t type)
{
    switch (type) {
        XEN_LU_REC_TYPES(NAME_CASE)
    default:
        return NULL;
    }
}

#define LIBXC_CASE(name, code) case code:

static int is_libxc(uint32_t type)
{
    switch (type) {
        XEN_LU_LIBXC_TYPES(LIBXC_CASE)
        return 1;
    default:
        return 0;
    }
}

#define BULK_CASE(name) case XEN_LU_REC_##name:

static int is_bulk(uint32_t type)
{
    switch (type) {
        XEN_LU_BULK_TYPES(BULK_CASE)
        return 1;
    default:
        return 0;
    }
}

const struct lu_epoch LU_EPOCH_NAME = {
    XEN_LU_EPOCH_MAJOR, XEN_LU_EPOCH_MINOR, XEN_LU_EPOCH_LAST_MINOR,
    layouts, sizeof(layouts) / sizeof(layouts[0]),
    check, type_name, is_bulk, is_libxc,
};
