/* view.c -- per-session views of shared mailboxes (see view.h). */
#include "view.h"
#include "ext.h"

#include <stdlib.h>
#include <string.h>

static imap_mview *mview(st_box *box)
{
    if (!box->view) {
        box->view = calloc(1, sizeof(imap_mview));
    }
    return box->view;
}

static int exp_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct vexp *)a)->uid, y = ((const struct vexp *)b)->uid;
    return x < y ? -1 : x > y;
}

/* Generation of a retained expunged uid, 0 if unknown. */
static uint32_t exp_gen(imap_mview *mv, uint32_t uid)
{
    struct vexp key = {uid, 0};
    struct vexp *e = mv->nexp ? bsearch(&key, mv->exp, mv->nexp, sizeof key, exp_cmp) : NULL;
    return e ? e->gen : 0;
}

void view_sync(st_box *box)
{
    imap_mview *mv = mview(box);
    if (!mv) {
        return;
    }
    st_box_refresh(box);
    uint32_t n = box->nexpunged; /* the store counts them: no scan */
    if (n == mv->nexp) {
        return;
    }
    /* New expunges (ours or another process's): one new generation. */
    struct vexp *ne = n ? malloc(n * sizeof *ne) : NULL;
    if (n && !ne) {
        return;
    }
    uint32_t k = 0, newgen = mv->gen + 1;
    int any_new = 0;
    for (uint32_t i = 0; i < box->count; i++) {
        if (box->msg[i].flags & ST_F_EXPUNGED) {
            uint32_t g = exp_gen(mv, box->msg[i].uid);
            if (!g) {
                g = newgen;
                any_new = 1;
            }
            ne[k].uid = box->msg[i].uid;
            ne[k].gen = g;
            k++;
        }
    }
    if (any_new) {
        mv->gen = newgen;
    }
    free(mv->exp);
    mv->exp = ne;
    mv->nexp = mv->capexp = n;
}

imap_sess *view_open(imap_conn *c, st_box *box, int readonly)
{
    imap_mview *mv = mview(box);
    imap_sess *s = calloc(1, sizeof *s);
    if (!mv || !s) {
        free(s);
        return NULL;
    }
    view_sync(box);
    s->box = box;
    s->conn = c;
    s->readonly = readonly;
    s->told_gen = mv->gen;
    s->told_modseq = box->highestmodseq;
    /* Without reading all of msg[] (a SELECT of 100,000 messages used to
     * walk it three times): EXISTS is a count, the highest UID is the
     * last entry not expunged, and \Recent is a UID range at the end. */
    s->exists = box->count - box->nexpunged;
    for (uint32_t i = box->count; i-- > 0;) {
        if (!(box->msg[i].flags & ST_F_EXPUNGED)) {
            s->uidmax = box->msg[i].uid;
            break;
        }
    }
    if (!readonly) {
        s->recent_lo = box->recent_uid;
        s->recent_hi = box->uidnext;
        if (box->recent_uid != box->uidnext) {
            st_box_set_recent(box, box->uidnext);
        }
    }
    uint32_t lo = st_box_lower_bound(box, readonly ? box->recent_uid : s->recent_lo);
    for (uint32_t i = lo; i < box->count; i++) {
        if (box->nexpunged == 0) {
            /* every entry from lo on is live, and below recent_hi
             * (uidnext at most) or, read-only, at or above recent_uid */
            s->recent_count = box->count - lo;
            break;
        }
        if (!(box->msg[i].flags & ST_F_EXPUNGED) && view_is_recent(s, i)) {
            s->recent_count++;
        }
    }
    s->next = mv->sessions;
    mv->sessions = s;
    return s;
}

static void maybe_purge(st_box *box)
{
    imap_mview *mv = box->view;
    if (!mv || !mv->nexp) {
        return;
    }
    for (imap_sess *o = mv->sessions; o; o = o->next) {
        if (o->told_gen < mv->gen) {
            return;
        }
    }
    st_box_purge(box);
    free(mv->exp);
    mv->exp = NULL;
    mv->nexp = mv->capexp = 0;
    for (imap_sess *o = mv->sessions; o; o = o->next) {
        free(o->map);
        o->map = NULL;
    }
}

