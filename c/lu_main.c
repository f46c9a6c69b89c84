/* SPDX-License-Identifier: MIT */
/*
 * xenlu-c: a small C reader/writer of the Live Update stream, written against
 * the generated headers include/xen_lu_<X.Y>.h (one per epoch, each in its own
 * translation unit, lu_epoch.c).
 *
 *   xenlu-c read FILE     check the stream (FILE, or - for stdin) structurally
 *                         (docs/lu-stream.md §1, §2, §4, §4.15) and print a
 *                         JSON summary; exit 0 valid, 1 invalid (one line on
 *                         stderr), 74 on an I/O error (as xenlu's EX_IOERR)
 *   xenlu-c write DESC OUT
 *                         write the stream a description names (see
 *                         xenlu.tools.cgen.describe_stream): framing, lengths,
 *                         padding, section checksums are computed here
 *
 * c/build.py passes LU_EPOCHS, the compiled epochs as X(major, minor), and
 * XEN_LU_TYPES_HEADER, the newest header (type codes are the same in every epoch).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "lu.h"

#define X(a, b) extern const struct lu_epoch lu_epoch_##a##_##b;
LU_EPOCHS
#undef X
static const struct lu_epoch *const epochs[] = {
#define X(a, b) &lu_epoch_##a##_##b,
    LU_EPOCHS
#undef X
};
#define NR_EPOCHS (sizeof(epochs) / sizeof(epochs[0]))

/*
 * Record type codes and framing constants are the same in every epoch, so the
 * epoch-independent part takes them from one generated header (the newest,
 * XEN_LU_TYPES_HEADER, passed by c/build.py); layouts stay in lu_epoch.c.
 */
#include XEN_LU_TYPES_HEADER

#define HDR XEN_LU_REC_HDR_SIZE
#define OPTIONAL_BIT XEN_LU_REC_OPTIONAL
#define REC_LENGTH_MAX XEN_LU_REC_LENGTH_MAX
#define DOMID_XEN XEN_LU_DOMID_XEN
#define TYPE_END XEN_LU_REC_END
#define TYPE_LU_VERSION XEN_LU_REC_LU_VERSION
#define TYPE_LU_HOST_INFO XEN_LU_REC_LU_HOST_INFO
#define TYPE_LU_REUSABLE_REGIONS XEN_LU_REC_LU_REUSABLE_REGIONS
#define TYPE_LU_XEN_PAGES XEN_LU_REC_LU_XEN_PAGES
#define TYPE_LU_DOMAIN XEN_LU_REC_LU_DOMAIN
#define TYPE_LU_SECTION_END XEN_LU_REC_LU_SECTION_END

int lu_fail(struct lu_err *err, const char *cls, uint64_t offset, const char *field,
            const char *fmt, ...)
{
    va_list ap;

    err->cls = cls;
    err->offset = offset;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return LU_BAD;
}

