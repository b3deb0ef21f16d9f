/* parse.c -- resumable IMAP command tokenizer (see parse.h). */
#include "parse.h"

#include <stdlib.h>
#include <string.h>

enum {
    PS_START = 0,   /* at the start of a command */
    PS_BETWEEN,     /* between tokens */
    PS_ATOM,
    PS_QUOTED,
    PS_QESC,
    PS_LITCOUNT,    /* inside {...} */
    PS_LITEND,      /* after }, expecting CRLF */
    PS_LITDATA,     /* literal bytes */
    PS_CR,          /* after CR, expecting LF */
    PS_SKIP,        /* after an error: discard to the end of the command */
    PS_SKIPLIT,     /* after an error: discard a {n+} literal's bytes */
    PS_TILDE,       /* after '~': a literal8 or an atom */
};

void parse_init(imap_parser *p, size_t line_max, size_t arena_max, uint32_t tok_max)
{
    memset(p, 0, sizeof *p);
    p->line_max = line_max;
    p->arena_max = arena_max;
    p->tok_max = tok_max;
}

void parse_clear(imap_parser *p)
{
    free(p->toks);
    free(p->arena);
    p->toks = NULL;
    p->arena = NULL;
    p->ntok = p->tokcap = 0;
    p->alen = p->acap = 0;
}

void parse_reset(imap_parser *p)
{
    free(p->toks);
    free(p->arena);
    p->toks = NULL;
    p->arena = NULL;
    p->ntok = p->tokcap = 0;
    p->alen = p->acap = 0;
    p->linelen = 0;
    p->depth = 0;
    p->state = PS_START;
    p->err = NULL;
}

void parse_free(imap_parser *p)
{
    parse_reset(p);
}

int parse_busy(const imap_parser *p)
{
    return p->state != PS_START;
}

/* Make room for n more arena bytes; 0 or -1 when over the cap. */
static int arena_reserve(imap_parser *p, size_t n)
{
    if (p->alen + n > p->arena_max) {
        return -1;
    }
    if (p->alen + n <= p->acap) {
        return 0;
    }
    size_t nc = p->acap ? p->acap : 256;
    while (nc < p->alen + n) {
        nc *= 2;
    }
    if (nc > p->arena_max) {
        nc = p->arena_max;
    }
    char *na = realloc(p->arena, nc);
    if (!na) {
        return -1;
    }
    p->arena = na;
    p->acap = nc;
    return 0;
}

static int arena_putc(imap_parser *p, char c)
{
    if (arena_reserve(p, 1) < 0) {
        return -1;
    }
    p->arena[p->alen++] = c;
    return 0;
}

static int tok_begin(imap_parser *p, int type)
{
    if (p->ntok >= p->tok_max) {
        return -1;
    }
    if (p->ntok == p->tokcap) {
        uint32_t nc = p->tokcap ? p->tokcap * 2 : 16;
        tok *nt = realloc(p->toks, nc * sizeof *nt);
        if (!nt) {
            return -1;
        }
        p->toks = nt;
        p->tokcap = nc;
    }
    tok *t = &p->toks[p->ntok++];
    t->type = (uint8_t)type;
    t->depth = (uint8_t)(p->depth > 255 ? 255 : p->depth);
    t->off = (uint32_t)p->alen;
    t->len = 0;
    return 0;
}

/* Close the current token: record its length and NUL-terminate it. */
static int tok_end(imap_parser *p)
{
    tok *t = &p->toks[p->ntok - 1];
    t->len = (uint32_t)(p->alen - t->off);
    return arena_putc(p, 0);
}

/* Back to the start of a command. */
static void to_start(imap_parser *p)
{
    p->state = PS_START;
    p->linelen = 0;
    p->depth = 0;
}

/* Enter skip mode after an error; the caller reports err. */
static int fail(imap_parser *p, const char *why, int at_eol)
{
    p->err = why;
    to_start(p);
    p->state = at_eol ? PS_START : PS_SKIP;
    p->count_ok = 0;
    p->skip_plus = 0;
    return PARSE_ERROR;
}

/* Track "{n}" / "{n+}" at the end of a skipped line. */
static void skip_track(imap_parser *p, char c)
{
    if (c == '{') {
        p->count_ok = 1;
        p->skip_lit = 0;
        p->skip_plus = 0;
    } else if (p->count_ok == 1 && c >= '0' && c <= '9' && !p->skip_plus) {
        if (p->skip_lit < ((uint64_t)1 << 60)) {
            p->skip_lit = p->skip_lit * 10 + (uint64_t)(c - '0');
        }
    } else if (p->count_ok == 1 && c == '+') {
        p->skip_plus = 1;
    } else if (p->count_ok == 1 && c == '}') {
        p->count_ok = 2;
    } else if (p->count_ok == 2 && c == '\r') {
        /* still at the end */
    } else {
        p->count_ok = 0;
    }
}

