/* Exact compressed lengths of zlib's levels 1-3 (deflate_fast) without emitting a bit.
 *
 * For a source x and targets t_1..t_n this returns len(zlib.compress(x + t_j, level, -15)) for
 * every j, and len(zlib.compress(x, level, -15)), as zlib 1.2.13 would produce them (raw deflate,
 * windowBits 15, memLevel 8, default strategy). Written for lmsieve from zlib's documented
 * behaviour (deflate.c / trees.c read, not copied): the match finder (3-byte rolling hash of 15
 * bits, hash chains cut at 4/8/32 candidates, "nice" length 8/16/32 clamped to the lookahead,
 * strings inside matches longer than the insert limit not hashed, no match with window index 0,
 * the 32 KB sliding window of a 64 KB buffer), blocks of 16383 symbols, and the per-block choice of
 * stored / fixed / dynamic Huffman code with the trees zlib builds (heap with depth tie-break,
 * bit-length overflow fix, run-length coded code lengths, bit-length tree).
 *
 * Sizes only: a block costs 3 + opt_len (dynamic) or 3 + static_len (fixed) bits, or a stored
 * block (3 bits, pad to a byte, 4 length bytes, the raw bytes); the stream ends padded to a byte.
 *
 * Per source, x is matched once up to the first step whose outcome t could change (within the
 * last 262 bytes: a match reaching x's end, a shorter nice length, a due window slide, or the
 * insert-after-match test); the hash table, the pending block's symbol counts and the bit count
 * are the snapshot every target continues from. Tail insertions go to a per-target side table
 * and an undo log, so nothing of size 32 K is copied per pair. Sources run in parallel threads
 * with the GIL released. dictionary_lengths does the same with a preset dictionary (zlib's zdict) as
 * the shared prefix and each document as the continuation.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WSIZE 32768
#define WMASK (WSIZE - 1)
#define MIN_MATCH 3
#define MAX_MATCH 258
#define MIN_LOOKAHEAD (MAX_MATCH + MIN_MATCH + 1)
#define MAX_DIST (WSIZE - MIN_LOOKAHEAD)
#define HASH_SIZE 32768
#define HASH_MASK (HASH_SIZE - 1)
#define SYM_PER_BLOCK 16383 /* (lit_bufsize - 1) with memLevel 8 */
#define L_CODES 286
#define D_CODES 30
#define BL_CODES 19
#define END_BLOCK 256
#define HEAP_SIZE (2 * L_CODES + 1)
#define PAD 272 /* readable bytes past the end of the data (word compares) */

typedef struct { int max_insert, nice, chain; } Config;
static const Config CONFIGS[4] = {{0, 0, 0}, {4, 8, 4}, {5, 16, 8}, {6, 32, 32}};