static uint32_t le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void put_le(uint8_t *b, uint64_t v, uint32_t size)
{
    uint32_t i;

    for (i = 0; i < size; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

/* --- summary counters ------------------------------------------------------- */

#define MAX_NAMES 64
struct counts {
    uint32_t type[MAX_NAMES];
    uint64_t records[MAX_NAMES];
    uint64_t entries[MAX_NAMES];
    uint64_t bytes[MAX_NAMES];
    int has_entries[MAX_NAMES];
    size_t n;
};

static int count_add(struct counts *c, uint32_t type, uint64_t bytes, int bulk, uint64_t entries)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        if (c->type[i] == type)
            break;
    if (i == c->n) {
        if (c->n == MAX_NAMES)
            return -1;
        c->type[i] = type;
        c->records[i] = c->entries[i] = c->bytes[i] = 0;
        c->has_entries[i] = 0;
        c->n++;
    }
    c->records[i]++;
    c->bytes[i] += bytes;
    if (bulk) {
        c->has_entries[i] = 1;
        c->entries[i] += entries;
    }
    return 0;
}

static uint64_t count_of(const struct counts *c, uint32_t type)
{
    size_t i;

    for (i = 0; i < c->n; i++)
        if (c->type[i] == type)
            return c->records[i];
    return 0;
}

struct domain {
    uint32_t domid, type;
    struct counts c;
};

/* --- the reader ------------------------------------------------------------- */

enum where { W_START, W_GLOBAL, W_GLOBAL_BODY, W_BETWEEN, W_DOMAIN, W_DONE };

struct vcpu_seen {
    uint32_t type, id;
};

struct reader {
    const uint8_t *buf;
    uint64_t n;
    const struct lu_epoch *ep;
    unsigned major, minor;
    enum where where;
    uint64_t section_start;
    uint32_t section_domid;
    int have_domid;
    uint32_t last_domid;
    uint32_t nr_domains, domains_seen;
    uint64_t records;
    struct counts total;
    struct domain *doms;
    size_t ndoms, capdoms;
    struct vcpu_seen *vcpus;
    size_t nvcpus, capvcpus;
    int is_hvm;
};

static const char *name_of(const struct lu_epoch *ep, uint32_t type, char *tmp, size_t n)
{
    const char *s = ep->type_name(type);

    if (s)
        return s;
    snprintf(tmp, n, "%#010x", type);
    return tmp;
}

static int grammar(struct lu_err *err, uint64_t at, const char *field, const char *msg)
{
    return lu_fail(err, "GrammarError", at, field, "%s", msg);
}

/* §2: may `type` stand in a domain section, and how often (PV / HVM columns). */
static int domain_record(struct reader *r, uint32_t type, uint64_t at, struct lu_err *err)
{
    struct domain *d = &r->doms[r->ndoms - 1];
    uint64_t seen = count_of(&d->c, type);
    int pv = !r->is_hvm;

    switch (type) {
    case XEN_LU_REC_LU_P2M:
        if (pv)
            return grammar(err, at, "type", "LU_P2M in a PV domain");
        return 0;
    case XEN_LU_REC_LU_PAGE_OWNERSHIP:
        return 0;
    case XEN_LU_REC_LU_PAGE_TYPES:
        if (!pv)
            return grammar(err, at, "type", "LU_PAGE_TYPES in an HVM domain");
        return 0;
    case XEN_LU_REC_LU_GRANT_TABLE:
    case XEN_LU_REC_LU_EVTCHN_ABI:
        if (seen)
            return grammar(err, at, "type", "record appears twice in a domain section");
        return 0;
    case XEN_LU_REC_LU_GRANT_MAPS: /* after LU_GRANT_TABLE */
        if (!count_of(&d->c, XEN_LU_REC_LU_GRANT_TABLE))
            return grammar(err, at, "type", "LU_GRANT_MAPS before LU_GRANT_TABLE");
        return 0;
    case XEN_LU_REC_LU_EVTCHNS: /* after LU_EVTCHN_ABI */
        if (!count_of(&d->c, XEN_LU_REC_LU_EVTCHN_ABI))
            return grammar(err, at, "type", "LU_EVTCHNS before LU_EVTCHN_ABI");
        return 0;
    case XEN_LU_REC_LU_IOREQ_SERVERS:
        if (pv)
            return grammar(err, at, "type", "LU_IOREQ_SERVERS in a PV domain");
        if (seen)
            return grammar(err, at, "type", "LU_IOREQ_SERVERS twice");
        return 0;
    case XEN_LU_REC_X86_PV_INFO:
        if (!pv)
            return grammar(err, at, "type", "X86_PV_INFO in an HVM domain");
        if (seen)
            return grammar(err, at, "type", "X86_PV_INFO twice");
        return 0;
    case XEN_LU_REC_X86_PV_VCPU_BASIC:
    case XEN_LU_REC_X86_PV_VCPU_EXTENDED:
    case XEN_LU_REC_X86_PV_VCPU_XSAVE:
    case XEN_LU_REC_X86_PV_VCPU_MSRS: /* 0-1 of each per vCPU id */
        if (!pv)
            return grammar(err, at, "type", "PV vCPU record in an HVM domain");
        return 0;
    case XEN_LU_REC_HVM_CONTEXT:
    case XEN_LU_REC_HVM_PARAMS:
        if (pv)
            return grammar(err, at, "type", "HVM record in a PV domain");
        if (seen)
            return grammar(err, at, "type", "HVM record twice");
        return 0;
    case XEN_LU_REC_X86_TSC_INFO:
    case XEN_LU_REC_X86_CPUID_POLICY:
    case XEN_LU_REC_X86_MSR_POLICY: /* 0-1 each */
        if (seen)
            return grammar(err, at, "type", "record twice in a domain section");
        return 0;
    default:
        return grammar(err, at, "type", "record not allowed in a domain section");
    }
}

/* §2: 0-1 of each PV vCPU record per vCPU id (known once the body is checked). */
static int vcpu_once(struct reader *r, uint32_t type, uint64_t at, uint32_t vcpu_id,
                     struct lu_err *err)
{
    size_t i;

    for (i = 0; i < r->nvcpus; i++)
        if (r->vcpus[i].type == type && r->vcpus[i].id == vcpu_id)
            return grammar(err, at, "type", "PV vCPU record twice for one vCPU");
    if (r->nvcpus == r->capvcpus) {
        size_t cap = r->capvcpus ? 2 * r->capvcpus : 64;
        struct vcpu_seen *v = realloc(r->vcpus, cap * sizeof(*v));
        if (!v)
            return lu_fail(err, "FramingError", at, "", "out of memory");
        r->vcpus = v;
        r->capvcpus = cap;
    }
    r->vcpus[r->nvcpus].type = type;
    r->vcpus[r->nvcpus].id = vcpu_id;
    r->nvcpus++;
    return 0;
}

static int select_epoch(struct reader *r, uint64_t body, struct lu_err *err)
{
    size_t i;

    r->major = le32(r->buf + body);
    r->minor = le32(r->buf + body + 4);
    r->ep = NULL;
    for (i = 0; i < NR_EPOCHS; i++)
        if (epochs[i]->major == r->major && epochs[i]->minor <= r->minor &&
            r->minor <= epochs[i]->last_minor)
            r->ep = epochs[i];
    if (r->ep)
        return 0;
    if (r->major != epochs[0]->major)
        return lu_fail(err, "VersionError", body, "xen_major", "Xen %u.%u is not supported",
                       r->major, r->minor);
    return lu_fail(err, "VersionError", body + 4, "xen_minor", "Xen %u.%u is not supported",
                   r->major, r->minor);
}

static int read_stream(struct reader *r, struct lu_err *err)
{
    uint64_t off = 0;

    r->where = W_START;
    for (;;) {
        uint32_t type, len, padded;
        uint64_t body, i;
        struct lu_info info;
        enum lu_check rc = LU_OK;
        int optional;
        struct domain *d;

        if (r->where == W_DONE) {
            if (off != r->n)
                return lu_fail(err, "FramingError", off, "", "bytes after END");
            return 0;
        }
        if (off == r->n && off != 0)
            return lu_fail(err, "FramingError", off, "", "stream ends without END");
        if (r->n - off < HDR)
            return lu_fail(err, "FramingError", off, "", "record header truncated");
        type = le32(r->buf + off);
        len = le32(r->buf + off + 4);
        if (len > REC_LENGTH_MAX)
            return lu_fail(err, "FramingError", off + 4, "length", "body above 128 MiB");
        padded = (len + 7u) & ~7u;
        body = off + HDR;
        if (len > r->n - body)
            return lu_fail(err, "FramingError", off, "length", "body runs past the end");
        if (padded > r->n - body)
            return lu_fail(err, "FramingError", off, "length", "padding runs past the end");
        for (i = len; i < padded; i++)
            if (r->buf[body + i])
                return lu_fail(err, "FramingError", body + i, "padding", "padding not zero");

        /* §2: the stream starts with LU_VERSION, which names the epoch. */
        if (r->where == W_START) {
            if (type != TYPE_LU_VERSION)
                return grammar(err, off, "type", "the stream does not start with LU_VERSION");
            if (epochs[0]->check(type, r->buf + body, len, body, &info, err))
                return 1;
            if (select_epoch(r, body, err))
                return 1;
        } else {
            rc = r->ep->check(type, r->buf + body, len, body, &info, err);
            optional = (type & OPTIONAL_BIT) != 0;
            /* §2: between sections only LU_DOMAIN or END may come, known or not. */
            if (r->where == W_BETWEEN && type != TYPE_LU_DOMAIN && type != TYPE_END)
                return grammar(err, off, "type", "LU_DOMAIN or END expected");
            if (rc == LU_UNKNOWN && r->ep->is_libxc(type))
                return grammar(err, off, "type", "libxc record not allowed in an LU stream");
            if (rc == LU_UNKNOWN && !optional)
                return lu_fail(err, "UnknownRecordError", off, "type",
                               "unknown mandatory record type %#010x", type);
            if (rc == LU_UNKNOWN) {
                /* §1: optional records only inside a section, after its first record. */
                if (r->where == W_BETWEEN)
                    return grammar(err, off, "type", "optional record outside a section");
            } else {
                /* Grammar first, then the body (as xenlu reports). */
                switch (r->where) {
                case W_GLOBAL:
                    if (type != TYPE_LU_HOST_INFO)
                        return grammar(err, off, "type", "LU_HOST_INFO expected");
                    break;
                case W_GLOBAL_BODY:
                    if (type != TYPE_LU_REUSABLE_REGIONS && type != TYPE_LU_XEN_PAGES &&
                        type != TYPE_LU_SECTION_END)
                        return grammar(err, off, "type", "record not allowed in the global section");
                    break;
                case W_BETWEEN:
                    if (type == TYPE_END) {
                        if (r->domains_seen != r->nr_domains)
                            return grammar(err, off, "nr_domains",
                                           "fewer domain sections than nr_domains");
                        break;
                    }
                    if (type != TYPE_LU_DOMAIN)
                        return grammar(err, off, "type", "LU_DOMAIN or END expected");
                    if (r->domains_seen == r->nr_domains)
                        return grammar(err, off, "nr_domains",
                                       "more domain sections than nr_domains");
                    break;
                case W_DOMAIN:
                    if (type == TYPE_LU_SECTION_END) {
                        d = &r->doms[r->ndoms - 1];
                        if (!r->is_hvm && !count_of(&d->c, XEN_LU_REC_X86_PV_INFO))
                            return grammar(err, off, "type", "PV domain without X86_PV_INFO");
                        if (r->is_hvm && !count_of(&d->c, XEN_LU_REC_HVM_CONTEXT))
                            return grammar(err, off, "type", "HVM domain without HVM_CONTEXT");
                    } else if (type == TYPE_LU_DOMAIN || type == TYPE_END ||
                               type == TYPE_LU_VERSION || type == TYPE_LU_HOST_INFO ||
                               type == TYPE_LU_REUSABLE_REGIONS || type == TYPE_LU_XEN_PAGES) {
                        return grammar(err, off, "type", "record not allowed in a domain section");
                    } else if (domain_record(r, type, off, err)) {
                        return 1; /* §2's table before the body, as xenlu reports */
                    }
                    break;
                default:
                    break;
                }
                if (rc)
                    return 1;
                if (r->where == W_DOMAIN &&
                    (type == XEN_LU_REC_X86_PV_VCPU_BASIC ||
                     type == XEN_LU_REC_X86_PV_VCPU_EXTENDED ||
                     type == XEN_LU_REC_X86_PV_VCPU_XSAVE || type == XEN_LU_REC_X86_PV_VCPU_MSRS) &&
                    vcpu_once(r, type, off, info.vcpu_id, err))
                    return 1;
            }
        }

        /* Count the record, then move the section state on. */
        r->records++;
        if (count_add(&r->total, rc == LU_UNKNOWN && r->where != W_START ? OPTIONAL_BIT : type,
                      len, 0, 0))
            return lu_fail(err, "FramingError", off, "type", "too many record types");
        if (r->where == W_START) {
            r->where = W_GLOBAL;
        } else if (r->where == W_GLOBAL) {
            if (type == TYPE_LU_HOST_INFO) {
                r->nr_domains = info.nr_domains;
                r->where = W_GLOBAL_BODY;
            }
        } else if (r->where == W_BETWEEN) {
            if (type == TYPE_END) {
                r->where = W_DONE;
            } else {
                if (r->have_domid && info.domid <= r->last_domid)
                    return grammar(err, body, "domid", "domain sections not in ascending domid order");
                r->have_domid = 1;
                r->last_domid = info.domid;
                if (r->ndoms == r->capdoms) {
                    size_t cap = r->capdoms ? 2 * r->capdoms : 16;
                    struct domain *nd = realloc(r->doms, cap * sizeof(*nd));
                    if (!nd)
                        return lu_fail(err, "FramingError", off, "", "out of memory");
                    r->doms = nd;
                    r->capdoms = cap;
                }
                d = &r->doms[r->ndoms++];
                d->domid = info.domid;
                d->type = info.domain_type;
                d->c.n = 0;
                r->is_hvm = info.domain_type == XEN_LU_DOMAIN_DOMAIN_TYPE_X86_HVM;
                r->nvcpus = 0;
                r->section_start = off;
                r->section_domid = info.domid;
                r->domains_seen++;
                r->where = W_DOMAIN;
                count_add(&d->c, type, len, 0, 0);
            }
        } else if (r->where == W_DOMAIN && type != TYPE_LU_SECTION_END) {
            d = &r->doms[r->ndoms - 1];
            if (count_add(&d->c, type, len, rc != LU_UNKNOWN && r->ep->is_bulk(type),
                          info.entries))
                return lu_fail(err, "FramingError", off, "type", "too many record types");
        }
        if (type == TYPE_LU_SECTION_END && rc != LU_UNKNOWN &&
            (r->where == W_GLOBAL_BODY || r->where == W_DOMAIN)) {
            /* §4.15: domid, crc32c and byte count of the section. */
            uint32_t want = r->where == W_GLOBAL_BODY ? DOMID_XEN : r->section_domid;
            uint64_t nbytes = off - r->section_start;
            uint32_t crc;
            if (info.domid != want)
                return lu_fail(err, "ChecksumError", body, "domid",
                               "LU_SECTION_END domid %#x, section of %#x", info.domid, want);
            crc = xenlu_crc32c(0, r->buf + r->section_start, (size_t)nbytes);
            if (info.section_bytes != nbytes)
                return lu_fail(err, "ChecksumError", body + 8, "section_bytes",
                               "section_bytes %llu, section has %llu",
                               (unsigned long long)info.section_bytes,
                               (unsigned long long)nbytes);
            if (info.crc32c != crc)
                return lu_fail(err, "ChecksumError", body + 4, "crc32c",
                               "crc32c %#010x, section has %#010x", info.crc32c, crc);
            r->where = W_BETWEEN;
            r->section_start = padded + body;
        }
        off = body + padded;
    }
}

static void print_counts(const struct reader *r, const struct counts *c, const char *key,
                         int entries, const char *indent)
{
    size_t i, j, order[MAX_NAMES];
    char a[16], b[16], tmp[16];
    int first = 1;

    /* Names sorted as Python sorts dict keys (byte order). */
    for (i = 0; i < c->n; i++)
        order[i] = i;
    for (i = 1; i < c->n; i++)
        for (j = i; j > 0; j--) {
            const char *x = c->type[order[j - 1]] == OPTIONAL_BIT
                                ? "optional"
                                : name_of(r->ep, c->type[order[j - 1]], a, sizeof(a));
            const char *y = c->type[order[j]] == OPTIONAL_BIT
                                ? "optional"
                                : name_of(r->ep, c->type[order[j]], b, sizeof(b));
            size_t t;
            if (strcmp(x, y) <= 0)
                break;
            t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    printf("%s\"%s\": {", indent, key);
    for (i = 0; i < c->n; i++) {
        size_t k = order[i];
        if (entries && !c->has_entries[k])
            continue;
        printf("%s\"%s\": %llu", first ? "" : ", ",
               c->type[k] == OPTIONAL_BIT ? "optional" : name_of(r->ep, c->type[k], tmp, sizeof(tmp)),
               (unsigned long long)(entries ? c->entries[k] : c->records[k]));
        first = 0;
    }
    printf("}");
}

/* The whole input (a file, a pipe, or "-" for stdin); NULL on an I/O error. */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    uint8_t *buf = NULL, *nb;
    size_t cap = 0, got;

    *n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        got = fread(buf + *n, 1, cap - *n, f);
        *n += got;
        if (got == 0) {
            if (ferror(f))
                break;
            if (f != stdin)
                fclose(f);
            return buf;
        }
    }
    if (f != stdin)
        fclose(f);
    free(buf);
    return NULL;
}

