/* fuzz_parse.c -- libFuzzer target for the command tokenizer, sequence
 * sets, mailbox names and dates. The input is fed in slices whose sizes
 * come from the input itself, so resumption is exercised too. */
#include "cmd.h"
#include "parse.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t step = (data[0] % 31) + 1;
    data++;
    size--;
    imap_parser p;
    parse_init(&p, 256, 1024, 32);
    size_t pos = 0;
    while (pos < size) {
        size_t chunk = size - pos < step ? size - pos : step;
        size_t used = 0;
        int r = parse_feed(&p, (const char *)data + pos, chunk, &used);
        pos += used;
        if (r == PARSE_LITERAL) {
            if (p.lit_len < 64 && p.alen + p.lit_len + 1 <= p.arena_max) {
                parse_literal_accept(&p, LIT_MEM, NULL, NULL);
            } else if (parse_literal_refuse(&p, 200)) {
                break;
            }
        } else if (r == PARSE_DONE) {
            for (uint32_t i = 0; i < p.ntok; i++) {
                const char *s = tok_s(&p, i);
                const char *why;
                char *n = mailbox_name(s, p.toks[i].len, &why);
                free(n);
                seqset set;
                if (seqset_parse(&set, s, p.toks[i].len, 100) == 0) {
                    seqset_has(&set, 50);
                    seqset_free(&set);
                }
                int64_t t;
                int tz;
                parse_date_time(s, p.toks[i].len, &t, &tz);
                parse_date(s, p.toks[i].len, &t);
            }
            parse_clear(&p);
        } else if (r == PARSE_ERROR) {
            parse_clear(&p);
        }
    }
    parse_free(&p);
    return 0;
}