void view_close(imap_sess *s)
{
    imap_mview *mv = s->box->view;
    for (imap_sess **pp = &mv->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    st_box *box = s->box;
    free(s->map);
    free(s->saved);
    free(s);
    maybe_purge(box);
    if (!mv->sessions) {
        free(mv->exp);
        free(mv);
        box->view = NULL;
    }
    st_box_close(box);
}

int view_is_expunged(imap_sess *s, uint32_t idx)
{
    return (s->box->msg[idx].flags & ST_F_EXPUNGED) != 0;
}

int view_visible(imap_sess *s, uint32_t idx)
{
    const st_msg *m = &s->box->msg[idx];
    if (m->uid > s->uidmax) {
        return 0;
    }
    if (m->flags & ST_F_EXPUNGED) {
        uint32_t g = exp_gen(s->box->view, m->uid);
        return g > s->told_gen;
    }
    return 1;
}

/* Build the sequence map when the simple prefix rule does not hold. */
static int build_map(imap_sess *s)
{
    imap_mview *mv = s->box->view;
    if (s->map && s->map_change == s->box->change + ((uint64_t)s->told_gen << 40) + s->uidmax) {
        return 0;
    }
    free(s->map);
    s->map = NULL;
    s->nmap = 0;
    (void)mv;
    uint32_t *m = malloc((s->exists ? s->exists : 1) * sizeof *m);
    if (!m) {
        return -1;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->box->count && k < s->exists; i++) {
        if (view_visible(s, i)) {
            m[k++] = i;
        }
    }
    s->map = m;
    s->nmap = k;
    s->map_change = s->box->change + ((uint64_t)s->told_gen << 40) + s->uidmax;
    return 0;
}

long view_seq2idx(imap_sess *s, uint32_t seq)
{
    imap_mview *mv = s->box->view;
    if (seq == 0 || seq > s->exists) {
        return -1;
    }
    if (!mv->nexp) {
        return seq - 1 < s->box->count ? (long)(seq - 1) : -1;
    }
    if (build_map(s) < 0 || seq > s->nmap) {
        return -1;
    }
    return s->map[seq - 1];
}

uint32_t view_idx2seq(imap_sess *s, uint32_t idx)
{
    imap_mview *mv = s->box->view;
    if (!view_visible(s, idx)) {
        return 0;
    }
    if (!mv->nexp) {
        return idx + 1;
    }
    if (build_map(s) < 0) {
        return 0;
    }
    uint32_t lo = 0, hi = s->nmap;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (s->map[mid] < idx) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < s->nmap && s->map[lo] == idx ? lo + 1 : 0;
}

int view_is_recent(imap_sess *s, uint32_t idx)
{
    uint32_t uid = s->box->msg[idx].uid;
    if (s->readonly) {
        return uid >= s->box->recent_uid;
    }
    return uid >= s->recent_lo && uid < s->recent_hi;
}

void view_out_flags(imap_sess *s, uint32_t idx)
{
    static const char *const names[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"};
    const st_msg *m = &s->box->msg[idx];
    imap_conn *c = s->conn;
    int first = 1;
    out_write(c, "(", 1);
    for (int i = 0; i < 5; i++) {
        if (m->flags & (1u << i)) {
            out_puts(c, first ? "" : " ");
            out_puts(c, names[i]);
            first = 0;
        }
    }
    /* RFC 9051 2.3.2: \Recent is deprecated; an IMAP4rev2 session never
     * sees it (nor the RECENT response, view_notify). */
    if (!ext_rev2(c) && view_is_recent(s, idx)) {
        out_puts(c, first ? "\\Recent" : " \\Recent");
        first = 0;
    }
    for (unsigned k = 0; k < s->box->nkw; k++) {
        if (m->kw & ((uint64_t)1 << k)) {
            out_puts(c, first ? "" : " ");
            out_puts(c, s->box->kw[k]);
            first = 0;
        }
    }
    out_write(c, ")", 1);
}

void view_notify(imap_sess *s, int allow_expunge)
{
    st_box *box = s->box;
    imap_conn *c = s->conn;
    view_sync(box);
    imap_mview *mv = box->view;

    if (box->deleted) {
        return;
    }
    /* 1. Expunges, highest sequence number first so none renumbers another. */
    int pending_exp = 0;
    for (uint32_t k = 0; k < mv->nexp; k++) {
        if (mv->exp[k].gen > s->told_gen) {
            pending_exp = 1;
            break;
        }
    }
    if (pending_exp && allow_expunge) {
        uint32_t seq = 0;
        uint32_t *seqs = malloc((s->exists ? s->exists : 1) * sizeof *seqs);
        uint32_t ns = 0;
        for (uint32_t i = 0; i < box->count && seqs; i++) {
            if (!view_visible(s, i)) {
                continue;
            }
            seq++;
            if (box->msg[i].flags & ST_F_EXPUNGED) {
                seqs[ns++] = seq;
            }
        }
        if (CONFIG_EXT_QRESYNC && (c->ext_on & EXT_QRESYNC)) {
            /* RFC 7162 3.2.10: VANISHED (UIDs) instead of EXPUNGE. */
            uint32_t *uids = malloc((s->exists ? s->exists : 1) * sizeof *uids);
            uint32_t nu = 0;
            for (uint32_t i = 0; i < box->count && uids; i++) {
                if (view_visible(s, i) && (box->msg[i].flags & ST_F_EXPUNGED)) {
                    uids[nu++] = box->msg[i].uid;
                }
            }
            if (nu) {
                dbuf b = {0};
                ext_numset(&b, uids, nu);
                out_puts(c, "* VANISHED ");
                out_write(c, b.p, b.len);
                out_puts(c, "\r\n");
                dbuf_free(&b);
            }
            s->exists -= nu;
            free(uids);
            ns = 0;
        }
        while (seqs && ns > 0) {
            out_printf(c, "* %u EXPUNGE\r\n", seqs[--ns]);
            s->exists--;
        }
        free(seqs);
        s->told_gen = mv->gen;
        free(s->map);
        s->map = NULL;
        pending_exp = 0;
    }
    /* 2. New messages, unless an unreported expunge sits among them. */
    uint32_t oldmax = s->uidmax;   /* messages announced before this call */
    uint32_t newmax = s->uidmax, added = 0;
    int blocked = 0;
    for (uint32_t i = box->count; i-- > 0;) {
        const st_msg *m = &box->msg[i];
        if (m->uid <= s->uidmax) {
            break;
        }
        if (m->flags & ST_F_EXPUNGED) {
            if (exp_gen(mv, m->uid) > s->told_gen) {
                blocked = 1;
            }
            continue;
        }
        added++;
        if (m->uid > newmax) {
            newmax = m->uid;
        }
    }
    if (added && !blocked) {
        if (!s->readonly && box->recent_uid < box->uidnext) {
            if (box->recent_uid != s->recent_hi) {
                s->recent_lo = box->recent_uid;
            }
            s->recent_hi = box->uidnext;
            st_box_set_recent(box, box->uidnext);
        }
        s->exists += added;
        s->uidmax = newmax;
        free(s->map);
        s->map = NULL;
        out_printf(c, "* %u EXISTS\r\n", s->exists);
    }
    if (added && !blocked) {
        uint32_t r = 0;
        for (uint32_t i = 0; i < box->count; i++) {
            if (view_visible(s, i) && !(box->msg[i].flags & ST_F_EXPUNGED) && view_is_recent(s, i)) {
                r++;
            }
        }
        s->recent_count = r;
        if (!(c->ext_on & EXT_REV2)) {
            out_printf(c, "* %u RECENT\r\n", r);
        }
    }
    /* 3. Flag changes made by others. */
    if (box->highestmodseq > s->told_modseq) {
        for (uint32_t i = 0; i < box->count; i++) {
            const st_msg *m = &box->msg[i];
            /* Messages announced just now by EXISTS are not "changed":
             * the client fetches their flags anyway. */
            if (m->modseq > s->told_modseq && m->uid <= oldmax && !(m->flags & ST_F_EXPUNGED) &&
                view_visible(s, i)) {
                out_printf(c, "* %u FETCH (", view_idx2seq(s, i));
                if (c->ext_on & EXT_QRESYNC) {
                    out_printf(c, "UID %u ", m->uid);   /* RFC 7162 3.2.4 */
                }
                out_puts(c, "FLAGS ");
                view_out_flags(s, i);
                if (c->ext_on & EXT_CONDSTORE) {
                    out_printf(c, " MODSEQ (%llu)", (unsigned long long)ext_modseq(m->modseq));
                }
                out_puts(c, ")\r\n");
            }
        }
        s->told_modseq = box->highestmodseq;
    }
    maybe_purge(box);
}

void view_kick(st_box *box, imap_sess *except)
{
    imap_mview *mv = box->view;
    if (!mv) {
        return;
    }
    for (imap_sess *o = mv->sessions; o; o = o->next) {
        if (o != except && o->conn->idling) {
            view_notify(o, 1);
            conn_flush(o->conn);
        }
    }
}