int parse_feed(imap_parser *p, const char *buf, size_t n, size_t *used)
{
    size_t i = 0;
    int r = PARSE_MORE;

    while (i < n) {
        char c = buf[i];

        if (p->state == PS_LITDATA) {
            uint64_t take = p->lit_left < (uint64_t)(n - i) ? p->lit_left : (uint64_t)(n - i);
            if (p->lit_mode == LIT_MEM) {
                memcpy(p->arena + p->alen, buf + i, (size_t)take);
                p->alen += (size_t)take;
            } else if (p->lit_mode == LIT_SINK && p->sink) {
                p->sink(p->sink_ctx, buf + i, (size_t)take);
            }
            i += (size_t)take;
            p->lit_left -= take;
            if (p->lit_left == 0) {
                if (p->lit_mode == LIT_MEM && tok_end(p) < 0) {
                    r = fail(p, "Command too large", 0);
                    goto out;
                }
                p->state = PS_BETWEEN;
            }
            continue;
        }
        if (p->state == PS_SKIPLIT) {
            uint64_t take = p->lit_left < (uint64_t)(n - i) ? p->lit_left : (uint64_t)(n - i);
            i += (size_t)take;
            p->lit_left -= take;
            if (p->lit_left == 0) {
                p->state = PS_SKIP;
                p->count_ok = 0;
            }
            continue;
        }

        i++;
        if (c != '\n' && p->state != PS_SKIP && ++p->linelen > p->line_max) {
            r = fail(p, "Line too long", 0);
            goto out;
        }

        switch (p->state) {
        case PS_SKIP:
            if (c == '\n') {
                if (p->count_ok == 2 && p->skip_plus) {
                    p->lit_left = p->skip_lit;
                    p->state = p->lit_left ? PS_SKIPLIT : PS_SKIP;
                    p->count_ok = 0;
                } else {
                    /* A synchronizing literal we did not invite is not sent. */
                    to_start(p);
                }
            } else {
                skip_track(p, c);
            }
            break;

        case PS_START:
            if (c == ' ' || c == '(' || c == ')' || c == '"' || c == '{') {
                r = fail(p, "Missing or invalid tag", 0);
                goto out;
            }
            /* fall through */
        case PS_BETWEEN:
        between:
            if (c == ' ') {
                break;
            }
            if (c == '\r') {
                p->state = PS_CR;
                break;
            }
            if (c == '\n') {
                goto eol;
            }
            if (c == '(') {
                if (p->depth >= 100 || tok_begin(p, TOK_LPAREN) < 0 || tok_end(p) < 0) {
                    r = fail(p, "Too many tokens or nesting", 0);
                    goto out;
                }
                p->depth++;
                p->state = PS_BETWEEN;
                break;
            }
            if (c == ')') {
                if (p->depth == 0) {
                    r = fail(p, "Unbalanced parentheses", 0);
                    goto out;
                }
                p->depth--;
                if (tok_begin(p, TOK_RPAREN) < 0 || tok_end(p) < 0) {
                    r = fail(p, "Too many tokens", 0);
                    goto out;
                }
                p->toks[p->ntok - 1].depth = (uint8_t)(p->depth > 255 ? 255 : p->depth);
                p->state = PS_BETWEEN;
                break;
            }
            if (c == '"') {
                if (tok_begin(p, TOK_QUOTED) < 0) {
                    r = fail(p, "Too many tokens", 0);
                    goto out;
                }
                p->state = PS_QUOTED;
                break;
            }
            if (c == '~') {
                /* literal8 "~{n}" (RFC 3516/6855), or an atom that starts
                 * with '~' (decided by the next byte) */
                p->state = PS_TILDE;
                break;
            }
            if (c == '{') {
                p->count = 0;
                p->count_ok = 0;
                p->lit_plus = 0;
                p->lit_len = 0;
                p->state = PS_LITCOUNT;
                break;
            }
            if ((unsigned char)c < 0x20 || c == 0x7f) {
                r = fail(p, "Control character in command", 0);
                goto out;
            }
            if (tok_begin(p, TOK_ATOM) < 0 || arena_putc(p, c) < 0) {
                r = fail(p, "Too many tokens", 0);
                goto out;
            }
            p->state = PS_ATOM;
            break;

        case PS_TILDE:
            if (c == '{') {
                p->count = 0;
                p->count_ok = 0;
                p->lit_plus = 0;
                p->lit_len = 0;
                p->state = PS_LITCOUNT;
                break;
            }
            if (tok_begin(p, TOK_ATOM) < 0 || arena_putc(p, '~') < 0) {
                r = fail(p, "Too many tokens", 0);
                goto out;
            }
            p->state = PS_ATOM;
            goto atom;   /* c continues (or ends) the atom */
        case PS_ATOM:
        atom:
            if (p->ntok == 1 && (c == '(' || c == ')' || c == '"')) {
                /* Not a tag: answer untagged. */
                p->ntok = 0;
                r = fail(p, "Missing or invalid tag", 0);
                goto out;
            }
            if (c == ' ' || c == '(' || c == ')' || c == '\r' || c == '\n' || c == '"') {
                if (tok_end(p) < 0) {
                    r = fail(p, "Command too large", 0);
                    goto out;
                }
                p->state = PS_BETWEEN;
                goto between;
            }
            if ((unsigned char)c < 0x20 || c == 0x7f) {
                r = fail(p, "Control character in command", 0);
                goto out;
            }
            if (arena_putc(p, c) < 0) {
                r = fail(p, "Command too large", 0);
                goto out;
            }
            break;

        case PS_QUOTED:
            if (c == '\\') {
                p->state = PS_QESC;
            } else if (c == '"') {
                if (tok_end(p) < 0) {
                    r = fail(p, "Command too large", 0);
                    goto out;
                }
                p->state = PS_BETWEEN;
            } else if (c == '\r' || c == '\n' || c == 0) {
                r = fail(p, "Unterminated quoted string", c == '\n');
                goto out;
            } else if (arena_putc(p, c) < 0) {
                r = fail(p, "Command too large", 0);
                goto out;
            }
            break;

        case PS_QESC:
            if (c != '"' && c != '\\') {
                r = fail(p, "Invalid escape in quoted string", c == '\n');
                goto out;
            }
            if (arena_putc(p, c) < 0) {
                r = fail(p, "Command too large", 0);
                goto out;
            }
            p->state = PS_QUOTED;
            break;

        case PS_LITCOUNT:
            if (c >= '0' && c <= '9' && !p->lit_plus) {
                if (p->lit_len > ((uint64_t)1 << 40)) {
                    r = fail(p, "Literal too large", 0);
                    goto out;
                }
                p->lit_len = p->lit_len * 10 + (uint64_t)(c - '0');
                p->count++;
            } else if (c == '+' && p->count && !p->lit_plus) {
                p->lit_plus = 1;
            } else if (c == '}' && p->count) {
                p->state = PS_LITEND;
            } else {
                r = fail(p, "Invalid literal", c == '\n');
                goto out;
            }
            break;

        case PS_LITEND:
            if (c == '\r') {
                break;
            }
            if (c != '\n') {
                r = fail(p, "Literal must end the line", 0);
                goto out;
            }
            p->linelen = 0;
            p->lit_left = p->lit_len;
            p->lit_mode = 0;
            p->state = PS_LITDATA;
            r = PARSE_LITERAL;
            goto out;

        case PS_CR:
            if (c != '\n') {
                r = fail(p, "CR without LF", 0);
                goto out;
            }
        eol:
            if (p->ntok == 0) {
                /* An empty line: nothing to do. */
                to_start(p);
                break;
            }
            if (p->depth != 0) {
                r = fail(p, "Unbalanced parentheses", 1);
                goto out;
            }
            to_start(p);
            r = PARSE_DONE;
            goto out;
        }
    }
out:
    *used = i;
    return r;
}