static const uint8_t EXTRA_L[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                    2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint8_t EXTRA_D[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint8_t EXTRA_BL[19] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7};
static const uint8_t BL_ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

static uint8_t LCODE[256];  /* match length - 3 -> length code - 257 */
static uint8_t DCODE[512];  /* distance - 1 -> distance code (two-part table) */
static uint8_t SLEN_L[L_CODES], SLEN_D[D_CODES]; /* the fixed code's lengths */
static uint8_t XL[L_CODES], XD[D_CODES];         /* extra bits per symbol */

static void init_tables(void) {
    int base = 0;
    for (int code = 0; code < 28; code++)
        for (int k = 0; k < (1 << EXTRA_L[code]); k++) LCODE[base++] = (uint8_t)code;
    LCODE[255] = 28; /* length 258 has its own code */
    int dist = 0, code;
    for (code = 0; code < 16; code++)
        for (int k = 0; k < (1 << EXTRA_D[code]); k++) DCODE[dist++] = (uint8_t)code;
    dist >>= 7;
    for (; code < D_CODES; code++)
        for (int k = 0; k < (1 << (EXTRA_D[code] - 7)); k++) DCODE[256 + dist++] = (uint8_t)code;
    for (int n = 0; n < L_CODES; n++) {
        SLEN_L[n] = n < 144 ? 8 : n < 256 ? 9 : n < 280 ? 7 : 8;
        XL[n] = n > END_BLOCK ? EXTRA_L[n - END_BLOCK - 1] : 0;
    }
    for (int n = 0; n < D_CODES; n++) SLEN_D[n] = 5, XD[n] = EXTRA_D[n];
}

static inline int dcode(unsigned d) { return d < 256 ? DCODE[d] : DCODE[256 + (d >> 7)]; }

/* ---------------------------------------------------------------- Huffman code lengths */

typedef struct {
    uint32_t freq[HEAP_SIZE];
    uint16_t dad[HEAP_SIZE];
    uint16_t len[HEAP_SIZE];
    uint8_t depth[HEAP_SIZE];
    int heap[HEAP_SIZE];  /* the nodes in extraction order live at heap[heap_max..] */
    uint64_t pq[HEAP_SIZE + 2]; /* the priority queue: (freq << 8 | depth) << 16 | node */
    int heap_len, heap_max;
    int bl_count[16];
} Huff;

/* zlib orders nodes by (freq, depth) with "<=": node a goes first when key(a) <= key(b), that is
 * when a <= (b | 0xffff) for the packed entries. pq[heap_len + 1] is kept at the maximum, so the
 * right child needs no bounds check. */
#define FIRST(a, b) ((a) <= ((b) | 0xffff))

static inline void sift_down(Huff *T, int k) {
    uint64_t *q = T->pq;
    const int n = T->heap_len;
    uint64_t v = q[k];
    int j = k << 1;
    while (j <= n) {
        j += FIRST(q[j + 1], q[j]);
        uint64_t c = q[j];
        if (FIRST(v, c)) break;
        q[k] = c;
        k = j;
        j <<= 1;
    }
    q[k] = v;
}

/* sift_down(T, 1) by Floyd's bottom-up method: the smaller child moves up level by level to the
 * bottom, then the element climbs back to where the top-down walk would have stopped (the keys on
 * that path are sorted, so both stop at the first child it goes before): the same heap, one
 * comparison per level instead of two. */
static inline void sift_root(Huff *T) {
    uint64_t *q = T->pq;
    const int n = T->heap_len;
    uint64_t v = q[1];
    int k = 1, j = 2;
    while (j <= n) {
        j += FIRST(q[j + 1], q[j]);
        q[k] = q[j];
        k = j;
        j <<= 1;
    }
    while (k > 1 && FIRST(v, q[k >> 1])) {
        q[k] = q[k >> 1];
        k >>= 1;
    }
    q[k] = v;
}

static inline uint64_t entry(const Huff *T, int node) {
    return ((((uint64_t)T->freq[node] << 8) | T->depth[node]) << 16) | (uint64_t)node;
}

/* Code lengths zlib gives frequencies f[0..elems) (written to lens), their cost added to *opt
 * (and, with slen, the fixed code's cost to *stat); returns the largest coded symbol. */
static int huffman(Huff *T, const uint32_t *f, int elems, const uint8_t *slen, const uint8_t *xbits,
                   int max_length, uint16_t *lens, int64_t *opt, int64_t *stat) {
    int max_code = -1, n, m, node, h, bits, overflow = 0;
    T->heap_len = 0;
    T->heap_max = HEAP_SIZE;
    for (n = 0; n < elems; n++) {
        T->freq[n] = f[n];
        if (f[n]) {
            T->depth[n] = 0;
            T->pq[++T->heap_len] = entry(T, n);
            max_code = n;
        } else {
            T->len[n] = 0;
        }
    }
    while (T->heap_len < 2) { /* at least two codes, as the format wants */
        node = (max_code < 2 ? ++max_code : 0);
        T->freq[node] = 1;
        T->depth[node] = 0;
        T->pq[++T->heap_len] = entry(T, node);
        (*opt)--;
        if (slen) *stat -= slen[node];
    }
    T->pq[T->heap_len + 1] = ~(uint64_t)0;
    for (n = T->heap_len / 2; n >= 1; n--) sift_down(T, n);
    node = elems;
    do {
        n = (int)(T->pq[1] & 0xffff);
        T->pq[1] = T->pq[T->heap_len];
        T->pq[T->heap_len--] = ~(uint64_t)0;
        sift_root(T);
        m = (int)(T->pq[1] & 0xffff);
        T->heap[--T->heap_max] = n;
        T->heap[--T->heap_max] = m;
        T->freq[node] = T->freq[n] + T->freq[m];
        T->depth[node] = (uint8_t)((T->depth[n] >= T->depth[m] ? T->depth[n] : T->depth[m]) + 1);
        T->dad[n] = T->dad[m] = (uint16_t)node;
        T->pq[1] = entry(T, node);
        node++;
        sift_root(T);
    } while (T->heap_len >= 2);
    T->heap[--T->heap_max] = (int)(T->pq[1] & 0xffff);

    /* lengths from the root down, capped at max_length */
    for (bits = 0; bits < 16; bits++) T->bl_count[bits] = 0;
    T->len[T->heap[T->heap_max]] = 0;
    for (h = T->heap_max + 1; h < HEAP_SIZE; h++) {
        n = T->heap[h];
        bits = T->len[T->dad[n]] + 1;
        if (bits > max_length) bits = max_length, overflow++;
        T->len[n] = (uint16_t)bits;
        if (n > max_code) continue;
        T->bl_count[bits]++;
        int xb = xbits ? xbits[n] : 0;
        *opt += (int64_t)T->freq[n] * (bits + xb);
        if (slen) *stat += (int64_t)T->freq[n] * (slen[n] + xb);
    }
    if (overflow) {
        do {
            bits = max_length - 1;
            while (T->bl_count[bits] == 0) bits--;
            T->bl_count[bits]--;
            T->bl_count[bits + 1] += 2;
            T->bl_count[max_length]--;
            overflow -= 2;
        } while (overflow > 0);
        for (bits = max_length; bits != 0; bits--) {
            n = T->bl_count[bits];
            while (n != 0) {
                m = T->heap[--h];
                if (m > max_code) continue;
                if (T->len[m] != bits) {
                    *opt += ((int64_t)bits - T->len[m]) * T->freq[m];
                    T->len[m] = (uint16_t)bits;
                }
                n--;
            }
        }
    }
    for (n = 0; n <= max_code; n++) lens[n] = T->len[n];
    return max_code;
}

/* Counts of the code-length alphabet for sending lens[0..max_code] run-length coded. */
static void scan_lengths(const uint16_t *lens, int max_code, uint32_t *blf) {
    int prevlen = -1, curlen, nextlen = lens[0], count = 0, max_count = 7, min_count = 4;
    if (nextlen == 0) max_count = 138, min_count = 3;
    for (int n = 0; n <= max_code; n++) {
        curlen = nextlen;
        nextlen = n + 1 <= max_code ? lens[n + 1] : 0xffff;
        if (++count < max_count && curlen == nextlen) continue;
        if (count < min_count) blf[curlen] += count;
        else if (curlen != 0) {
            if (curlen != prevlen) blf[curlen]++;
            blf[16]++;
        } else if (count <= 10) blf[17]++;
        else blf[18]++;
        count = 0;
        prevlen = curlen;
        if (nextlen == 0) max_count = 138, min_count = 3;
        else if (curlen == nextlen) max_count = 6, min_count = 3;
        else max_count = 7, min_count = 4;
    }
}

/* ---------------------------------------------------------------- matcher state */

typedef struct {
    int64_t pos, base, block_start;
    uint64_t bits; /* bits of the finished blocks */
    uint32_t nsym;
    uint32_t lf[L_CODES], df[D_CODES];
} State;

typedef struct {
    int32_t *head;  /* HASH_SIZE: last position per hash (0 = none) */
    int32_t *ring;  /* WSIZE: chain links of the source's positions, by pos & WMASK */
    int32_t *tail;  /* chain links of positions >= tail0 (per target) */
    int32_t *undo;  /* (hash, old head) pairs to restore after a target */
    int64_t tail_cap, undo_n;
    int64_t tail0;
    uint8_t *buf;
    int64_t buf_cap;
    Huff huff;
    Config cfg;
} Ctx;

static inline uint32_t hash3(const uint8_t *p) {
    return (((uint32_t)p[0] << 10) ^ ((uint32_t)p[1] << 5) ^ p[2]) & HASH_MASK;
}

static void flush_block(Ctx *c, State *st, int last) {
    uint16_t llen[L_CODES + 1], dlen[D_CODES + 1], bllen[BL_CODES];
    uint32_t blf[BL_CODES];
    int64_t opt = 0, stat = 0;
    st->lf[END_BLOCK] = 1;
    int lmax = huffman(&c->huff, st->lf, L_CODES, SLEN_L, XL, 15, llen, &opt, &stat);
    int dmax = huffman(&c->huff, st->df, D_CODES, SLEN_D, XD, 15, dlen, &opt, &stat);
    memset(blf, 0, sizeof blf);
    scan_lengths(llen, lmax, blf);
    scan_lengths(dlen, dmax, blf);
    huffman(&c->huff, blf, BL_CODES, NULL, EXTRA_BL, 7, bllen, &opt, NULL);
    int max_blindex;
    for (max_blindex = BL_CODES - 1; max_blindex >= 3; max_blindex--)
        if (c->huff.len[BL_ORDER[max_blindex]] != 0) break;
    opt += 3 * (max_blindex + 1) + 5 + 5 + 4;
    int64_t opt_b = (opt + 3 + 7) >> 3, stat_b = (stat + 3 + 7) >> 3;
    if (stat_b <= opt_b) opt_b = stat_b;
    int64_t stored_len = st->pos - st->block_start;
    if (stored_len + 4 <= opt_b && st->block_start >= st->base) {
        st->bits = ((st->bits + 3 + 7) & ~(uint64_t)7) + 32 + 8 * (uint64_t)stored_len;
    } else if (stat_b == opt_b) {
        st->bits += 3 + (uint64_t)stat;
    } else {
        st->bits += 3 + (uint64_t)opt;
    }
    memset(st->lf, 0, sizeof st->lf);
    memset(st->df, 0, sizeof st->df);
    st->nsym = 0;
    st->block_start = st->pos;
    if (last) st->bits = (st->bits + 7) & ~(uint64_t)7;
}

/* Length of the common prefix of a and b, at most max (both readable for max + 8 bytes). */
static inline int common_len(const uint8_t *a, const uint8_t *b, int from, int max) {
    int n = from;
    while (n < max) {
        uint64_t x, y;
        memcpy(&x, a + n, 8);
        memcpy(&y, b + n, 8);
        uint64_t d = x ^ y;
        if (d) {
            n += __builtin_ctzll(d) >> 3;
            return n < max ? n : max;
        }
        n += 8;
    }
    return max;
}

#define TAIL 1
#define SOURCE 0

/* Runs deflate_fast from st->pos. mode SOURCE: over the source x (end = len(x)), stopping at the
 * first step that could look past x; mode TAIL: to the end of data (end = len(x + t)) and the final
 * block. Tail insertions go to c->tail / c->undo. */
static inline __attribute__((always_inline)) void run(Ctx *c, State *st, int64_t end, const int mode) {
    const uint8_t *buf = c->buf;
    int32_t *head = c->head, *ring = c->ring, *tail = c->tail, *undo = c->undo;
    const int64_t tail0 = c->tail0;
    const int max_insert = c->cfg.max_insert, nice_len = c->cfg.nice, max_chain = c->cfg.chain;
    int64_t s = st->pos, base = st->base;
    int64_t undo_n = c->undo_n;
    for (;;) {
        int64_t look;
        int guess = 0; /* SOURCE within 262 bytes of x's end: keep the step only if t cannot change it */
        if (mode == SOURCE) {
            if (s + MIN_LOOKAHEAD > end) {
                /* With t appended the lookahead is longer: the step is the same if the nice length
                 * does not shrink, no window slide is due, no match reaches x's end, and the
                 * insert-inside-match test (lookahead after the match >= 3) does not flip. */
                look = end - s;
                if (look < nice_len + MIN_MATCH || s - base >= WSIZE + MAX_DIST) break;
                guess = 1;
            } else {
                look = base + 2 * WSIZE - s; /* the data goes on past x */
                if (look < MIN_LOOKAHEAD) {
                    if (s - base >= WSIZE + MAX_DIST) base += WSIZE;
                    look = MIN_LOOKAHEAD; /* only "enough" matters here */
                }
            }
        } else {
            int64_t wend = base + 2 * WSIZE;
            look = (end < wend ? end : wend) - s;
            if (look < MIN_LOOKAHEAD) {
                if (s - base >= WSIZE + MAX_DIST) base += WSIZE;
                wend = base + 2 * WSIZE;
                look = (end < wend ? end : wend) - s;
                if (look == 0) break;
            }
        }
        int64_t hh = 0;
        uint32_t h0 = 0;
        if (look >= MIN_MATCH) {
            h0 = hash3(buf + s);
            hh = head[h0];
        }
        __builtin_prefetch(&head[hash3(buf + s + 1)]); /* a literal's successor (buf is padded) */
        int mlen = 0, at_end = 0;
        int64_t mstart = 0;
        if (hh > base && s - hh <= MAX_DIST) {
            int maxlen = look < MAX_MATCH ? (int)look : MAX_MATCH;
            int nice = nice_len < look ? nice_len : (int)look;
            int best = MIN_MATCH - 1, chain = max_chain;
            int64_t limit = s - MAX_DIST > base ? s - MAX_DIST : base;
            const uint8_t *scan = buf + s;
            int64_t cur = hh;
            do {
                const uint8_t *m = buf + cur;
                if (m[best] == scan[best] && m[best - 1] == scan[best - 1] && m[0] == scan[0] &&
                    m[1] == scan[1]) {
                    int len = common_len(scan, m, MIN_MATCH, maxlen);
                    at_end |= len == look;
                    if (len > best) {
                        mstart = cur;
                        best = len;
                        if (len >= nice) break;
                    }
                }
                if (mode == SOURCE || cur < tail0) cur = ring[cur & WMASK];
                else cur = tail[cur - tail0];
            } while (cur > limit && --chain != 0);
            mlen = best;
        }
        if (guess && (at_end || (mlen >= MIN_MATCH && mlen <= max_insert && look - mlen < MIN_MATCH))) break;
        if (mlen >= MIN_MATCH) __builtin_prefetch(&head[hash3(buf + s + mlen)]);
        if (look >= MIN_MATCH) { /* the string at s joins its hash chain (after the search: same result) */
            if (mode == SOURCE) {
                ring[s & WMASK] = (int32_t)hh;
            } else {
                tail[s - tail0] = (int32_t)hh;
                undo[2 * undo_n] = (int32_t)h0;
                undo[2 * undo_n + 1] = (int32_t)hh;
                undo_n++;
            }
            head[h0] = (int32_t)s;
        }
        if (mlen >= MIN_MATCH) {
            unsigned d = (unsigned)(s - mstart) - 1;
            st->lf[LCODE[mlen - MIN_MATCH] + END_BLOCK + 1]++;
            st->df[dcode(d)]++;
            look -= mlen;
            if (mlen <= max_insert && look >= MIN_MATCH) {
                for (int k = 1; k < mlen; k++) {
                    int64_t p = s + k;
                    uint32_t h = hash3(buf + p);
                    int32_t old = head[h];
                    if (mode == SOURCE) {
                        ring[p & WMASK] = old;
                    } else {
                        tail[p - tail0] = old;
                        undo[2 * undo_n] = (int32_t)h;
                        undo[2 * undo_n + 1] = old;
                        undo_n++;
                    }
                    head[h] = (int32_t)p;
                }
            }
            s += mlen;
        } else {
            st->lf[buf[s]]++;
            s++;
        }
        if (++st->nsym == SYM_PER_BLOCK) {
            st->pos = s;
            st->base = base;
            flush_block(c, st, 0);
        }
    }
    st->pos = s;
    st->base = base;
    c->undo_n = undo_n;
    if (mode == TAIL) flush_block(c, st, 1);
}

static void run_source(Ctx *c, State *st, int64_t end) { run(c, st, end, SOURCE); }
static void run_tail(Ctx *c, State *st, int64_t end) { run(c, st, end, TAIL); }

static int ctx_init(Ctx *c, int level) {
    memset(c, 0, sizeof *c);
    c->cfg = CONFIGS[level];
    c->head = malloc(sizeof(int32_t) * HASH_SIZE);
    c->ring = malloc(sizeof(int32_t) * WSIZE);
    return c->head && c->ring ? 0 : -1;
}

static void ctx_free(Ctx *c) {
    free(c->head);
    free(c->ring);
    free(c->tail);
    free(c->undo);
    free(c->buf);
}

static int ctx_reserve(Ctx *c, int64_t xlen, int64_t tmax) {
    int64_t need = xlen + tmax + PAD;
    if (need > c->buf_cap) {
        free(c->buf);
        c->buf = malloc((size_t)need);
        if (!c->buf) return -1;
        c->buf_cap = need;
    }
    int64_t tcap = tmax + 2 * MIN_LOOKAHEAD;
    if (tcap > c->tail_cap) {
        free(c->tail);
        free(c->undo);
        c->tail = malloc(sizeof(int32_t) * (size_t)tcap);
        c->undo = malloc(2 * sizeof(int32_t) * (size_t)tcap);
        if (!c->tail || !c->undo) return -1;
        c->tail_cap = tcap;
    }
    return 0;
}

/* Raw deflate lengths of x (cx) and of x + t_j for each target (cxt[j]). */
static int lengths_one(Ctx *c, const uint8_t *x, int64_t xlen, const uint8_t *const *ts,
                       const int64_t *tlens, int64_t nt, int64_t tmax, int64_t *cx, int64_t *cxt) {
    if (ctx_reserve(c, xlen, tmax) < 0) return -1;
    memcpy(c->buf, x, (size_t)xlen);
    memset(c->buf + xlen, 0, PAD);
    memset(c->head, 0, sizeof(int32_t) * HASH_SIZE);
    State snap;
    memset(&snap, 0, sizeof snap);
    run_source(c, &snap, xlen);
    c->tail0 = snap.pos;
    for (int64_t j = -1; j < nt; j++) {
        int64_t tlen = j < 0 ? 0 : tlens[j];
        if (tlen) memcpy(c->buf + xlen, ts[j], (size_t)tlen);
        memset(c->buf + xlen + tlen, 0, PAD);
        State st = snap;
        c->undo_n = 0;
        run_tail(c, &st, xlen + tlen);
        for (int64_t u = c->undo_n - 1; u >= 0; u--) c->head[c->undo[2 * u]] = c->undo[2 * u + 1];
        int64_t bytes = (int64_t)(st.bits >> 3);
        if (j < 0) *cx = bytes;
        else cxt[j] = bytes;
    }
    return 0;
}

/* Preset dictionary (zlib's deflateSetDictionary on a fresh raw stream): every position of the
 * dictionary d but its last two is hashed, no symbol is emitted, the block starts after it; its
 * last min(len, 2) positions are hashed when the data arrives (as many as the data allows). */
static int dictionary_prepare(Ctx *c, const uint8_t *d, int64_t dlen, int64_t xmax, State *snap) {
    if (dlen > WSIZE) d += dlen - WSIZE, dlen = WSIZE;
    if (ctx_reserve(c, dlen, xmax) < 0) return -1;
    memcpy(c->buf, d, (size_t)dlen);
    memset(c->head, 0, sizeof(int32_t) * HASH_SIZE);
    for (int64_t p = 0; p + MIN_MATCH <= dlen; p++) {
        uint32_t h = hash3(c->buf + p);
        c->ring[p & WMASK] = c->head[h];
        c->head[h] = (int32_t)p;
    }
    memset(snap, 0, sizeof *snap);
    snap->pos = snap->block_start = dlen;
    c->tail0 = dlen < 2 ? 0 : dlen - 2;
    return 0;
}

static int64_t dictionary_one(Ctx *c, const State *snap, const uint8_t *x, int64_t xlen) {
    const int64_t dlen = snap->pos;
    memcpy(c->buf + dlen, x, (size_t)xlen);
    memset(c->buf + dlen + xlen, 0, PAD);
    State st = *snap;
    c->undo_n = 0;
    int64_t pending = dlen < 2 ? dlen : 2;
    if (xlen + pending >= MIN_MATCH) {
        for (int64_t p = dlen - pending; p < dlen; p++) {
            uint32_t h = hash3(c->buf + p);
            c->tail[p - c->tail0] = c->head[h];
            c->undo[2 * c->undo_n] = (int32_t)h;
            c->undo[2 * c->undo_n + 1] = c->head[h];
            c->undo_n++;
            c->head[h] = (int32_t)p;
            if (xlen + (dlen - 1 - p) < MIN_MATCH) break;
        }
    }
    run_tail(c, &st, dlen + xlen);
    for (int64_t u = c->undo_n - 1; u >= 0; u--) c->head[c->undo[2 * u]] = c->undo[2 * u + 1];
    return (int64_t)(st.bits >> 3);
}

/* ---------------------------------------------------------------- Python binding */

typedef struct {
    const uint8_t *const *xs;
    const int64_t *xlens;
    int64_t nx;
    const uint8_t *const *ts;
    const int64_t *tlens;
    int64_t nt, tmax;
    int64_t *cx, *cxt;
    int level;
    int64_t next; /* shared work counter */
    int failed;
    int dictionary; /* xs are preset dictionaries, ts the documents; cxt is (n_docs, n_dicts) */
} Job;

#define DICT_CHUNK 128

static void dictionary_work(Job *job, Ctx *c) {
    int64_t chunks = (job->nt + DICT_CHUNK - 1) / DICT_CHUNK, have = -1;
    State snap;
    for (;;) {
        int64_t item = __atomic_fetch_add(&job->next, 1, __ATOMIC_SEQ_CST);
        if (item >= job->nx * chunks || __atomic_load_n(&job->failed, __ATOMIC_SEQ_CST)) break;
        int64_t k = item / chunks, lo = (item % chunks) * DICT_CHUNK, hi = lo + DICT_CHUNK;
        if (hi > job->nt) hi = job->nt;
        if (k != have) {
            if (dictionary_prepare(c, job->xs[k], job->xlens[k], job->tmax, &snap) < 0) {
                __atomic_store_n(&job->failed, 1, __ATOMIC_SEQ_CST);
                break;
            }
            have = k;
        }
        for (int64_t i = lo; i < hi; i++) job->cxt[i * job->nx + k] = dictionary_one(c, &snap, job->ts[i], job->tlens[i]);
    }
}

static void *worker(void *arg) {
    Job *job = arg;
    Ctx c;
    if (ctx_init(&c, job->level) < 0) {
        __atomic_store_n(&job->failed, 1, __ATOMIC_SEQ_CST);
        ctx_free(&c);
        return NULL;
    }
    if (job->dictionary) {
        dictionary_work(job, &c);
        ctx_free(&c);
        return NULL;
    }
    for (;;) {
        int64_t i = __atomic_fetch_add(&job->next, 1, __ATOMIC_SEQ_CST);
        if (i >= job->nx || __atomic_load_n(&job->failed, __ATOMIC_SEQ_CST)) break;
        if (lengths_one(&c, job->xs[i], job->xlens[i], job->ts, job->tlens, job->nt, job->tmax, job->cx + i,
                        job->cxt + i * job->nt) < 0) {
            __atomic_store_n(&job->failed, 1, __ATOMIC_SEQ_CST);
            break;
        }
    }
    ctx_free(&c);
    return NULL;
}

/* Collects bytes-like items of a sequence: new references in *keep, pointers and lengths. */
static int collect(PyObject *seq, const char *what, PyObject **keep, const uint8_t ***ptrs, int64_t **lens,
                   int64_t *n, int64_t *maxlen) {
    *keep = PySequence_Tuple(seq);
    if (!*keep) return -1;
    *n = PyTuple_GET_SIZE(*keep);
    *ptrs = PyMem_Malloc(sizeof(uint8_t *) * (size_t)(*n ? *n : 1));
    *lens = PyMem_Malloc(sizeof(int64_t) * (size_t)(*n ? *n : 1));
    if (!*ptrs || !*lens) {
        PyErr_NoMemory();
        return -1;
    }
    *maxlen = 0;
    for (int64_t i = 0; i < *n; i++) {
        PyObject *b = PyTuple_GET_ITEM(*keep, i);
        if (!PyBytes_Check(b)) {
            PyErr_Format(PyExc_TypeError, "%s[%lld] must be bytes, not %.100s", what, (long long)i,
                         Py_TYPE(b)->tp_name);
            return -1;
        }
        (*ptrs)[i] = (const uint8_t *)PyBytes_AS_STRING(b);
        (*lens)[i] = PyBytes_GET_SIZE(b);
        if ((*lens)[i] > *maxlen) *maxlen = (*lens)[i];
    }
    return 0;
}

static int writable_int64(PyObject *obj, Py_buffer *view, Py_ssize_t n, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 8 || !view->format || (strcmp(view->format, "q") && strcmp(view->format, "l") &&
                                                 strcmp(view->format, "<q") && strcmp(view->format, "=q"))) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous int64 buffer", what);
        PyBuffer_Release(view);
        return -1;
    }
    if (view->len != n * 8) {
        PyErr_Format(PyExc_ValueError, "%s must hold %zd int64 values, got %zd", what, n, view->len / 8);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(pair_lengths_doc,
             "pair_lengths(xs, ts, cx, cxt, level=1, threads=1)\n\n"
             "Fill cx[i] = len(zlib.compress(xs[i], level, -15)) and cxt[i, j] = len(zlib.compress(xs[i] + ts[j],\n"
             "level, -15)) (int64 buffers of len(xs) and len(xs) * len(ts)); level 1-3; sources in threads.");

static PyObject *run_job(PyObject *xs_obj, PyObject *ts_obj, PyObject *cx_obj, PyObject *cxt_obj, int level,
                         int threads, int dictionary) {
    if (level < 1 || level > 3) return PyErr_Format(PyExc_ValueError, "level must be 1, 2 or 3, got %d", level);
    if (threads < 1) return PyErr_Format(PyExc_ValueError, "threads must be >= 1, got %d", threads);
    PyObject *xkeep = NULL, *tkeep = NULL, *result = NULL;
    const uint8_t **xp = NULL, **tp = NULL;
    int64_t *xl = NULL, *tl = NULL, nx = 0, nt = 0, xmax = 0, tmax = 0;
    Py_buffer cxv = {0}, cxtv = {0};
    int have_cx = 0, have_cxt = 0;
    if (collect(xs_obj, "xs", &xkeep, &xp, &xl, &nx, &xmax) < 0) goto done;
    if (collect(ts_obj, "ts", &tkeep, &tp, &tl, &nt, &tmax) < 0) goto done;
    for (int64_t k = 0; dictionary && k < nx; k++)
        if (xl[k] == 0) {
            PyErr_SetString(PyExc_ValueError, "a preset dictionary must not be empty");
            goto done;
        }
    if (xmax + tmax > (int64_t)INT32_MAX - 4 * PAD) {
        PyErr_SetString(PyExc_ValueError, "a source plus a target must stay under 2 GiB");
        goto done;
    }
    if (cx_obj && writable_int64(cx_obj, &cxv, nx, "cx") < 0) goto done;
    have_cx = cx_obj != NULL;
    if (writable_int64(cxt_obj, &cxtv, nx * nt, "cxt") < 0) goto done;
    have_cxt = 1;
    Job job = {xp, xl, nx, tp, tl, nt, tmax, have_cx ? cxv.buf : NULL, cxtv.buf, level, 0, 0, dictionary};
    int64_t units = dictionary ? nx * ((nt + DICT_CHUNK - 1) / DICT_CHUNK) : nx;
    if (threads > units) threads = units > 0 ? (int)units : 1;
    Py_BEGIN_ALLOW_THREADS
    if (threads == 1) {
        worker(&job);
    } else {
        pthread_t *tids = malloc(sizeof(pthread_t) * (size_t)threads);
        int started = 0;
        if (tids) {
            for (; started < threads; started++)
                if (pthread_create(&tids[started], NULL, worker, &job) != 0) break;
            if (started == 0) worker(&job);
            for (int k = 0; k < started; k++) pthread_join(tids[k], NULL);
            free(tids);
        } else {
            worker(&job);
        }
    }
    Py_END_ALLOW_THREADS
    if (job.failed) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    if (have_cx) PyBuffer_Release(&cxv);
    if (have_cxt) PyBuffer_Release(&cxtv);
    PyMem_Free(xp);
    PyMem_Free(xl);
    PyMem_Free(tp);
    PyMem_Free(tl);
    Py_XDECREF(xkeep);
    Py_XDECREF(tkeep);
    return result;
}

static PyObject *pair_lengths(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kw[] = {"xs", "ts", "cx", "cxt", "level", "threads", NULL};
    PyObject *xs_obj, *ts_obj, *cx_obj, *cxt_obj;
    int level = 1, threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO|ii", kw, &xs_obj, &ts_obj, &cx_obj, &cxt_obj, &level,
                                     &threads))
        return NULL;
    return run_job(xs_obj, ts_obj, cx_obj, cxt_obj, level, threads, 0);
}

