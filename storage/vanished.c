/*
 * vanished.c -- which UIDs were expunged after a MODSEQ (RFC 7162 QRESYNC).
 *
 * No new state is kept: every EXPUNGE record in the state log carries the
 * UID and its MODSEQ, so the answer is a scan of the log, done only when a
 * client resynchronises (once per reconnect). A checkpoint or compaction
 * rewrites the log without the expunges before it; the STATE record such a
 * fresh log carries holds the HIGHESTMODSEQ at that moment, below which the
 * log can no longer answer exactly -- then the caller falls back to the
 * superset RFC 7162 allows (every UID that is gone).
 */
#include "st_int.h"

#include <stdlib.h>

int st_box_vanished(st_box *bx, uint64_t since, void (*cb)(void *ctx, uint32_t uid), void *ctx)
{
    stbox *b = (stbox *)bx;
    int r = st_box_lock(b);
    if (r) {
        return r;
    }
    st_stat ls;
    r = st_vfstat(b->log, &ls);
    if (r) {
        st_box_unlock(b);
        return r;
    }
    /* First pass: the floor (a rewritten log starts with a snapshot). */
    uint64_t floor = 0;
    int exact = 1;
    for (int pass = 0; pass < 2 && exact; pass++) {
        st_logrd rd;
        st_logrd_init(&rd, b->log, 0, ls.size);
        for (;;) {
            int type;
            const uint8_t *p;
            size_t len;
            uint64_t off;
            int k = st_logrd_next(&rd, &type, &p, &len, &off);
            if (k <= 0) {
                break;   /* end, or a torn tail: what came before stands */
            }
            if (pass == 0 && type == REC_STATE && len >= 12) {
                uint64_t ms = st_get64(p + 4);
                if (ms > floor) {
                    floor = ms;
                }
            } else if (pass == 1 && type == REC_EXPUNGE && len >= 12) {
                if (st_get64(p + 4) > since) {
                    cb(ctx, st_get32(p));
                }
            }
        }
        st_logrd_free(&rd);
        if (pass == 0 && since < floor) {
            exact = 0;
        }
    }
    st_box_unlock(b);
    return exact;
}