void parse_literal_accept(imap_parser *p, int mode, parse_sink sink, void *ctx)
{
    p->lit_mode = mode;
    p->sink = sink;
    p->sink_ctx = ctx;
    if (mode == LIT_MEM) {
        /* The caller checked the size against arena_max. */
        if (arena_reserve(p, (size_t)p->lit_len + 1) < 0 || tok_begin(p, TOK_LITERAL) < 0) {
            p->lit_mode = LIT_SKIP;
        }
    } else if (mode == LIT_SINK) {
        if (tok_begin(p, TOK_STREAMED) == 0) {
            tok_end(p);
            p->toks[p->ntok - 1].len = (uint32_t)(p->lit_len > UINT32_MAX ? UINT32_MAX : p->lit_len);
        }
    }
    if (p->lit_left == 0) {
        if (p->lit_mode == LIT_MEM) {
            tok_end(p);
        }
        p->state = PS_BETWEEN;
    }
}

int parse_literal_refuse(imap_parser *p, uint64_t skip_max)
{
    if (!p->lit_plus) {
        /* The client waits for "+" that will not come: the command ends. */
        to_start(p);
        return 0;
    }
    if (p->lit_len > skip_max) {
        return 1;
    }
    p->lit_left = p->lit_len;
    p->state = p->lit_left ? PS_SKIPLIT : PS_SKIP;
    p->count_ok = 0;
    return 0;
}
