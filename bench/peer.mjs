// bench/peer.mjs: case 9 of the benchmark, the peer. One round of
// graphile-worker (installed by bench/run.sh into bench/.peer/, from where
// this file is run) next to qml on the same cluster, both driven from this
// Node process with the same driver (pg):
//
//   bulk add:    PEER_JOBS jobs in one call (graphile addJobs, qml.enqueue_batch)
//   single add:  one job per call, one connection, sequentially
//   drain:       PEER_JOBS waiting no-op jobs run at each concurrency, graphile
//                in its default mode and batched mode (local queue + batched
//                completion), qml as the same number of connections looping
//                fetch + complete_batch (batch 1 beside default, 10 and 100
//                beside batched); every clock stops when the last job is
//                completed in the database (graphile's also at its last
//                handler, the clock this case had before)
//   wake:        idle workers, one job at a time: from the add call's return
//                (the commit) to the handler's start, for graphile, qml with
//                LISTEN + fetch, qml with fetch(wait => ...), and a raw
//                INSERT + NOTIFY with LISTEN + SKIP LOCKED claim
//
// Prints "RESULT <key> <value> <unit>" lines on stdout; progress on stderr.
// Environment: PEER_URL (graphile's database), QML_URL (qml's database, which
// also holds the raw table "jobs"), PEER_JOBS, PEER_CONCURRENCY ("10 24"),
// PEER_WAKE_SAMPLES.
import pg from "pg";
import { run, makeWorkerUtils, Logger } from "graphile-worker";

const env = process.env;
const peerUrl = env.PEER_URL;
const qmlUrl = env.QML_URL;
const JOBS = Number(env.PEER_JOBS || 20000);
const CONCS = (env.PEER_CONCURRENCY || "10 24").trim().split(/\s+/).map(Number);
const WAKE = Number(env.PEER_WAKE_SAMPLES || 200);
const SINGLE = Number(env.PEER_SINGLE_ADDS || 1000);

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const note = (s) => process.stderr.write(`      ${s}\n`);
const result = (key, value, unit) =>
	process.stdout.write(`RESULT ${key} ${value.toFixed(unit === "ms" ? 3 : 0)} ${unit}\n`);

// graphile's own logging, errors only
const quiet = new Logger(() => (level, message) => {
	if (level === "error") process.stderr.write(`graphile-worker: ${message}\n`);
});

