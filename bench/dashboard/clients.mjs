/*
 * bench/dashboard/clients.mjs: one phase of the dashboard load bench (run
 * by bench/dashboard.sh while jobs flow). Opens N WebSocket clients to the
 * dashboard's /ws, and for SECONDS:
 *  - commits a probe job every PROBE_MS into the queue "probe" (which no
 *    worker serves) and, at every client, notes when the first stats
 *    message whose probe count includes it arrives: commit-to-page latency;
 *  - reads /metrics before and after: qml_dashboard_queries_total, so the
 *    queries per second the dashboard sent to PostgreSQL;
 *  - reads /proc/PID/stat of the dashboard before and after: its CPU;
 *  - counts the dashboard's sessions in pg_stat_activity mid-phase
 *    (application_name "qml dashboard...").
 * Prints one JSON object.
 *
 *   node clients.mjs --url http://127.0.0.1:P --pid PID --clients N
 *        --seconds S [--probe-ms 200] [--database URL]
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import pg from 'pg';

const args = process.argv.slice(2);
const opt = (k, d) => { const i = args.indexOf(k); return i >= 0 ? args[i + 1] : d; };
const base = opt('--url');
const pid = Number(opt('--pid'));
const nclients = Number(opt('--clients', '1'));
const seconds = Number(opt('--seconds', '20'));
const probeMs = Number(opt('--probe-ms', '200'));
const database = opt('--database', process.env.DATABASE_URL);

const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
function cpuTicks() {
	const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
	const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
	return Number(f[11]) + Number(f[12]);		/* utime + stime */
}
async function queriesTotal() {
	const text = await (await fetch(`${base}/metrics`)).text();
	const m = /^qml_dashboard_queries_total(?:\{[^}]*\})?\s+([0-9.e+]+)/m.exec(text);
	return m ? Number(m[1]) : NaN;
}
const pct = (xs, p) => {
	if (!xs.length) return null;
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)];
};

const db = new pg.Client({ connectionString: database, application_name: 'qml-dashboard-bench' });
await db.connect();
const probeCount = async () => Number((await db.query(
	"SELECT count(*) FROM qml.jobs WHERE queue = 'probe' AND state = 'enqueued'")).rows[0].count);

/* clients: each keeps the probe count of its last stats message */
const wsUrl = base.replace(/^http/, 'ws') + '/ws';
const clients = [];
let messages = 0;
let bytes = 0;
const waiting = [];			/* [{want, t, seen: Set}] probes not yet seen by all */
const latencies = [];
let lastTotals = null;
function onStats(ci, data) {
	const q = (data.queues || []).find((x) => x.queue === 'probe');
	const n = q ? q.enqueued : 0;
	const t = performance.now();
	for (const p of waiting) {
		if (!p.seen.has(ci) && n >= p.want) {
			p.seen.add(ci);
			latencies.push(t - p.t);
		}
	}
	if (ci === 0) lastTotals = { at: t, totals: data.totals };
}
await Promise.all(Array.from({ length: nclients }, (_, ci) => new Promise((resolve, reject) => {
	const ws = new WebSocket(wsUrl);
	ws.on('open', resolve);
	ws.on('error', reject);
	ws.on('message', (buf) => {
		messages++;
		bytes += buf.length;
		let msg;
		try { msg = JSON.parse(buf); } catch (e) { return; }
		if (msg.type === 'stats') onStats(ci, msg.data);
	});
	clients.push(ws);
})));
await new Promise((r) => setTimeout(r, 1000));	/* settle: first messages in */

let count = await probeCount();
const q0 = await queriesTotal();
const c0 = cpuTicks();
messages = 0;
bytes = 0;
const t0 = performance.now();
const firstTotals = lastTotals;
let sessions = null;			/* the dashboard's sessions, mid-phase */
const sendProbe = async () => {
	await db.query("SELECT qml.enqueue('probe', '[]', 'probe')");
	count++;
	waiting.push({ want: count, t: performance.now(), seen: new Set() });
};
while (performance.now() - t0 < seconds * 1000) {
	const next = performance.now() + probeMs;
	await sendProbe();
	if (!sessions && performance.now() - t0 > seconds * 500)
		sessions = (await db.query(`SELECT count(*) FROM pg_stat_activity
			WHERE application_name LIKE 'qml dashboard%' AND pid <> pg_backend_pid()`)).rows[0].count;
	/* forget probes every client has seen */
	while (waiting.length && waiting[0].seen.size === nclients) waiting.shift();
	await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
}
await new Promise((r) => setTimeout(r, 2000));	/* the last probes arrive */
const t1 = performance.now();
const c1 = cpuTicks();
const q1 = await queriesTotal();
const elapsed = (t1 - t0) / 1000;
const unseen = waiting.reduce((s, p) => s + (nclients - p.seen.size), 0);
const flowed = firstTotals && lastTotals
	? ((lastTotals.totals.succeeded + lastTotals.totals.failed) - (firstTotals.totals.succeeded + firstTotals.totals.failed))
		/ ((lastTotals.at - firstTotals.at) / 1000)
	: null;
for (const ws of clients) ws.terminate();
await db.end();
console.log(JSON.stringify({
	clients: nclients,
	seconds: Number(elapsed.toFixed(1)),
	queries_per_second: Number(((q1 - q0) / elapsed).toFixed(2)),
	cpu_percent: Number(((c1 - c0) / hz / elapsed * 100).toFixed(1)),
	messages_per_second: Number((messages / elapsed).toFixed(1)),
	dashboard_sessions: sessions === null ? null : Number(sessions),
	kib_per_second: Number((bytes / 1024 / elapsed).toFixed(1)),
	jobs_per_second: flowed === null ? null : Math.round(flowed),
	latency_ms: {
		samples: latencies.length,
		unseen,
		p50: Math.round(pct(latencies, 50)),
		p99: Math.round(pct(latencies, 99)),
		max: Math.round(pct(latencies, 100)),
	},
}));
