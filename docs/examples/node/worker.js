// A qml worker in Node with pg: docs/workers.md explains it.
const os = require("os");
const { Client } = require("pg");

const WORKER = `node@${os.hostname()}:${process.pid}`;   // the lease holder's name
const QUEUES = (process.env.QUEUES || "default").split(",");
let stopping = false;                                     // set by SIGTERM / SIGINT
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => { stopping = true; });
class Stop extends Error {}                               // give the job back
const pause = (ms) => new Promise((done) => setTimeout(done, ms));

const handlers = {
  echo: async (db, id, args) => args,
  sleep: async (db, id, args) => {                        // a long job: beats, stops
    if (!Number.isInteger(args.seconds)) throw new Error("seconds must be an integer");
    for (let i = 0; i < args.seconds; i++) {
      if (stopping) throw new Stop();
      await db.query("SELECT qml.heartbeat(ARRAY[$1]::int8[], $2, '1 minute')", [id, WORKER]);
      await pause(1000);
    }
    return { slept: args.seconds };
  },
};

async function main() {
  const db = new Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  while (!stopping) {
    const { rows } = await db.query("SELECT id, method, arguments FROM qml.fetch($1, $2,"
      + " lease => '1 minute', wait => '2 seconds')", [WORKER, QUEUES]);
    if (rows.length === 0) continue;
    const { id, method, arguments: args } = rows[0];
    try {
      if (stopping) throw new Stop();                     // claimed as the signal came
      if (!handlers[method]) throw new Error(`no handler for ${method}`);
      const result = await handlers[method](db, id, args);
      await db.query("SELECT qml.complete($1, $2, $3)", [id, WORKER, JSON.stringify(result)]);
    } catch (e) {
      if (e instanceof Stop) await db.query("SELECT qml.release($1, $2)", [id, WORKER]);
      else await db.query("SELECT qml.fail($1, $2, $3)", [id, WORKER, e.message]);   // retried
    }
  }
  await db.end();
}
main().catch((e) => { console.error(e); process.exit(1); });