function pct(xs, p) {
	const s = [...xs].sort((a, b) => a - b);
	return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function wakeResults(key, lat) {
	result(`${key}_p50`, pct(lat, 50), "ms");
	result(`${key}_p99`, pct(lat, 99), "ms");
	result(`${key}_max`, Math.max(...lat), "ms");
	note(`${key}: p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms, max ${Math.max(...lat).toFixed(2)} ms (${lat.length} samples)`);
}

// one job at a time into idle workers: produce(i) adds job i and resolves at
// its commit; the workers call started(i) when a handler starts
async function wakeLoop(produce, startedMap) {
	const lat = [];
	for (let i = 0; i < WAKE; i++) {
		await sleep(5 + Math.random() * 10);	// workers are idle again
		const seen = new Promise((r) => startedMap.set(i, r));
		await produce(i);
		const tc = now();
		const ts = await seen;
		lat.push(Math.max(0, ts - tc));
	}
	return lat;
}

// ---------------------------------------------------------------- graphile

const gwPreset = (conc, batched) => ({
	worker: batched
		? { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
		: {},
});

// Runs `count` waiting jobs; returns { done, handlers } in jobs/s. The clock
// stops at done when runner.stop() has returned, i.e. once graphile has
// committed the completions its batching still held, as every qml side's
// clock stops only when its jobs are completed in the database; handlers
// stops at the last handler's start (this case's clock until 2026-12-07).
// The table is vacuumed and analyzed first, as bench/runtime does for qml.
async function gwDrain(conc, batched, count = JOBS) {
	let done = 0;
	let finish;
	const all = new Promise((r) => (finish = r));
	const vacuum = new pg.Client({ connectionString: peerUrl });
	await vacuum.connect();
	await vacuum.query("VACUUM ANALYZE");
	await vacuum.end();
	const t0 = now();
	const runner = await run({
		connectionString: peerUrl,
		concurrency: conc,
		maxPoolSize: conc + 1,
		noHandleSignals: true,
		pollInterval: 1000,
		logger: quiet,
		preset: gwPreset(conc, batched),
		taskList: { noop: async () => { if (++done === count) finish(); } },
	});
	await all;
	const handlers = now() - t0;
	await runner.stop();
	const t = now() - t0;
	return { done: (count * 1000) / t, handlers: (count * 1000) / handlers };
}

async function graphile() {
	const utils = await makeWorkerUtils({ connectionString: peerUrl, logger: quiet });
	await utils.migrate();
	const specs = Array.from({ length: JOBS }, (_, i) => ({ identifier: "noop", payload: { n: i } }));

	let t0 = now();
	for (let i = 0; i < SINGLE; i++) await utils.addJob("noop", { n: i });
	result("gw_add_single", (SINGLE * 1000) / (now() - t0), "jobs/s");
	await gwDrain(10, true, SINGLE);	// empties the queue again

	for (const conc of CONCS) {
		for (const batched of [false, true]) {
			t0 = now();
			await utils.addJobs(specs);
			const add = (JOBS * 1000) / (now() - t0);
			if (conc === CONCS[0] && !batched) result("gw_add_bulk", add, "jobs/s");
			const rate = await gwDrain(conc, batched);
			const mode = batched ? "batched" : "default";
			result(`gw_c${conc}_${mode}`, rate.done, "jobs/s");
			result(`gw_c${conc}_${mode}_handlers`, rate.handlers, "jobs/s");
			note(`graphile-worker ${mode} c${conc}: ${rate.done.toFixed(0)} jobs/s completed, ` +
				`${rate.handlers.toFixed(0)} to its last handler`);
		}
	}

	// wake latency with 10 idle workers, default mode
	const started = new Map();
	const runner = await run({
		connectionString: peerUrl,
		concurrency: 10,
		maxPoolSize: 11,
		noHandleSignals: true,
		pollInterval: 2000,
		logger: quiet,
		taskList: { lat: async (payload) => { const t = now(); started.get(payload.i)?.(t); } },
	});
	await sleep(300);
	const lat = await wakeLoop((i) => utils.addJob("lat", { i }), started);
	wakeResults("gw_wake", lat);
	await runner.stop();
	await utils.release();
}

// ---------------------------------------------------------------- qml

async function qmlDrain(pool, conc, batch) {
	const t0 = now();
	let done = 0;
	await Promise.all(
		Array.from({ length: conc }, async (_, w) => {
			const c = await pool.connect();
			const name = `peer-${w}`;
			for (;;) {
				const r = await c.query({ name: `f${batch}`, text: "SELECT id FROM qml.fetch($1, '{default}', $2)", values: [name, batch] });
				if (r.rows.length === 0) break;
				// the no-op handlers run here
				await c.query({ name: "cb", text: "SELECT count(*) FROM qml.complete_batch($1::bigint[], $2)", values: [r.rows.map((x) => x.id), name] });
				done += r.rows.length;
			}
			c.release();
		}),
	);
	if (done !== JOBS) note(`qml drain completed ${done} of ${JOBS} jobs`);
	return (done * 1000) / (now() - t0);
}

const qmlBatchJson = () =>
	JSON.stringify(Array.from({ length: JOBS }, (_, i) => ({ method: "noop", arguments: { n: i } })));

async function qml() {
	const pool = new pg.Pool({ connectionString: qmlUrl, max: Math.max(...CONCS) + 2 });
	const c = await pool.connect();
	await c.query("TRUNCATE qml.jobs, qml.job_events_1_1");

	let t0 = now();
	for (let i = 0; i < SINGLE; i++)
		await c.query({ name: "enq", text: "SELECT qml.enqueue('noop', $1)", values: [JSON.stringify({ n: i })] });
	result("qml_add_single", (SINGLE * 1000) / (now() - t0), "jobs/s");
	await c.query("TRUNCATE qml.jobs, qml.job_events_1_1");

	for (const conc of CONCS) {
		for (const batch of [1, 10, 100]) {
			await c.query("TRUNCATE qml.jobs, qml.job_events_1_1");
			const json = qmlBatchJson();
			t0 = now();
			await c.query("SELECT count(*) FROM qml.enqueue_batch($1::jsonb)", [json]);
			const add = (JOBS * 1000) / (now() - t0);
			if (conc === CONCS[0] && batch === 1) result("qml_add_bulk", add, "jobs/s");
			const rate = await qmlDrain(pool, conc, batch);
			result(`qml_c${conc}_b${batch}`, rate, "jobs/s");
			note(`qml fetch ${batch} + complete_batch c${conc}: ${rate.toFixed(0)} jobs/s`);
		}
	}
	await c.query("TRUNCATE qml.jobs, qml.job_events_1_1");
	c.release();

	// wake latency: one idle worker connection, LISTEN + fetch
	{
		const w = new pg.Client({ connectionString: qmlUrl });
		await w.connect();
		const started = new Map();
		let wake = null;
		w.on("notification", () => { if (wake) { const f = wake; wake = null; f(); } });
		await w.query("LISTEN qml");
		let stop = false;
		const loop = (async () => {
			while (!stop) {
				const notified = new Promise((r) => (wake = r));
				const r = await w.query({ name: "f", text: "SELECT id, arguments FROM qml.fetch('peer-w', '{default}', 1)" });
				if (r.rows.length > 0) {
					const t = now();
					started.get(r.rows[0].arguments.i)?.(t);
					await w.query({ name: "c", text: "SELECT qml.complete($1, 'peer-w')", values: [r.rows[0].id] });
					continue;
				}
				await Promise.race([notified, sleep(1000)]);
			}
		})();
		const p = await pool.connect();
		await sleep(100);
		const lat = await wakeLoop(
			(i) => p.query({ name: "e", text: "SELECT qml.enqueue('lat', $1)", values: [JSON.stringify({ i })] }),
			started,
		);
		wakeResults("qml_wake_listen", lat);
		stop = true;
		await p.query("SELECT qml.enqueue('lat', '{\"i\": -1}')");
		await loop;
		p.release();
		await w.end();
	}

	// wake latency: fetch waiting in the server
	{
		const w = new pg.Client({ connectionString: qmlUrl });
		await w.connect();
		const started = new Map();
		let stop = false;
		const loop = (async () => {
			while (!stop) {
				const r = await w.query({ name: "fw", text: "SELECT id, arguments FROM qml.fetch('peer-w', '{default}', 1, wait => '2 seconds')" });
				if (r.rows.length === 0) continue;
				const t = now();
				started.get(r.rows[0].arguments.i)?.(t);
				await w.query({ name: "c", text: "SELECT qml.complete($1, 'peer-w')", values: [r.rows[0].id] });
			}
		})();
		const p = await pool.connect();
		await sleep(100);
		const lat = await wakeLoop(
			(i) => p.query({ name: "e", text: "SELECT qml.enqueue('lat', $1)", values: [JSON.stringify({ i })] }),
			started,
		);
		wakeResults("qml_wake_wait", lat);
		stop = true;
		await p.query("SELECT qml.enqueue('lat', '{\"i\": -1}')");
		await loop;
		p.release();
		await w.end();
	}

	// wake latency of the raw baseline: INSERT + NOTIFY, LISTEN + claim + DELETE
	{
		const w = new pg.Client({ connectionString: qmlUrl });
		await w.connect();
		await w.query("DELETE FROM jobs WHERE queue = 'peer'");
		const started = new Map();
		let wake = null;
		w.on("notification", () => { if (wake) { const f = wake; wake = null; f(); } });
		await w.query("LISTEN jobs_peer");
		let stop = false;
		const claim = `WITH c AS (SELECT id FROM jobs WHERE state = 0 AND queue = 'peer' AND run_at <= now()
		                ORDER BY priority, run_at FOR UPDATE SKIP LOCKED LIMIT 1)
		               UPDATE jobs j SET state = 1, locked_by = 'w', locked_at = now()
		               FROM c WHERE j.id = c.id RETURNING j.id, j.payload`;
		const loop = (async () => {
			while (!stop) {
				const notified = new Promise((r) => (wake = r));
				const r = await w.query({ name: "claim", text: claim });
				if (r.rows.length > 0) {
					const t = now();
					started.get(r.rows[0].payload.i)?.(t);
					await w.query({ name: "del", text: "DELETE FROM jobs WHERE id = $1", values: [r.rows[0].id] });
					continue;
				}
				await Promise.race([notified, sleep(1000)]);
			}
		})();
		const p = await pool.connect();
		await sleep(100);
		const ins = `WITH i AS (INSERT INTO jobs (queue, payload) VALUES ('peer', $1) RETURNING id)
		             SELECT pg_notify('jobs_peer', '') FROM i`;
		const lat = await wakeLoop((i) => p.query({ name: "ri", text: ins, values: [JSON.stringify({ i })] }), started);
		wakeResults("raw_wake", lat);
		stop = true;
		await p.query({ name: "ri", text: ins, values: [JSON.stringify({ i: -1 })] });
		await loop;
		p.release();
		await w.end();
	}
	await pool.end();
}

try {
	await graphile();
	await qml();
} catch (e) {
	process.stderr.write(`peer: ${e.stack || e}\n`);
	process.exit(1);
}
