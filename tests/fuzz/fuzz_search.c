/* fuzz_search.c -- libFuzzer target for the SEARCH criteria parser (the
 * real one in core/search.c, over tokens from the real command parser)
 * and the text helpers SEARCH uses on message data: RFC 2047 header
 * decoding, transfer decoding, dates and address lists. */
#include "cmd.h"
#include "mime.h"
#include "parse.h"

#include <stdlib.h>
#include <string.h>

/* In search.c; parses the criteria without running them. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static st_box box;
    static imap_sess sess;
    static imap_conn conn;
    sess.box = &box;
    sess.exists = 7;
    sess.uidmax = 40;
    conn.sess = &sess;

    imap_parser *ps = &conn.ps;
    parse_init(ps, 4096, 16384, 512);
    static const char pre[] = "t SEARCH ";
    size_t used = 0;
    int r = parse_feed(ps, pre, sizeof pre - 1, &used);
    size_t pos = 0;
    while (r != PARSE_DONE && r != PARSE_ERROR && r != PARSE_FATAL) {
        if (r == PARSE_LITERAL) {
            if (ps->lit_len < 256) {
                parse_literal_accept(ps, LIT_MEM, NULL, NULL);
            } else if (parse_literal_refuse(ps, 0)) {
                break;
            }
        }
        if (pos >= size) {
            r = parse_feed(ps, "\r\n", 2, &used);
            if (r == PARSE_MORE) {
                break;
            }
            continue;
        }
        used = 0;
        r = parse_feed(ps, (const char *)data + pos, size - pos, &used);
        pos += used;
        if (used == 0 && r == PARSE_MORE) {
            break;
        }
    }
    if (r == PARSE_DONE && ps->ntok >= 2) {
        args a = {&conn, 2, ps->ntok};
        search_parse_check(&conn, &a);
    }
    parse_free(ps);

    /* The helpers, on the raw bytes. */
    const char *s = (const char *)data;
    dbuf o = {0};
    mime_decode_header(s, size, &o);
    dbuf_reset(&o);
    mime_out_addresses(&o, s, size);
    dbuf_reset(&o);
    mime_date_days(s, size);
    for (int enc = MIME_ENC_PLAIN; enc <= MIME_ENC_QP; enc++) {
        mime_decoder d;
        mime_decoder_init(&d, enc, size & 1 ? MIME_CS_LATIN1 : MIME_CS_UTF8);
        size_t half = size / 2;
        mime_decode(&d, s, half, &o);
        mime_decode(&d, s + half, size - half, &o);
        dbuf_reset(&o);
    }
    dbuf_free(&o);
    return 0;
}
