/*
 * parse.h -- resumable IMAP command tokenizer.
 *
 * Bytes are fed as they arrive, in any slicing. The parser keeps only the
 * tokens of the command in progress (in one arena, capped), never the raw
 * line, so a slow client costs the few bytes it has sent so far.
 *
 * Tokens: atoms (anything up to SP, parentheses, CR/LF or a quote; this
 * includes "BODY[HEADER.FIELDS" and "\Seen" -- the command code gives atoms
 * their meaning), quoted strings (unescaped), literals, and parentheses.
 * A line ending in {n} or {n+} stops the parser with PARSE_LITERAL so the
 * connection can decide: keep it in memory, stream it (APPEND), or refuse.
 */
#ifndef PARSE_H
#define PARSE_H

#include <stddef.h>
#include <stdint.h>

enum tok_type {
    TOK_ATOM = 1,
    TOK_QUOTED,     /* "..." with escapes removed */
    TOK_LITERAL,    /* {n} held in memory */
    TOK_STREAMED,   /* {n} handed to a sink; len is n, s is "" */
    TOK_LPAREN,
    TOK_RPAREN,
};

typedef struct tok {
    uint8_t  type;   /* enum tok_type */
    uint8_t  depth;  /* parenthesis depth of the token (0 = top level) */
    uint32_t len;    /* bytes of s (a literal may hold NULs) */
    uint32_t off;    /* offset of s in the arena (valid until the next command) */
} tok;

enum parse_result {
    PARSE_MORE = 0,     /* all input used, command not complete */
    PARSE_DONE,         /* a complete command is in toks[] */
    PARSE_LITERAL,      /* line ended with a literal announcement; see lit_* */
    PARSE_ERROR,        /* syntax error or limit; err says why; the rest of
                           the command is being skipped */
    PARSE_FATAL,        /* cannot continue on this connection (e.g. refused
                           non-synchronizing literal); err says why */
};

typedef void (*parse_sink)(void *ctx, const char *p, size_t n);

typedef struct imap_parser {
    /* limits, set by the owner before feeding */
    size_t   line_max;     /* bytes of one line, literals excluded */
    size_t   arena_max;    /* bytes of all tokens of one command */
    uint32_t tok_max;      /* tokens of one command */

    int      state;        /* internal state (PS_*) */
    tok     *toks;         /* tokens so far */
    uint32_t ntok, tokcap;
    char    *arena;        /* token bytes, each NUL-terminated */
    size_t   alen, acap;
    size_t   linelen;      /* bytes of the current line */
    int      depth;        /* open parentheses */
    uint64_t lit_len;      /* announced literal size */
    int      lit_plus;     /* it was {n+} (no continuation expected) */
    uint64_t lit_left;     /* literal bytes still to come */
    int      lit_mode;     /* how they are taken (LIT_MEM, LIT_SINK, LIT_SKIP) */
    parse_sink sink;       /* for LIT_SINK */
    void    *sink_ctx;
    uint32_t count;        /* digits of the literal announcement */
    int      count_ok;
    int      skip_plus;    /* skipping: the skipped line had {n+} */
    uint64_t skip_lit;     /* skipping: its n */
    const char *err;       /* reason for PARSE_ERROR / PARSE_FATAL */
} imap_parser;

void parse_init(imap_parser *p, size_t line_max, size_t arena_max, uint32_t tok_max);
/* Free everything held for the command; ready for the next one. */
void parse_reset(imap_parser *p);
void parse_free(imap_parser *p);
/* Free the tokens but keep the state (after PARSE_ERROR, once the tag has
 * been read, while the rest of the command is skipped). */
void parse_clear(imap_parser *p);

/* Feed bytes. *used says how many were consumed; the caller keeps the rest
 * and feeds them again after handling the result. */
int  parse_feed(imap_parser *p, const char *buf, size_t n, size_t *used);

/* After PARSE_LITERAL: take the literal into memory, or hand it to sink. */
enum { LIT_MEM = 1, LIT_SINK, LIT_SKIP };
void parse_literal_accept(imap_parser *p, int mode, parse_sink sink, void *ctx);
/* After PARSE_LITERAL: refuse it. For a synchronizing literal the client
 * will not send it and the command ends here; for {n+} the bytes are
 * skipped. Returns 1 if the caller must close instead (the literal is
 * non-synchronizing and larger than it is willing to skip). */
int  parse_literal_refuse(imap_parser *p, uint64_t skip_max);

/* Token accessors. */
static inline const char *tok_s(const imap_parser *p, uint32_t i)
{
    return p->arena + p->toks[i].off;
}

/* Nonzero while inside a command (some bytes of it have been seen). */
int  parse_busy(const imap_parser *p);

#endif
