// imapflow_check.js -- drive imapflow against picoimapd for
// tests/integration/test_clients_imapflow.py; prints one JSON object.
//
//   node imapflow_check.js basic  HOST PORT
//       login, list, fetch INBOX envelopes, then IDLE while a second
//       client appends: {list, subjects, idleMs, idleCount, caps}
//   node imapflow_check.js state  HOST PORT
//       open INBOX with QRESYNC enabled: {uidValidity, highestModseq, uids, enabled}
//   node imapflow_check.js resync HOST PORT UIDVALIDITY MODSEQ
//       SELECT INBOX (QRESYNC (UIDVALIDITY MODSEQ)): {vanished, changed, qresync}
'use strict';

const { ImapFlow } = require('imapflow');

const [mode, host, port, a1, a2] = process.argv.slice(2);

function client(extra) {
    return new ImapFlow(Object.assign({
        host, port: Number(port), secure: false, logger: false,
        auth: { user: 'demo', pass: 'demo' },
        disableAutoIdle: true,
        connectionTimeout: 10000
    }, extra || {}));
}

function withTimeout(p, ms, what) {
    return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(what + ' timed out')), ms))]);
}

async function basic() {
    const c = client();
    await c.connect();
    const caps = Array.from(c.capabilities.keys());
    const list = (await c.list()).map(m => m.path).sort();
    await c.mailboxOpen('INBOX');
    const subjects = [];
    for await (const m of c.fetch('1:*', { envelope: true, uid: true, flags: true })) {
        subjects.push(m.envelope.subject);
    }
    // IDLE, then another client appends.
    let sawExists;
    const exists = new Promise(res => { sawExists = res; });
    c.on('exists', ev => sawExists(ev));
    const idle = c.idle();
    for (let i = 0; i < 200 && !c.idling; i++) {
        await new Promise(r => setTimeout(r, 10));
    }
    await new Promise(r => setTimeout(r, 100));   // the IDLE command reaches the server
    const other = client();
    await other.connect();
    const raw = 'From: a@b\r\nTo: demo@x\r\nSubject: pushed\r\nMessage-ID: <pushed@test>\r\n\r\nhi\r\n';
    await other.append('INBOX', raw);
    const t0 = Date.now();
    const ev = await withTimeout(exists, 5000, 'IDLE push');
    const idleMs = Date.now() - t0;
    await other.logout();
    await c.noop();   // ends IDLE
    await idle.catch(() => {});
    await c.logout();
    return { caps, list, subjects, idleMs, idleCount: ev.count };
}

async function state() {
    const c = client({ qresync: true });
    await c.connect();
    const mb = await c.mailboxOpen('INBOX');
    const uids = [];
    for await (const m of c.fetch('1:*', { uid: true })) {
        uids.push(m.uid);
    }
    const out = {
        uidValidity: String(mb.uidValidity),
        highestModseq: mb.highestModseq ? String(mb.highestModseq) : null,
        uids,
        enabled: Array.from(c.enabled || [])
    };
    await c.logout();
    return out;
}

async function resync(uidValidity, modseq) {
    const vanished = [], changed = [];
    const c = client({ qresync: true });
    c.on('expunge', ev => { if (ev.vanished) { vanished.push(Number(ev.uid)); } });
    c.on('flags', ev => changed.push({ uid: Number(ev.uid), flags: Array.from(ev.flags).sort() }));
    await c.connect();
    const mb = await c.mailboxOpen('INBOX', { uidValidity: BigInt(uidValidity), changedSince: BigInt(modseq) });
    const out = { vanished: vanished.sort((x, y) => x - y), changed, qresync: !!mb.qresync,
                  enabled: Array.from(c.enabled || []) };
    await c.logout();
    return out;
}

(async () => {
    let r;
    if (mode === 'basic') {
        r = await basic();
    } else if (mode === 'state') {
        r = await state();
    } else if (mode === 'resync') {
        r = await resync(a1, a2);
    } else {
        throw new Error('unknown mode ' + mode);
    }
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
})().catch(err => {
    process.stderr.write('imapflow_check: ' + (err && err.stack || err) + '\n');
    process.exit(1);
});