static int cmd_read(const char *path)
{
    struct reader r;
    struct lu_err err;
    uint8_t *buf;
    size_t size, i;
    int rc;

    buf = slurp(path, &size);
    if (!buf) {
        fprintf(stderr, "xenlu-c: cannot read %s: %s\n", path, errno ? strerror(errno) : "error");
        return 74;
    }
    memset(&r, 0, sizeof(r));
    r.buf = buf;
    r.n = (uint64_t)size;
    rc = read_stream(&r, &err);
    if (rc) {
        fprintf(stderr, "xenlu-c: %s at offset %llu%s%s: %s\n", err.cls,
                (unsigned long long)err.offset, err.field[0] ? ": field " : "", err.field,
                err.msg);
    } else {
        printf("{\n  \"format\": \"lu\",\n  \"xen_version\": \"%u.%u\",\n", r.major, r.minor);
        printf("  \"epoch\": \"%u.%u\",\n  \"records\": %llu,\n  \"bytes\": %llu,\n",
               r.ep->major, r.ep->minor, (unsigned long long)r.records,
               (unsigned long long)r.n);
        print_counts(&r, &r.total, "record_counts", 0, "  ");
        printf(",\n  \"domains\": [");
        for (i = 0; i < r.ndoms; i++) {
            printf("%s\n    {\"domid\": %u, \"type\": \"%s\", ", i ? "," : "", r.doms[i].domid,
                   r.doms[i].type == XEN_LU_DOMAIN_DOMAIN_TYPE_X86_HVM ? "hvm" : "pv");
            print_counts(&r, &r.doms[i].c, "record_counts", 0, "");
            printf(", ");
            print_counts(&r, &r.doms[i].c, "entry_counts", 1, "");
            printf("}");
        }
        printf("\n  ]\n}\n");
    }
    free(r.doms);
    free(r.vcpus);
    free(buf);
    return rc ? 1 : 0;
}

