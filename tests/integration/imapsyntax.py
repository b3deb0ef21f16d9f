"""Strict parser for IMAP4rev1 server responses (RFC 3501 section 9).

Every byte a test client receives goes through here, so a response that is
off by one space, carries an 8-bit byte in a quoted string, a zero UID, a
bare LF or an unknown untagged keyword fails the test that provoked it.

    p = Parser(data)            # bytes: one or more whole responses
    r = p.response(greeting=False)
    r.kind      'greeting' | 'cont' | 'untagged' | 'tagged'
    r.tag       tag of a tagged response (str)
    r.name      'OK' 'NO' 'BAD' 'BYE' 'PREAUTH' 'CAPABILITY' 'FLAGS' 'LIST'
                'LSUB' 'SEARCH' 'STATUS' 'EXISTS' 'RECENT' 'EXPUNGE' 'FETCH'
    r.num       the number of EXISTS/RECENT/EXPUNGE/FETCH
    r.code      response code name ('UIDVALIDITY', ...) or None
    r.code_arg  parsed argument of the code (int, list of str, str or None)
    r.text      human-readable text (str)
    r.data      FLAGS: [str]; CAPABILITY: [str]; SEARCH: [int];
                LIST/LSUB: (flags [str], delimiter str|None, name str);
                STATUS: (name str, {ATT: int});
                FETCH: {ATT: value}, see msg_att()
    r.raw       the bytes of the whole response

Semantics that the grammar itself states are checked too: number ranges
(32-bit, nz-number not zero), only the system flags may start with a
backslash (flag-extension "MUST NOT" be generated), one selectability flag
per LIST response.
"""

import re

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SYSTEM_FLAGS = {"\\ANSWERED", "\\FLAGGED", "\\DELETED", "\\SEEN", "\\DRAFT"}
# LIST attributes a server may send: RFC 3501 plus the CHILDREN (RFC 3348)
# and SPECIAL-USE / LIST-EXTENDED ones later issues may add.
LIST_OFLAGS = {"\\NOINFERIORS", "\\HASCHILDREN", "\\HASNOCHILDREN",
               "\\NONEXISTENT", "\\SUBSCRIBED", "\\REMOTE",
               "\\ALL", "\\ARCHIVE", "\\DRAFTS", "\\FLAGGED", "\\JUNK",
               "\\SENT", "\\TRASH"}
LIST_SFLAGS = {"\\NOSELECT", "\\MARKED", "\\UNMARKED"}
STATUS_ATTS = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN",
               "HIGHESTMODSEQ", "SIZE", "APPENDLIMIT",   # RFC 7162, 8438, 7889
               "DELETED"}                                # RFC 9051

ATOM_SPECIALS = set(b'(){ %*"\\]')


def is_atom_char(c):
    return 0x20 < c < 0x7F and c not in ATOM_SPECIALS


def is_astring_char(c):
    return is_atom_char(c) or c == ord("]")


class ImapSyntaxError(AssertionError):
    pass


class Response:
    def __init__(self):
        self.kind = None
        self.tag = None
        self.name = None
        self.num = None
        self.code = None
        self.code_arg = None
        self.text = None
        self.data = None
        self.modseq = None      # SEARCH ... (MODSEQ n)
        self.earlier = False    # VANISHED (EARLIER)
        self.raw = b""

    def __repr__(self):
        return "Response(%r)" % (self.raw[:200],)

    @property
    def line(self):
        """The response as str, literals included, CRLF stripped (for messages)."""
        s = self.raw.decode("latin-1").rstrip("\r\n")
        return s if len(s) < 300 else s[:300] + "[...%d bytes]" % len(s)


