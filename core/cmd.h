/* cmd.h -- helpers shared by the command handlers (cmd.c, fetch.c,
 * search.c): an argument cursor over the parsed tokens, sequence sets,
 * and mailbox names. */
#ifndef CMD_H
#define CMD_H

#include "imap.h"
#include "view.h"

/* A cursor over the tokens of the command being run. */
typedef struct args {
    imap_conn *c;
    uint32_t   i;      /* next token */
    uint32_t   n;      /* number of tokens */
} args;

const tok  *arg_peek(args *a);
const char *arg_str(args *a, uint32_t i);
/* An atom (not quoted, not a literal). */
int  arg_atom(args *a, const char **s, uint32_t *len);
/* An astring: atom, quoted string or literal. */
int  arg_astring(args *a, const char **s, uint32_t *len);
/* "(" -- 0 if the next token opens a list. */
int  arg_lparen(args *a);
int  arg_rparen(args *a);
int  arg_end(args *a);          /* 0 if no tokens remain */
int  arg_is_nil(args *a);

/* A sequence set, parsed against a maximum for "*". */
typedef struct seqset {
    uint32_t (*r)[2];   /* inclusive ranges, lo <= hi */
    uint32_t  n;
    int       dollar;   /* "$" (SEARCHRES) -- unsupported yet */
} seqset;
int  seqset_parse(seqset *set, const char *s, uint32_t len, uint32_t star);
int  seqset_has(const seqset *set, uint32_t v);
void seqset_free(seqset *set);

/* Turn a client's mailbox name into the store's (INBOX in any case becomes
 * "INBOX", trailing separator removed). Checks modified UTF-7 and refuses
 * names that could leave the user's folder. Returns a malloc'd name or NULL
 * with *why set. */
char *mailbox_name(const char *s, uint32_t len, const char **why);
/* UTF8=ACCEPT: a UTF-8 name to the stored modified UTF-7 form (NULL if not
 * well-formed UTF-8), and back for output. Both malloc'd. */
char *mailbox_utf8_to_mutf7(const char *s, size_t n);
char *mailbox_mutf7_to_utf8(const char *s);
/* The name argument as this connection sends it (UTF-8 after ENABLE
 * UTF8=ACCEPT, else modified UTF-7), validated, in stored form. */
char *mailbox_name_in(imap_conn *c, const char *s, uint32_t len, const char **why);

/* Convert a store error to a tagged NO with a fitting response code. */
void reply_st_err(imap_conn *c, int err, const char *what);

/* fetch.c */
void cmd_fetch(imap_conn *c, args *a, int uid);
void fetch_job_free(imap_conn *c);
/* search.c */
void cmd_search(imap_conn *c, args *a, int uid);
/* Parse SEARCH criteria only (for the fuzzer); 0 if valid. */
int  search_parse_check(imap_conn *c, args *a);
/* SORT/THREAD criteria after their charset: match[i] = 1 for each msg[]
 * index that matches. 0, -1 (BAD, *why) or -2 (unsupported charset). */
int  search_match(imap_conn *c, args *a, const char *charset, uint8_t *match, const char **why);
/* flags: parse "\Seen" etc. Returns 0 and sets flags and kw. */
int  parse_flag_list(imap_conn *c, args *a, st_box *box, uint8_t *flags, uint64_t *kw, int create_kw);

#endif
