/*
 * sort.h -- SORT and THREAD (RFC 5256).
 *
 * Both work on keys only: for every message the search selected, the few
 * header values the request needs are taken from the cached header-only
 * MIME tree (mime_tree_get) and cut to the limits below; no message is
 * ever held in memory. THREAD=REFERENCES reads each message's References
 * field once, links it into the thread forest at once (RFC 5256 3, step
 * 1 is incremental in mailbox order) and forgets it.
 *
 * The pure parts (base subject, dates, threading over a list of keys) are
 * public so the unit tests can run the RFC's rules without a store.
 */
#ifndef SORT_H
#define SORT_H

#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* A sort key kept per message (subject, address mailbox) is cut to this
 * many bytes: two subjects equal that far sort by the next criterion. 256
 * bytes is longer than any subject a mail client shows, and bounds memory
 * at a few hundred bytes a message even for hostile mail. */
#define SORT_KEY_MAX 256
/* References bytes read per message; longer fields keep their tail,
 * where the closest ancestors are (RFC 5322 3.6.4 asks senders to trim
 * the middle, so real fields stay far below this). */
#define SORT_REFS_MAX 8192
/* A Message-ID longer than this is treated as invalid (the message gets a
 * unique id). RFC 5322 lines are at most 998 bytes. */
#define SORT_ID_MAX 998

/* RFC 5256 2.1: the base subject of a raw Subject value (RFC 2047 words
 * decoded to UTF-8, ASCII and Latin-1 letters folded to lower case) is
 * appended to out. Returns 1 if the subject marks a reply or forward
 * (a "re:"/"fw:"/"fwd:" leader, a "(fwd)" trailer or a "[fwd: ...]"
 * wrapper was removed), 0 otherwise. */
int sort_base_subject(const char *s, size_t n, dbuf *out);

/* RFC 5322 date-time ("[Day,] d Mon yyyy hh:mm[:ss] zone", obsolete forms
 * tolerated) to seconds since the epoch, UTC. 0, or -1 if unparseable. */
int sort_parse_date(const char *s, size_t n, int64_t *t);

/* i;ascii-casemap (RFC 4790): octets compared after ASCII upper-casing. */
int sort_casemap_cmp(const char *a, size_t an, const char *b, size_t bn);

/* The mailbox (local part) of the first address of an RFC 5322 address
 * list, appended to out (nothing if there is none). */
void sort_addr_mailbox(const char *s, size_t n, dbuf *out);

/* ---- threading over keys ---- */
enum { SORT_THREAD_ORDEREDSUBJECT = 1, SORT_THREAD_REFERENCES = 2 };

typedef struct sort_threader sort_threader;

sort_threader *sort_threader_new(int algo);
/* Add the next message, in mailbox order. num is what is printed
 * (sequence number or UID); date is the sent date (caller falls back to
 * INTERNALDATE); the header values are raw and may be NULL. refs and irt
 * are used by REFERENCES only. Returns 0 or -1 (no memory). */
int  sort_threader_add(sort_threader *t, uint32_t num, int64_t date,
                       const char *subject, size_t sl, const char *msgid, size_t il,
                       const char *refs, size_t rl, const char *irt, size_t irl);
/* Finish: append the thread list ("(1 2)(3 (4)(5))") to out. 0 or -1. */
int  sort_threader_finish(sort_threader *t, dbuf *out);
void sort_threader_free(sort_threader *t);

/* ---- the commands (need a selected mailbox) ---- */
struct imap_conn;
struct args;
void cmd_sort(struct imap_conn *c, struct args *a, int uid);
void cmd_thread(struct imap_conn *c, struct args *a, int uid);

#endif
