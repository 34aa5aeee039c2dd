// bench/bullmq/bench.mjs: BullMQ's side of bench/redis.sh, on the same
// redis-server and with the same shape as bench/redis_bench.c:
//   node bench.mjs PORT JOBS CONCURRENCY SINGLE
// prints one line per figure, "name jobs/s":
//   enqueue_bulk   JOBS jobs by addBulk, 1,000 a call
//   process        its own no-op Worker at CONCURRENCY until all JOBS completed
//   e2e            JOBS / (enqueue_bulk time + process time)
//   enqueue_single SINGLE jobs by add, one awaited call after another
// Completed jobs are removed (removeOnComplete), as qml's Redis store keeps
// them for a TTL instead: both write the completion; neither keeps a list
// growing without bound during the run.
import { Queue, Worker } from 'bullmq';

const [port, jobs, concurrency, single] = process.argv.slice(2).map(Number);
const connection = { host: '127.0.0.1', port };
const name = 'bench' + process.pid;
const now = () => Number(process.hrtime.bigint()) / 1e9;
const queue = new Queue(name, { connection });
await queue.waitUntilReady();
await queue.obliterate({ force: true });

const opts = { removeOnComplete: true, removeOnFail: true };
let t0 = now();
for (let i = 0; i < jobs; i += 1000) {
	const n = Math.min(1000, jobs - i);
	await queue.addBulk(Array.from({ length: n }, (_, k) => ({ name: 'noop', data: [i + k], opts })));
}
const tEnq = now() - t0;
console.log(`enqueue_bulk ${(jobs / tEnq).toFixed(0)}`);

let done = 0;
let finish;
const allDone = new Promise((resolve) => { finish = resolve; });
t0 = now();
const worker = new Worker(name, async () => null, { connection, concurrency, autorun: false });
worker.on('completed', () => { if (++done === jobs) finish(); });
worker.run();
await allDone;
const tProc = now() - t0;
console.log(`process ${(jobs / tProc).toFixed(0)}`);
console.log(`e2e ${(jobs / (tEnq + tProc)).toFixed(0)}`);
await worker.close();

await queue.obliterate({ force: true });
t0 = now();
for (let i = 0; i < single; i++)
	await queue.add('noop', [i], opts);
console.log(`enqueue_single ${(single / (now() - t0)).toFixed(0)}`);
await queue.obliterate({ force: true });
await queue.close();