PyDoc_STRVAR(dictionary_lengths_doc,
             "dictionary_lengths(dicts, xs, out, level=1, threads=1)\n\n"
             "Fill out[i, k] = the raw deflate length of xs[i] compressed with the preset dictionary dicts[k]\n"
             "(zlib.compressobj(level, DEFLATED, -15, zdict=dicts[k]), compress + flush); int64 buffer of\n"
             "len(xs) * len(dicts); level 1-3; dictionaries must not be empty.");

static PyObject *dictionary_lengths(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kw[] = {"dicts", "xs", "out", "level", "threads", NULL};
    PyObject *d_obj, *xs_obj, *out_obj;
    int level = 1, threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|ii", kw, &d_obj, &xs_obj, &out_obj, &level, &threads))
        return NULL;
    return run_job(d_obj, xs_obj, NULL, out_obj, level, threads, 1);
}

static PyMethodDef methods[] = {
    {"pair_lengths", (PyCFunction)(void (*)(void))pair_lengths, METH_VARARGS | METH_KEYWORDS, pair_lengths_doc},
    {"dictionary_lengths", (PyCFunction)(void (*)(void))dictionary_lengths, METH_VARARGS | METH_KEYWORDS,
     dictionary_lengths_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_deflate_len",
                                    "Exact zlib level 1-3 raw deflate lengths without compressing (see the C source).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__deflate_len(void) {
    init_tables();
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "WRITTEN_FOR_ZLIB", "1.2.13") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