class Parser:
    def __init__(self, data, pos=0, utf8_names=False):
        self.b = bytes(data)
        self.pos = pos
        # After ENABLE IMAP4rev2 or UTF8=ACCEPT mailbox names are UTF-8
        # (RFC 9051 5.1, RFC 6855 3) instead of modified UTF-7.
        self.utf8_names = utf8_names

    # ---- low level ----
    def fail(self, what):
        start = max(0, self.pos - 60)
        ctx = self.b[start:self.pos] + b"<<HERE>>" + self.b[self.pos:self.pos + 60]
        raise ImapSyntaxError("RFC 3501 syntax: expected %s at offset %d: %r"
                              % (what, self.pos, ctx))

    def peek(self, n=1):
        return self.b[self.pos:self.pos + n]

    def at_end(self):
        return self.pos >= len(self.b)

    def lit(self, s, ci=True):
        """Consume the exact token s (case-insensitively) or fail."""
        if not self.try_lit(s, ci):
            self.fail(repr(s))

    def try_lit(self, s, ci=True):
        if isinstance(s, str):
            s = s.encode()
        got = self.b[self.pos:self.pos + len(s)]
        if (got.upper() == s.upper()) if ci else (got == s):
            self.pos += len(s)
            return True
        return False

    def sp(self):
        self.lit(b" ")

    def crlf(self):
        if self.peek(2) != b"\r\n":
            self.fail("CRLF")
        self.pos += 2

    def number(self, nz=False):
        m = re.compile(rb"[0-9]+").match(self.b, self.pos)
        if not m:
            self.fail("number")
        s = m.group()
        if nz and (s[0:1] == b"0"):
            self.fail("nz-number (no zero, no leading zero)")
        v = int(s)
        if v >= 1 << 32:
            self.fail("32-bit number")
        self.pos = m.end()
        return v

    def atom(self, extra=b""):
        start = self.pos
        while self.pos < len(self.b) and (is_atom_char(self.b[self.pos])
                                          or self.b[self.pos] in extra):
            self.pos += 1
        if self.pos == start:
            self.fail("atom")
        return self.b[start:self.pos].decode("ascii")

    def quoted(self):
        self.lit(b'"')
        out = bytearray()
        while True:
            if self.at_end():
                self.fail("closing quote")
            c = self.b[self.pos]
            if c == 0x22:
                self.pos += 1
                return bytes(out)
            if c == 0x5C:
                nxt = self.b[self.pos + 1:self.pos + 2]
                if nxt not in (b'"', b"\\"):
                    self.fail('quoted-special after "\\"')
                out += nxt
                self.pos += 2
                continue
            if c in (0x0D, 0x0A) or c == 0 or c > 0x7F:
                self.fail("TEXT-CHAR in quoted string (8-bit, CR, LF and NUL "
                          "need a literal)")
            out.append(c)
            self.pos += 1

    def literal(self):
        self.lit(b"{")
        n = self.number()
        if self.peek() == b"+":
            self.fail("'}' (a server never sends a LITERAL+ literal)")
        self.lit(b"}")
        self.crlf()
        if self.pos + n > len(self.b):
            self.fail("%d literal bytes (only %d left)" % (n, len(self.b) - self.pos))
        data = self.b[self.pos:self.pos + n]
        if b"\x00" in data:
            self.fail("CHAR8 (NUL in literal)")
        self.pos += n
        return data

    def literal8(self):
        """literal8 = "~{" number64 "}" CRLF *OCTET (RFC 3516, 9051): the
        only string that may carry NUL."""
        self.lit(b"~{")
        n = self.number64()
        self.lit(b"}")
        self.crlf()
        if self.pos + n > len(self.b):
            self.fail("%d literal8 bytes (only %d left)" % (n, len(self.b) - self.pos))
        data = self.b[self.pos:self.pos + n]
        self.pos += n
        return data

    def string(self):
        c = self.peek()
        if c == b'"':
            return self.quoted()
        if c == b"{":
            return self.literal()
        self.fail("string")

    def nstring(self):
        if self.try_lit(b"NIL"):
            return None
        return self.string()

    def astring(self):
        c = self.peek()
        if c in (b'"', b"{"):
            return self.string()
        start = self.pos
        while self.pos < len(self.b) and is_astring_char(self.b[self.pos]):
            self.pos += 1
        if self.pos == start:
            self.fail("astring")
        return self.b[start:self.pos]

    def text(self, allow_empty=False):
        start = self.pos
        while self.pos < len(self.b) and self.b[self.pos] not in (0x0D, 0x0A):
            c = self.b[self.pos]
            if c == 0 or c > 0x7F:
                self.fail("TEXT-CHAR (7-bit, no NUL)")
            self.pos += 1
        if self.pos == start and not allow_empty:
            self.fail("text (resp-text needs at least one character)")
        return self.b[start:self.pos].decode("ascii")

    # ---- flags ----
    def flag(self, allow_recent=False, allow_star=False):
        if self.peek() == b"\\":
            self.pos += 1
            if allow_star and self.try_lit(b"*"):
                return "\\*"
            name = "\\" + self.atom()
            up = name.upper()
            if up in SYSTEM_FLAGS or (allow_recent and up == "\\RECENT"):
                return name
            self.fail("system flag (a server must not generate flag-extension %s)" % name)
        return self.atom()

    def flag_list(self, **kw):
        self.lit(b"(")
        flags = []
        if self.peek() != b")":
            flags.append(self.flag(**kw))
            while self.try_lit(b" "):
                flags.append(self.flag(**kw))
        self.lit(b")")
        return flags

    # ---- dates ----
    def date_time(self):
        m = re.compile(rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) '
                       rb'([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{4})"').match(
                           self.b, self.pos)
        if not m:
            self.fail('date-time "dd-Mon-yyyy hh:mm:ss +zzzz"')
        if m.group(2).decode().capitalize() not in MONTHS:
            self.fail("date-month")
        day = int(m.group(1))
        hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6))
        if not (1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61):
            self.fail("a real date and time")
        self.pos = m.end()
        return m.group(0)[1:-1].decode()

    # ---- response codes ----
    def resp_text(self):
        """resp-text = ["[" resp-text-code "]" SP] text  -> (code, arg, text)"""
        code, arg = None, None
        if self.peek() == b"[":
            self.pos += 1
            code = self.atom().upper()
            if code in ("ALERT", "PARSE", "READ-ONLY", "READ-WRITE", "TRYCREATE"):
                pass
            elif code == "BADCHARSET":
                if self.try_lit(b" "):
                    self.lit(b"(")
                    arg = [self.astring()]
                    while self.try_lit(b" "):
                        arg.append(self.astring())
                    self.lit(b")")
            elif code == "CAPABILITY":
                arg = self.capability_data()
            elif code == "PERMANENTFLAGS":
                self.sp()
                arg = self.flag_list(allow_star=True)
            elif code in ("UIDNEXT", "UIDVALIDITY", "UNSEEN"):
                self.sp()
                arg = self.number(nz=True)
            elif code == "APPENDUID":        # RFC 4315 (UIDPLUS)
                self.sp()
                arg = [self.number(nz=True)]
                self.sp()
                arg.append(self.uid_set())
            elif code == "COPYUID":
                self.sp()
                arg = [self.number(nz=True)]
                self.sp()
                arg.append(self.uid_set())
                self.sp()
                arg.append(self.uid_set())
            else:
                if self.try_lit(b" "):
                    start = self.pos
                    while (self.pos < len(self.b)
                           and self.b[self.pos] not in (0x0D, 0x0A, ord("]"))):
                        if self.b[self.pos] > 0x7F or self.b[self.pos] == 0:
                            self.fail("TEXT-CHAR in response code")
                        self.pos += 1
                    if self.pos == start:
                        self.fail("response code argument")
                    arg = self.b[start:self.pos].decode()
            self.lit(b"]")
            self.sp()
        return code, arg, self.text()

    def number64(self, nz=False):
        """mod-sequence-value: up to 63 bits (RFC 7162)."""
        m = re.compile(rb"[0-9]+").match(self.b, self.pos)
        if not m:
            self.fail("number")
        v = int(m.group())
        if v >= 1 << 63 or (nz and v == 0):
            self.fail("63-bit %snumber" % ("non-zero " if nz else ""))
        self.pos = m.end()
        return v

    def seq_set(self):
        """sequence-set without "*" as a server sends it (ESEARCH ALL)."""
        return self.uid_set()

    def uid_set(self):
        """uid-set = (uniqueid / uid-range) *("," uid-set); no "*"."""
        start = self.pos
        while True:
            self.number(nz=True)
            if self.try_lit(b":"):
                self.number(nz=True)
            if not self.try_lit(b","):
                break
        return self.b[start:self.pos].decode()

    def capability_data(self):
        """After "CAPABILITY": *(SP capability) with IMAP4rev1 among them."""
        caps = []
        while self.try_lit(b" "):
            caps.append(self.atom())
        if "IMAP4REV1" not in [c.upper() for c in caps]:
            self.fail("IMAP4rev1 in the capability list")
        return caps

    # ---- FETCH ----
    def section(self):
        """section = "[" [section-spec] "]"; returns the spec text, upper-cased."""
        self.lit(b"[")
        start = self.pos
        if self.peek() != b"]":
            if self.peek().isdigit():
                self.number(nz=True)
                while self.peek() == b"." and self.b[self.pos + 1:self.pos + 2].isdigit():
                    self.pos += 1
                    self.number(nz=True)
                if self.try_lit(b"."):
                    if not self.try_lit(b"MIME"):
                        self.section_msgtext()
            else:
                self.section_msgtext()
        spec = self.b[start:self.pos].decode("latin-1").upper()
        self.lit(b"]")
        return spec

    def section_msgtext(self):
        if self.try_lit(b"HEADER.FIELDS"):
            self.try_lit(b".NOT")
            self.sp()
            self.lit(b"(")
            self.astring()
            while self.try_lit(b" "):
                self.astring()
            self.lit(b")")
        elif self.try_lit(b"HEADER") or self.try_lit(b"TEXT"):
            pass
        else:
            self.fail("section-msgtext")

    def address_list(self):
        if self.try_lit(b"NIL"):
            return None
        self.lit(b"(")
        out = []
        while self.peek() == b"(":
            self.pos += 1
            a = [self.nstring()]
            for _ in range(3):
                self.sp()
                a.append(self.nstring())
            self.lit(b")")
            out.append(tuple(a))
        if not out:
            self.fail("address")
        self.lit(b")")
        return out

    def envelope(self):
        self.lit(b"(")
        date = self.nstring()
        self.sp()
        subj = self.nstring()
        addrs = []
        for _ in range(6):
            self.sp()
            addrs.append(self.address_list())
        self.sp()
        irt = self.nstring()
        self.sp()
        mid = self.nstring()
        self.lit(b")")
        return (date, subj, *addrs, irt, mid)

    def sexp(self):
        """A body structure, checked only for its lexical shape: lists of
        nstring / number. (BODYSTRUCTURE's own issue can tighten this.)"""
        if self.try_lit(b"("):
            items = [self.sexp()]
            # body-type-mpart = 1*body SP media-subtype: the parts of a
            # multipart follow each other without a space.
            while self.try_lit(b" ") or (isinstance(items[-1], list) and self.peek() == b"("):
                items.append(self.sexp())
            self.lit(b")")
            return items
        if self.peek().isdigit():
            return self.number()
        return self.nstring()

    # ---- body structure, strictly per the grammar ----
    def body(self, ext):
        """body = "(" (body-type-1part / body-type-mpart) ")". ext: extension
        data allowed (BODYSTRUCTURE) or not (BODY)."""
        self.lit(b"(")
        if self.peek() == b"(":
            self.body(ext)
            while self.peek() == b"(":
                self.body(ext)
            self.sp()
            self.string()                       # media-subtype
            if self.try_lit(b" "):
                if not ext:
                    self.fail("no extension data in a non-extensible BODY")
                self.body_fld_param()
                self.body_ext_tail()
        else:
            mtype = self.string().upper()
            self.sp()
            sub = self.string().upper()
            self.sp()
            self.body_fields()
            if mtype == b"MESSAGE" and sub == b"RFC822":
                self.sp()
                self.envelope()
                self.sp()
                self.body(ext)
                self.sp()
                self.number()
            elif mtype == b"TEXT":
                self.sp()
                self.number()
            if self.try_lit(b" "):
                if not ext:
                    self.fail("no extension data in a non-extensible BODY")
                self.nstring()                  # body-fld-md5
                self.body_ext_tail()
        self.lit(b")")

    def body_ext_tail(self):
        """[SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc *(SP ext)]]]"""
        if not self.try_lit(b" "):
            return
        if not self.try_lit(b"NIL"):            # body-fld-dsp
            self.lit(b"(")
            self.string()
            self.sp()
            self.body_fld_param()
            self.lit(b")")
        if not self.try_lit(b" "):
            return
        if self.peek() == b"(":                 # body-fld-lang
            self.pos += 1
            self.string()
            while self.try_lit(b" "):
                self.string()
            self.lit(b")")
        else:
            self.nstring()
        if not self.try_lit(b" "):
            return
        self.nstring()                          # body-fld-loc
        while self.try_lit(b" "):
            self.body_extension()

    def body_extension(self):
        if self.try_lit(b"("):
            self.body_extension()
            while self.try_lit(b" "):
                self.body_extension()
            self.lit(b")")
        elif self.peek().isdigit():
            self.number()
        else:
            self.nstring()

    def body_fields(self):
        self.body_fld_param()
        self.sp()
        self.nstring()                          # body-fld-id
        self.sp()
        self.nstring()                          # body-fld-desc
        self.sp()
        self.string()                           # body-fld-enc
        self.sp()
        self.number()                           # body-fld-octets

    def body_fld_param(self):
        if self.try_lit(b"NIL"):
            return
        self.lit(b"(")
        self.string()
        self.sp()
        self.string()
        while self.try_lit(b" "):
            self.string()
            self.sp()
            self.string()
        self.lit(b")")

    def msg_att(self):
        """msg-att = "(" att *(SP att) ")" -> dict; BODY[...] key keeps its
        section ("BODY[]", "BODY[HEADER]") plus "<origin>" if present."""
        self.lit(b"(")
        out = {}
        while True:
            m = re.compile(rb"[A-Za-z0-9.]+").match(self.b, self.pos)
            if not m:
                self.fail("msg-att name")
            self.pos = m.end()
            name = m.group().decode().upper()
            if name == "FLAGS":
                self.sp()
                val = self.flag_list(allow_recent=True)
            elif name == "UID":
                self.sp()
                val = self.number(nz=True)
            elif name == "INTERNALDATE":
                self.sp()
                val = self.date_time()
            elif name == "RFC822.SIZE":
                self.sp()
                val = self.number()
            elif name == "MODSEQ":               # RFC 7162
                self.sp()
                self.lit(b"(")
                val = self.number64(nz=True)
                self.lit(b")")
            elif name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
                self.sp()
                val = self.nstring()
            elif name == "ENVELOPE":
                self.sp()
                val = self.envelope()
            elif name in ("BODY", "BODYSTRUCTURE") and self.peek() == b" ":
                self.sp()
                start = self.pos
                self.body(ext=(name == "BODYSTRUCTURE"))   # strict check
                self.pos = start
                val = self.sexp()                           # the value
            elif name in ("BINARY", "BINARY.SIZE") and self.peek() == b"[":
                # RFC 3516 / RFC 9051: section-binary = "[" [section-part] "]"
                m = re.compile(rb"\[([1-9][0-9]*(\.[1-9][0-9]*)*)?\]").match(self.b, self.pos)
                if not m:
                    self.fail("section-binary")
                self.pos = m.end()
                name += m.group().decode()
                if name.startswith("BINARY.SIZE"):
                    self.sp()
                    val = self.number()
                else:
                    if self.try_lit(b"<"):
                        name += "<%d>" % self.number()
                        self.lit(b">")
                    self.sp()
                    val = self.literal8() if self.peek() == b"~" else self.nstring()
            elif name == "BODY" and self.peek() == b"[":
                name = "BODY[" + self.section() + "]"
                if self.try_lit(b"<"):
                    name += "<%d>" % self.number()
                    self.lit(b">")
                self.sp()
                val = self.nstring()
            else:
                self.fail("msg-att (got %s)" % name)
            if name in out:
                self.fail("each msg-att once per FETCH response (%s twice)" % name)
            out[name] = val
            if self.try_lit(b")"):
                return out
            self.sp()

    # ---- LIST ----
    def mailbox_list(self):
        self.lit(b"(")
        flags = []
        if self.peek() != b")":
            flags.append(self.flag_ext())
            while self.try_lit(b" "):
                flags.append(self.flag_ext())
        self.lit(b")")
        up = [f.upper() for f in flags]
        if sum(1 for f in up if f in LIST_SFLAGS) > 1:
            self.fail("at most one of \\Noselect \\Marked \\Unmarked")
        for f in up:
            if f not in LIST_SFLAGS and f not in LIST_OFLAGS:
                self.fail("a known mailbox attribute (got %s)" % f)
        self.sp()
        if self.try_lit(b"NIL"):
            delim = None
        else:
            self.lit(b'"')
            c = self.peek()
            if c == b"\\":
                self.pos += 1
                c = self.peek()
                if c not in (b'"', b"\\"):
                    self.fail("quoted-special")
            elif c in (b'"', b"\r", b"\n", b"") or c[0] > 0x7F:
                self.fail("QUOTED-CHAR delimiter")
            self.pos += 1
            delim = c.decode()
            self.lit(b'"')
        self.sp()
        name = self.mailbox()
        if self.try_lit(b" "):               # mbox-list-extended (RFC 5258)
            ext = self.sexp()
            if not isinstance(ext, list):
                self.fail("mbox-list-extended")
        return flags, delim, name

    def flag_ext(self):
        self.lit(b"\\")
        return "\\" + self.atom()

    def mailbox(self):
        name = self.astring()
        try:
            s = name.decode("utf-8" if self.utf8_names else "ascii")
        except UnicodeDecodeError:
            self.fail("UTF-8 mailbox name" if self.utf8_names else "7-bit mailbox name (modified UTF-7)")
        if s.upper() == "INBOX":
            return "INBOX"
        return s

    # ---- whole responses ----
    def response(self, greeting=False):
        r = Response()
        start = self.pos
        if greeting:
            self.lit(b"* ")
            r.kind = "greeting"
            r.name = self.atom().upper()
            if r.name not in ("OK", "PREAUTH", "BYE"):
                self.fail("greeting OK / PREAUTH / BYE")
            self.sp()
            r.code, r.code_arg, r.text = self.resp_text()
        elif self.try_lit(b"+"):
            r.kind = "cont"
            # continue-req = "+" SP (resp-text / base64) CRLF; base64 may be
            # empty, so "+ " CRLF is fine but "+" CRLF is not.
            self.sp()
            m = re.compile(rb"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\r\n").match(
                self.b, self.pos)
            if m:
                r.text = self.b[self.pos:m.end() - 2].decode()
                self.pos = m.end() - 2
            else:
                r.code, r.code_arg, r.text = self.resp_text()
        elif self.try_lit(b"* "):
            r.kind = "untagged"
            self.untagged(r)
        else:
            r.kind = "tagged"
            s = self.pos
            while self.pos < len(self.b) and is_astring_char(self.b[self.pos]) \
                    and self.b[self.pos] != ord("+"):
                self.pos += 1
            if self.pos == s:
                self.fail("tag, '*' or '+'")
            r.tag = self.b[s:self.pos].decode()
            self.sp()
            r.name = self.atom().upper()
            if r.name not in ("OK", "NO", "BAD"):
                self.fail("OK / NO / BAD in a tagged response")
            self.sp()
            r.code, r.code_arg, r.text = self.resp_text()
        self.crlf()
        r.raw = self.b[start:self.pos]
        return r

    def thread_list(self):
        """thread-list = "(" (thread-members / thread-nested) ")"; returns
        [num, num, ..., [nested], [nested]] (RFC 5256 section 5)."""
        self.lit(b"(")
        out = []
        while True:
            if self.peek() == b"(":
                nested = 0
                while self.peek() == b"(":
                    out.append(self.thread_list())
                    nested += 1
                if nested < 2:
                    self.fail("thread-nested needs two or more thread-lists")
                break
            out.append(self.number(nz=True))
            if not self.try_lit(b" "):
                break
        self.lit(b")")
        return out

    def untagged(self, r):
        if self.peek().isdigit():
            r.num = self.number()
            self.sp()
            r.name = self.atom().upper()
            if r.name in ("EXISTS", "RECENT"):
                return
            if r.num == 0:
                self.fail("nz-number before EXPUNGE / FETCH")
            if r.name == "EXPUNGE":
                return
            if r.name == "FETCH":
                self.sp()
                r.data = self.msg_att()
                return
            self.fail("EXISTS / RECENT / EXPUNGE / FETCH (got %s)" % r.name)
        r.name = self.atom().upper()
        if r.name in ("OK", "NO", "BAD", "BYE"):
            self.sp()
            r.code, r.code_arg, r.text = self.resp_text()
        elif r.name == "CAPABILITY":
            r.data = self.capability_data()
        elif r.name == "FLAGS":
            self.sp()
            r.data = self.flag_list()
        elif r.name in ("LIST", "LSUB"):
            self.sp()
            r.data = self.mailbox_list()
        elif r.name == "SEARCH":
            r.data = []
            while self.try_lit(b" "):
                if self.try_lit(b"(MODSEQ "):     # RFC 7162 3.1.5
                    r.modseq = self.number64(nz=True)
                    self.lit(b")")
                    break
                r.data.append(self.number(nz=True))
        elif r.name == "ESEARCH":             # RFC 4731
            r.data = {}
            if self.try_lit(b" (TAG "):
                r.data["TAG"] = self.string().decode()
                self.lit(b")")
            if self.try_lit(b" UID"):
                r.data["UID"] = True
            while self.try_lit(b" "):
                k = self.atom().upper()
                self.sp()
                if k in ("MIN", "MAX", "COUNT"):
                    r.data[k] = self.number(nz=(k != "COUNT"))
                elif k == "MODSEQ":
                    r.data[k] = self.number64(nz=True)
                elif k == "ALL":
                    r.data[k] = self.seq_set()
                else:
                    self.fail("search-return-data (got %s)" % k)
        elif r.name == "VANISHED":            # RFC 7162 3.2.10
            self.sp()
            r.earlier = bool(self.try_lit(b"(EARLIER) "))
            r.data = self.uid_set()
        elif r.name == "QUOTA":               # RFC 9208
            self.sp()
            root = self.astring()
            self.sp()
            self.lit(b"(")
            res = {}
            if self.peek() != b")":
                while True:
                    k = self.atom().upper()
                    self.sp()
                    used = self.number64()
                    self.sp()
                    res[k] = (used, self.number64())
                    if not self.try_lit(b" "):
                        break
            self.lit(b")")
            r.data = (root, res)
        elif r.name == "QUOTAROOT":
            self.sp()
            r.data = [self.mailbox()]
            while self.try_lit(b" "):
                r.data.append(self.astring().decode())
        elif r.name == "STATUS":
            self.sp()
            name = self.mailbox()
            self.sp()
            self.lit(b"(")
            atts = {}
            if self.peek() != b")":
                while True:
                    a = self.atom().upper()
                    if a not in STATUS_ATTS:
                        self.fail("status-att")
                    self.sp()
                    atts[a] = (self.number64() if a in ("HIGHESTMODSEQ", "SIZE", "APPENDLIMIT")
                               else self.number())
                    if not self.try_lit(b" "):
                        break
            self.lit(b")")
            r.data = (name, atts)
        elif r.name == "ID":                  # RFC 2971
            self.sp()
            if self.try_lit(b"NIL"):
                r.data = None
            else:
                self.lit(b"(")
                r.data = {}
                while True:
                    k = self.string()
                    self.sp()
                    r.data[k] = self.nstring()
                    if not self.try_lit(b" "):
                        break
                self.lit(b")")
        elif r.name == "NAMESPACE":           # RFC 2342
            r.data = []
            for _ in range(3):
                self.sp()
                if self.try_lit(b"NIL"):
                    r.data.append(None)
                    continue
                v = self.sexp()
                if not isinstance(v, list) or not all(isinstance(x, list) and len(x) >= 2
                                                      for x in v):
                    self.fail("namespace list")
                r.data.append(v)
        elif r.name == "SORT":                # RFC 5256
            r.data = []
            while self.try_lit(b" "):
                r.data.append(self.number(nz=True))
        elif r.name == "THREAD":              # RFC 5256: data is nested lists
            r.data = []
            if self.try_lit(b" "):
                while self.peek() == b"(":
                    r.data.append(self.thread_list())
        elif r.name == "ENABLED":             # RFC 5161
            r.data = []
            while self.try_lit(b" "):
                r.data.append(self.atom())
        else:
            self.fail("an RFC 3501 untagged response (got %s)" % r.name)


def parse_stream(data):
    """Parse a whole server-to-client transcript: greeting, then responses.
    Returns the list of Response objects; raises ImapSyntaxError."""
    p = Parser(data)
    out = []
    if p.at_end():
        return out
    out.append(p.response(greeting=True))
    while not p.at_end():
        out.append(p.response())
    return out


def response_length(buf):
    """Length of the first complete response in buf (following literals),
    or None if buf does not hold a whole one yet. Lexical only; syntax is
    checked by Parser afterwards."""
    pos = 0
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return None
        m = re.search(rb"~?\{([0-9]+)\}\r\n$", buf[pos:nl + 1])
        if not m:
            return nl + 1
        n = int(m.group(1))
        pos = nl + 1 + n
        if pos > len(buf):
            return None