/* --- the writer ------------------------------------------------------------- */

struct out {
    uint8_t *b;
    size_t n, cap;
};

static int grow(struct out *o, size_t more)
{
    size_t cap = o->cap ? o->cap : 4096;
    uint8_t *nb;

    while (cap < o->n + more)
        cap *= 2;
    if (cap == o->cap)
        return 0;
    nb = realloc(o->b, cap);
    if (!nb)
        return -1;
    o->b = nb;
    o->cap = cap;
    return 0;
}

static const struct lu_layout *find_layout(const struct lu_epoch *ep, const char *name)
{
    size_t i;

    for (i = 0; i < ep->nlayouts; i++)
        if (!strcmp(ep->layouts[i].name, name))
            return &ep->layouts[i];
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int put_hex(uint8_t *dst, size_t n, const char *hex)
{
    size_t i;

    if (strlen(hex) != 2 * n)
        return -1;
    for (i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        dst[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Close the open record: its length, and zero padding to 8 bytes (§1). */
static int close_record(struct out *o, size_t *hdr_at)
{
    size_t len, pad;

    if (*hdr_at == (size_t)-1)
        return 0;
    len = o->n - *hdr_at - HDR;
    if (len > REC_LENGTH_MAX)
        return -1;
    put_le(o->b + *hdr_at + 4, len, 4);
    pad = (8 - len % 8) % 8;
    if (grow(o, pad))
        return -1;
    memset(o->b + o->n, 0, pad);
    o->n += pad;
    *hdr_at = (size_t)-1;
    return 0;
}

static int open_record(struct out *o, size_t *hdr_at, uint32_t type)
{
    if (close_record(o, hdr_at) || grow(o, HDR))
        return -1;
    *hdr_at = o->n;
    put_le(o->b + o->n, type, 4);
    put_le(o->b + o->n + 4, 0, 4);
    o->n += HDR;
    return 0;
}

#define BY_NAME(n, code)    \
    if (!strcmp(name, #n)) { \
        *type = code;        \
        return 0;            \
    }

static int type_by_name(const char *name, uint32_t *type)
{
    char *end;

    if (!strncmp(name, "0x", 2)) {
        *type = (uint32_t)strtoul(name, &end, 16);
        return *end ? -1 : 0;
    }
    XEN_LU_REC_TYPES(BY_NAME)
    return -1;
}

static int write_fail(unsigned line, const char *msg, const char *what)
{
    fprintf(stderr, "xenlu-c: description line %u: %s%s%s\n", line, msg, what ? ": " : "",
            what ? what : "");
    return 1;
}

static int cmd_write(const char *desc_path, const char *out_path)
{
    FILE *f = fopen(desc_path, "r"), *g;
    char *line = NULL;
    size_t linecap = 0;
    const struct lu_epoch *ep = NULL;
    struct out o = {NULL, 0, 0};
    size_t hdr_at = (size_t)-1, section_start = 0;
    unsigned lineno = 0, major, minor;
    size_t i;
    int rc = 1;

    if (!f) {
        fprintf(stderr, "xenlu-c: cannot read %s: %s\n", desc_path, strerror(errno));
        return 74;
    }
    while (getline(&line, &linecap, f) != -1) {
        char *save = NULL, *word;
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        word = strtok_r(line, " ", &save);
        if (!word || word[0] == '#')
            continue;
        if (!strcmp(word, "xenlu-lu-description")) {
            continue;
        } else if (!strcmp(word, "epoch")) {
            word = strtok_r(NULL, " ", &save);
            if (!word || sscanf(word, "%u.%u", &major, &minor) != 2)
                goto bad_epoch;
            for (i = 0; i < NR_EPOCHS; i++)
                if (epochs[i]->major == major && epochs[i]->minor == minor)
                    ep = epochs[i];
            if (!ep) {
            bad_epoch:
                rc = write_fail(lineno, "unknown epoch", word);
                goto out;
            }
        } else if (!ep) {
            rc = write_fail(lineno, "the description must name its epoch first", NULL);
            goto out;
        } else if (!strcmp(word, "record")) {
            uint32_t type;
            word = strtok_r(NULL, " ", &save);
            if (!word || type_by_name(word, &type)) {
                rc = write_fail(lineno, "unknown record type", word);
                goto out;
            }
            if (open_record(&o, &hdr_at, type))
                goto nomem;
        } else if (!strcmp(word, "struct")) {
            const struct lu_layout *lay;
            size_t at;
            word = strtok_r(NULL, " ", &save);
            lay = word ? find_layout(ep, word) : NULL;
            if (!lay || hdr_at == (size_t)-1) {
                rc = write_fail(lineno, lay ? "struct outside a record" : "unknown struct", word);
                goto out;
            }
            if (grow(&o, lay->size))
                goto nomem;
            at = o.n;
            memset(o.b + at, 0, lay->size); /* omitted fields, reserved ones included, are 0 */
            o.n += lay->size;
            while ((word = strtok_r(NULL, " ", &save))) {
                char *eq = strchr(word, '=');
                const struct lu_field *fld = NULL;
                if (!eq) {
                    rc = write_fail(lineno, "expected field=value", word);
                    goto out;
                }
                *eq = 0;
                for (i = 0; i < lay->nfields; i++)
                    if (!strcmp(lay->fields[i].name, word))
                        fld = &lay->fields[i];
                if (!fld) {
                    rc = write_fail(lineno, "unknown field", word);
                    goto out;
                }
                if (!strncmp(eq + 1, "hex:", 4)) {
                    if (put_hex(o.b + at + fld->offset, fld->size, eq + 5)) {
                        rc = write_fail(lineno, "bad hex bytes for", word);
                        goto out;
                    }
                } else {
                    char *end;
                    uint64_t v = eq[1] == '-' ? (uint64_t)strtoll(eq + 1, &end, 0)
                                              : (uint64_t)strtoull(eq + 1, &end, 0);
                    /* The value must fit the field (two's complement when negative). */
                    if (*end || fld->size > 8 ||
                        (fld->size < 8 && eq[1] != '-' && v >> (8 * fld->size)) ||
                        (fld->size < 8 && eq[1] == '-' &&
                         (int64_t)v < -(int64_t)(1ull << (8 * fld->size - 1)))) {
                        rc = write_fail(lineno, "bad value for", word);
                        goto out;
                    }
                    put_le(o.b + at + fld->offset, v, fld->size);
                }
            }
        } else if (!strcmp(word, "raw")) {
            word = strtok_r(NULL, " ", &save);
            if (hdr_at == (size_t)-1 || !word || strlen(word) % 2) {
                rc = write_fail(lineno, "bad raw bytes", NULL);
                goto out;
            }
            if (grow(&o, strlen(word) / 2))
                goto nomem;
            if (put_hex(o.b + o.n, strlen(word) / 2, word)) {
                rc = write_fail(lineno, "bad raw bytes", NULL);
                goto out;
            }
            o.n += strlen(word) / 2;
        } else if (!strcmp(word, "section-end")) {
            /* §4.15: the writer seals the section: domid, crc32c, section_bytes. */
            const struct lu_layout *lay = find_layout(ep, "section_end");
            uint32_t domid, crc;
            size_t nbytes, at;
            char *end;
            word = strtok_r(NULL, " ", &save);
            domid = word ? (uint32_t)strtoul(word, &end, 0) : 0;
            if (!word || *end || !lay) {
                rc = write_fail(lineno, "section-end needs a domid", NULL);
                goto out;
            }
            if (close_record(&o, &hdr_at))
                goto nomem;
            nbytes = o.n - section_start;
            crc = xenlu_crc32c(0, o.b + section_start, nbytes);
            if (open_record(&o, &hdr_at, TYPE_LU_SECTION_END) || grow(&o, lay->size))
                goto nomem;
            at = o.n;
            memset(o.b + at, 0, lay->size);
            o.n += lay->size;
            for (i = 0; i < lay->nfields; i++) {
                const struct lu_field *fl = &lay->fields[i];
                if (!strcmp(fl->name, "domid"))
                    put_le(o.b + at + fl->offset, domid, fl->size);
                else if (!strcmp(fl->name, "crc32c"))
                    put_le(o.b + at + fl->offset, crc, fl->size);
                else if (!strcmp(fl->name, "section_bytes"))
                    put_le(o.b + at + fl->offset, nbytes, fl->size);
            }
            if (close_record(&o, &hdr_at))
                goto nomem;
            section_start = o.n;
        } else if (!strcmp(word, "end")) {
            if (open_record(&o, &hdr_at, TYPE_END) || close_record(&o, &hdr_at))
                goto nomem;
        } else {
            rc = write_fail(lineno, "unknown directive", word);
            goto out;
        }
    }
    if (close_record(&o, &hdr_at))
        goto nomem;
    g = fopen(out_path, "wb");
    if (!g || fwrite(o.b, 1, o.n, g) != o.n || fclose(g)) {
        fprintf(stderr, "xenlu-c: cannot write %s\n", out_path);
        rc = 3;
        goto out;
    }
    rc = 0;
    goto out;
nomem:
    fprintf(stderr, "xenlu-c: out of memory or record above 128 MiB\n");
    rc = 1;
out:
    fclose(f);
    free(line);
    free(o.b);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "read"))
        return cmd_read(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "write"))
        return cmd_write(argv[2], argv[3]);
    fprintf(stderr, "usage: xenlu-c read FILE | xenlu-c write DESCRIPTION OUT\n");
    return 2;
}
