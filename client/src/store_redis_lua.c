/*
 * store_redis_lua.c
 *	  The Lua scripts of the Redis store: each multi-step transition of a
 *	  job is one script, so Redis runs it atomically (a claim, a completion,
 *	  a retry, a promotion, a rescue). Each script is the shared prelude
 *	  followed by its body.
 *
 * Calling convention (store_redis_conn.c qml__rds_eval): KEYS[1] is the
 * base "P{T}:" of one slot, and every key a script touches starts with it,
 * so a cluster routes the script by KEYS[1] and it never leaves that slot.
 * ARGV[1..3] are the store's settings: events kept per job, how long a
 * finished job is kept (ms, 0 = forever), whether failed jobs expire too;
 * a script's own arguments start at ARGV[4]. Times are the server's (TIME),
 * in ms; states are qml_job_state numbers. Job fields (hash): q queue, m
 * method, a arguments, p priority, s state, n attempts, x max attempts,
 * r run_at, c created, e enqueued, t started, f finished, w worker, l lease
 * end, err last error, res result, u unique key, bb/bc backoff base/cap,
 * d "worker:attempt" of the worker that recorded an outcome (complete or
 * fail: a resent one is told apart from a lost lease by it),
 * k its member in the ready set, ct the token of the claim that took it
 * (a claim whose answer was lost is asked for again by it: rds_fetch; the
 * ids a token took are in the set q:Q:ct:TOKEN).
 */
#include <stdlib.h>
#include <string.h>

#include "store_redis.h"

static const char prelude[] =
"local B = KEYS[1]\n"
"local HCAP, TTL, PRUNE_FAILED = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1'\n"
"local tm = redis.call('TIME')\n"
"local NOW = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
"local function qk(q, what) return B .. 'q:' .. q .. ':' .. what end\n"
"local function jk(id) return B .. 'j:' .. id end\n"
"local function hk(id) return B .. 'h:' .. id end\n"
/* tells the waiting workers (store_redis.c's sessions) a queue has work */
"local function wake(q)\n"
"  redis.call('PUBLISH', string.sub(B, 1, string.find(B, '{', 1, true) - 1) .. ':wake', q)\n"
"end\n"
"local function hist(id, from, to, w, err)\n"
"  if HCAP > 0 then\n"
"    redis.call('RPUSH', hk(id), cjson.encode({NOW, from, to, w or false, err or false}))\n"
"    redis.call('LTRIM', hk(id), -HCAP, -1)\n"
"  end\n"
"end\n"
/* higher priority first (score), then due time, then id (member) */
"local function ready_add(k, q, id, prio, due)\n"
"  local member = string.format('%013d', due) .. '.' .. id\n"
"  redis.call('ZADD', qk(q, 'ready'), -prio, member)\n"
"  redis.call('HSET', k, 'k', member)\n"
"end\n"
"local function unique_drop(q, u, id)\n"
"  if u and u ~= '' and redis.call('HGET', qk(q, 'u'), u) == id then\n"
"    redis.call('HDEL', qk(q, 'u'), u)\n"
"  end\n"
"end\n"
"local function count(q, field)\n"
"  local key = qk(q, 'tp:' .. math.floor(NOW / 60000))\n"
"  if redis.call('HINCRBY', key, field, 1) == 1 then redis.call('EXPIRE', key, 172800) end\n"
"end\n"
/* a final state: its set, and expiry of the job and its history */
"local FINAL = {[3] = 'succeeded', [4] = 'failed', [6] = 'deleted'}\n"
"local function finish(k, id, q, to)\n"
"  redis.call('HSET', k, 's', to, 'f', NOW, 'w', '', 'l', '')\n"
"  redis.call('ZADD', qk(q, FINAL[to]), NOW, id)\n"
"  if TTL > 0 and (to ~= 4 or PRUNE_FAILED) then\n"
"    redis.call('PEXPIRE', k, TTL)\n"
"    redis.call('PEXPIRE', hk(id), TTL)\n"
"  end\n"
"end\n"
/* the set a live state's job is in, to take it out */
"local function unlist(k, q, id, s)\n"
"  if s == 0 then redis.call('ZREM', qk(q, 'sched'), id)\n"
"  elseif s == 1 then redis.call('ZREM', qk(q, 'ready'), redis.call('HGET', k, 'k'))\n"
"  elseif s == 2 then redis.call('ZREM', qk(q, 'proc'), id)\n"
"  elseif s == 5 then redis.call('ZREM', qk(q, 'retry'), id)\n"
"  else redis.call('ZREM', qk(q, FINAL[s]), id) end\n"
"end\n"
/* processing -> enqueued, the attempt not counted: a job held by w that it
 * gives back (prio, due: its priority and due time) */
"local function release_one(k, q, id, w, prio, due)\n"
"  redis.call('ZREM', qk(q, 'proc'), id)\n"
"  redis.call('HINCRBY', k, 'n', -1)\n"
"  redis.call('HSET', k, 's', 1, 'w', '', 'l', '')\n"
"  ready_add(k, q, id, tonumber(prio), tonumber(due))\n"
"  hist(id, 2, 1, w, nil)\n"
"  wake(q)\n"
"end\n"
/* a job w does not hold (s, d, n its fields): -2 when w recorded its
 * outcome in its current attempt already (a resend), else -1 (lost) */
"local function not_held(s, d, n, w)\n"
"  if s ~= '2' and w and d == w .. ':' .. tostring(n) then return -2 end\n"
"  return -1\n"
"end\n"
/* processing -> awaiting_retry or failed; w nil: any worker (rescue).
 * Returns the new state (not held: -2 recorded by w already, -1 lost) and
 * the ms to the next try (-1: none) */
"local function fail_one(id, w, err, retry, jit)\n"
"  local k = jk(id)\n"
"  local f = redis.call('HMGET', k, 's', 'w', 'q', 'u', 'n', 'x', 'bb', 'bc', 'd')\n"
"  if f[1] ~= '2' or (w and f[2] ~= w) then return not_held(f[1], f[9], f[5], w), -1 end\n"
"  local q = f[3]\n"
"  redis.call('ZREM', qk(q, 'proc'), id)\n"
"  redis.call('HSET', k, 'err', err, 'd', w and (w .. ':' .. f[5]) or '')\n"
"  local n, x = tonumber(f[5]), tonumber(f[6])\n"
"  if retry and n < x then\n"
"    local d, cap = tonumber(f[7]), tonumber(f[8])\n"
"    for i = 2, n do if d >= cap then break end d = d * 2 end\n"
"    if d > cap then d = cap end\n"
"    d = math.floor(d / 2 + jit * (d - math.floor(d / 2)))\n"
"    redis.call('HSET', k, 's', 5, 'r', NOW + d, 'w', '', 'l', '')\n"
"    redis.call('ZADD', qk(q, 'retry'), NOW + d, id)\n"
"    hist(id, 2, 5, f[2], err)\n"
"    return 5, d\n"
"  end\n"
"  finish(k, id, q, 4)\n"
"  unique_drop(q, f[4], id)\n"
"  count(q, 'f')\n"
"  hist(id, 2, 4, f[2], err)\n"
"  return 4, -1\n"
"end\n"
/* due scheduled and awaiting_retry jobs of a queue -> enqueued */
"local function promote(q, limit)\n"
"  local moved = 0\n"
"  for _, set in ipairs({'sched', 'retry'}) do\n"
"    local ids = redis.call('ZRANGEBYSCORE', qk(q, set), '-inf', NOW, 'LIMIT', 0, limit)\n"
"    for _, id in ipairs(ids) do\n"
"      local k = jk(id)\n"
"      local f = redis.call('HMGET', k, 's', 'p', 'r')\n"
"      redis.call('HSET', k, 's', 1, 'e', NOW)\n"
"      ready_add(k, q, id, tonumber(f[2]), tonumber(f[3]))\n"
"      hist(id, tonumber(f[1]), 1, nil, nil)\n"
"    end\n"
"    if #ids > 0 then redis.call('ZREM', qk(q, set), unpack(ids)) end\n"
"    moved = moved + #ids\n"
"  end\n"
"  if moved > 0 then wake(q) end\n"
"  return moved\n"
"end\n"
/* a new job, or the live one holding the unique key; returns its id */
"local function enqueue_one(q, slot, m, a, p, r, delay, x, u, bb, bc)\n"
"  if u ~= '' then\n"
"    local ex = redis.call('HGET', qk(q, 'u'), u)\n"
"    if ex then return ex end\n"
"  end\n"
"  local id = string.format('%016d', redis.call('INCR', B .. 'seq') * 16384 + slot)\n"
"  local k = jk(id)\n"
"  if r <= 0 then r = NOW + delay end\n"
"  redis.call('HSET', k, 'q', q, 'm', m, 'a', a, 'p', p, 'n', 0, 'x', x,\n"
"             'r', r, 'c', NOW, 'bb', bb, 'bc', bc)\n"
"  if u ~= '' then\n"
"    redis.call('HSET', k, 'u', u)\n"
"    redis.call('HSET', qk(q, 'u'), u, id)\n"
"  end\n"
"  redis.call('ZADD', qk(q, 'all'), 0, id)\n"
"  if r > NOW then\n"
"    redis.call('HSET', k, 's', 0)\n"
"    redis.call('ZADD', qk(q, 'sched'), r, id)\n"
"    hist(id, -1, 0, nil, nil)\n"
"  else\n"
"    redis.call('HSET', k, 's', 1, 'e', NOW)\n"
"    ready_add(k, q, id, tonumber(p), r)\n"
"    hist(id, -1, 1, nil, nil)\n"
"  end\n"
"  return id\n"
"end\n";

/* ARGV: queue, slot, n, then n x (method, arguments, priority, run_at ms
 * (0: now + delay), delay ms, max_attempts, unique key or '', backoff
 * base, cap); returns the ids */
static const char enqueue[] =
"local q, slot, n = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])\n"
"local out = {}\n"
"for i = 0, n - 1 do\n"
"  local o = 7 + i * 9\n"
"  out[#out + 1] = enqueue_one(q, slot, ARGV[o], ARGV[o + 1], ARGV[o + 2],\n"
"    tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4]), ARGV[o + 5], ARGV[o + 6],\n"
"    ARGV[o + 7], ARGV[o + 8])\n"
"end\n"
"wake(q)\n"
"return out\n";

/*
 * ARGV: queue, worker, n, lease ms, claim token, '1' when a claim with
 * this token may have run without its answer reaching the worker (the
 * connection broke: rds_fetch), the token of this worker's previous claim
 * on the queue whose answer came back and that took jobs ('' none).
 * Returns {id, method, arguments, priority, attempts, max_attempts,
 * created, taken again 1/0} per job, n at most: first the jobs that lost
 * claim took and this worker still holds (their lease renewed; any beyond
 * n go back to enqueued), then new claims. The jobs a token took are in
 * its own set (q:Q:ct:TOKEN), expiring with their lease, so taking them
 * back reads those jobs only, never the queue's whole processing set (a
 * restarted Redis gets that from every worker on every queue at once).
 * The set of a claim whose answer came back is no longer needed: the next
 * claim drops it.
 */
static const char claim[] =
"local q, w, n, lease, tok = ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]\n"
"local exp = NOW + lease\n"
"local tk = qk(q, 'ct:' .. tok)\n"
"local out = {}\n"
"local function take(id, k, att, again)\n"
"  local f = redis.call('HMGET', k, 'm', 'a', 'p', 'x', 'c')\n"
"  out[#out + 1] = {id, f[1], f[2], f[3], att, f[4], f[5], again}\n"
"end\n"
"if ARGV[9] == '1' then\n"
"  for _, id in ipairs(redis.call('SMEMBERS', tk)) do\n"
"    local k = jk(id)\n"
"    local f = redis.call('HMGET', k, 's', 'w', 'ct', 'n', 'p', 'r')\n"
"    if f[1] == '2' and f[2] == w and f[3] == tok and #out < n then\n"
"      redis.call('HSET', k, 'l', exp)\n"
"      redis.call('ZADD', qk(q, 'proc'), exp, id)\n"
"      take(id, k, tonumber(f[4]), 1)\n"
"    else\n"
"      if f[1] == '2' and f[2] == w and f[3] == tok then release_one(k, q, id, w, f[5], f[6]) end\n"
"      redis.call('SREM', tk, id)\n"
"    end\n"
"  end\n"
"  if #out > 0 then redis.call('PEXPIRE', tk, lease) end\n"
"end\n"
"if ARGV[10] ~= '' and ARGV[10] ~= tok then redis.call('DEL', qk(q, 'ct:' .. ARGV[10])) end\n"
"if #out >= n or redis.call('EXISTS', qk(q, 'paused')) == 1 then return out end\n"
"promote(q, 1000)\n"
"local members = redis.call('ZRANGE', qk(q, 'ready'), 0, n - #out - 1)\n"
"if #members == 0 then return out end\n"
"redis.call('ZREMRANGEBYRANK', qk(q, 'ready'), 0, #members - 1)\n"
"local ids = {}\n"
"for _, member in ipairs(members) do\n"
"  local id = string.sub(member, 15)\n"
"  local k = jk(id)\n"
"  local att = redis.call('HINCRBY', k, 'n', 1)\n"
"  redis.call('HSET', k, 's', 2, 't', NOW, 'w', w, 'l', exp, 'ct', tok)\n"
"  redis.call('ZADD', qk(q, 'proc'), exp, id)\n"
"  hist(id, 1, 2, w, nil)\n"
"  take(id, k, att, 0)\n"
"  ids[#ids + 1] = id\n"
"end\n"
"redis.call('SADD', tk, unpack(ids))\n"
"redis.call('PEXPIRE', tk, lease)\n"
"return out\n";

/* ARGV: worker, n, then n x (id, result or ''); returns per job 1
 * completed, or not held: -2 completed by w already, -1 lost */
static const char complete[] =
"local w, n = ARGV[4], tonumber(ARGV[5])\n"
"local out = {}\n"
"for i = 0, n - 1 do\n"
"  local id, res = ARGV[6 + 2 * i], ARGV[7 + 2 * i]\n"
"  local k = jk(id)\n"
"  local f = redis.call('HMGET', k, 's', 'w', 'q', 'u', 'd', 'n')\n"
"  if f[1] == '2' and f[2] == w then\n"
"    redis.call('ZREM', qk(f[3], 'proc'), id)\n"
"    redis.call('HSET', k, 'd', w .. ':' .. f[6])\n"
"    if res ~= '' then redis.call('HSET', k, 'res', res) end\n"
"    finish(k, id, f[3], 3)\n"
"    unique_drop(f[3], f[4], id)\n"
"    count(f[3], 's')\n"
"    hist(id, 2, 3, w, nil)\n"
"    out[i + 1] = 1\n"
"  else out[i + 1] = not_held(f[1], f[5], f[6], w) end\n"
"end\n"
"return out\n";

/* ARGV: worker, n, then n x (id, error, retry 1/0, jitter 0..1); returns
 * per job its new state (not held: -2 failed by w already, -1 lost) and
 * the ms to its next try (-1: none) */
static const char fail[] =
"local w, n = ARGV[4], tonumber(ARGV[5])\n"
"local out = {}\n"
"for i = 0, n - 1 do\n"
"  local o = 6 + 4 * i\n"
"  out[2 * i + 1], out[2 * i + 2] =\n"
"    fail_one(ARGV[o], w, ARGV[o + 1], ARGV[o + 2] == '1', tonumber(ARGV[o + 3]))\n"
"end\n"
"return out\n";

/* ARGV: worker, n, ids; returns how many went back to enqueued */
static const char release[] =
"local w, n, done = ARGV[4], tonumber(ARGV[5]), 0\n"
"for i = 0, n - 1 do\n"
"  local id = ARGV[6 + i]\n"
"  local k = jk(id)\n"
"  local f = redis.call('HMGET', k, 's', 'w', 'q', 'p', 'r')\n"
"  if f[1] == '2' and f[2] == w then\n"
"    release_one(k, f[3], id, w, f[4], f[5])\n"
"    done = done + 1\n"
"  end\n"
"end\n"
"return done\n";

/* ARGV: worker, lease ms, n, ids; returns 1/0 per id (still held) */
static const char heartbeat[] =
"local w, lease, n = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])\n"
"local out = {}\n"
"for i = 0, n - 1 do\n"
"  local id = ARGV[7 + i]\n"
"  local k = jk(id)\n"
"  local f = redis.call('HMGET', k, 's', 'w', 'q')\n"
"  if f[1] == '2' and f[2] == w then\n"
"    redis.call('HSET', k, 'l', NOW + lease)\n"
"    redis.call('ZADD', qk(f[3], 'proc'), NOW + lease, id)\n"
"    out[i + 1] = 1\n"
"  else out[i + 1] = 0 end\n"
"end\n"
"return out\n";

/* ARGV: queue, limit, random seed; promotes due jobs, rescues expired
 * leases, drops finished jobs past the TTL; returns {promoted, rescued,
 * pruned} */
static const char maintain[] =
"local q, limit = ARGV[4], tonumber(ARGV[5])\n"
"math.randomseed(tonumber(ARGV[6]))\n"
"local promoted = promote(q, limit)\n"
"local rescued = 0\n"
"for _, id in ipairs(redis.call('ZRANGEBYSCORE', qk(q, 'proc'), '-inf', NOW, 'LIMIT', 0, limit)) do\n"
"  local w = redis.call('HGET', jk(id), 'w') or ''\n"
"  if fail_one(id, nil, 'lease expired on worker ' .. w, true, math.random()) >= 0 then\n"
"    rescued = rescued + 1\n"
"  else redis.call('ZREM', qk(q, 'proc'), id) end\n"
"end\n"
"local pruned = 0\n"
"if TTL > 0 then\n"
"  local sets = {'succeeded', 'deleted'}\n"
"  if PRUNE_FAILED then sets[3] = 'failed' end\n"
"  for _, set in ipairs(sets) do\n"
"    local ids = redis.call('ZRANGEBYSCORE', qk(q, set), '-inf', NOW - TTL, 'LIMIT', 0, limit)\n"
"    for _, id in ipairs(ids) do\n"
"      redis.call('DEL', jk(id), hk(id))\n"
"      redis.call('ZREM', qk(q, 'all'), id)\n"
"    end\n"
"    if #ids > 0 then redis.call('ZREM', qk(q, set), unpack(ids)) end\n"
"    pruned = pruned + #ids\n"
"  end\n"
"end\n"
"return {promoted, rescued, pruned}\n";

/* ARGV: id; 1 deleted, 0 already final, -1 no such job */
static const char delete[] =
"local id = ARGV[4]\n"
"local k = jk(id)\n"
"local f = redis.call('HMGET', k, 's', 'q', 'u', 'w')\n"
"if not f[1] then return -1 end\n"
"local s = tonumber(f[1])\n"
"if FINAL[s] then return 0 end\n"
"unlist(k, f[2], id, s)\n"
"finish(k, id, f[2], 6)\n"
"unique_drop(f[2], f[3], id)\n"
"hist(id, s, 6, nil, nil)\n"
"return 1\n";

/* ARGV: id; 1 requeued, 0 still live, -1 no such job, -2 its unique key
 * is held by another live job */
static const char requeue[] =
"local id = ARGV[4]\n"
"local k = jk(id)\n"
"local f = redis.call('HMGET', k, 's', 'q', 'u', 'p')\n"
"if not f[1] then return -1 end\n"
"local s = tonumber(f[1])\n"
"if not FINAL[s] then return 0 end\n"
"if f[3] and f[3] ~= '' then\n"
"  local holder = redis.call('HGET', qk(f[2], 'u'), f[3])\n"
"  if holder and holder ~= id then return -2 end\n"
"  redis.call('HSET', qk(f[2], 'u'), f[3], id)\n"
"end\n"
"unlist(k, f[2], id, s)\n"
"redis.call('PERSIST', k)\n"
"redis.call('PERSIST', hk(id))\n"
"redis.call('HSET', k, 's', 1, 'n', 0, 'e', NOW, 'r', NOW, 'f', '', 'd', '')\n"
"ready_add(k, f[2], id, tonumber(f[4]), NOW)\n"
"hist(id, s, 1, nil, nil)\n"
"wake(f[2])\n"
"return 1\n";

/* ARGV: name, definition JSON (with "next" in ms) or '' to remove */
static const char recur_set[] =
"if ARGV[5] == '' then return redis.call('HDEL', B .. 'rec', ARGV[4]) end\n"
"redis.call('HSET', B .. 'rec', ARGV[4], ARGV[5])\n"
"return 1\n";

/* ARGV: name, slot, the due time it fires for ('' = now, by hand), the
 * next due time, a unique key ('' none); enqueues the job once per due
 * time: returns its id, or false when that due time fired already */
static const char recur_fire[] =
"local name, slot, due, nxt = ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]\n"
"local raw = redis.call('HGET', B .. 'rec', name)\n"
"if not raw then return -1 end\n"
"local d = cjson.decode(raw)\n"
"if due ~= '' then\n"
"  if tostring(d.next) ~= due then return false end\n"
"  d.next = tonumber(nxt)\n"
"  redis.call('HSET', B .. 'rec', name, cjson.encode(d))\n"
"end\n"
"local id = enqueue_one(d.queue, slot, d.method, d.arguments, d.priority, 0, 0,\n"
"  d.max_attempts, ARGV[8], d.backoff_base, d.backoff_cap)\n"
"wake(d.queue)\n"
"return id\n";

/* ARGV: queue; returns the count per state (qml_job_state order), paused
 * 1/0, the head of the ready set's due time (ms, -1 none), the server's
 * time (ms), and the earliest due scheduled/retrying job (ms, -1 none) */
static const char counts[] =
"local q = ARGV[4]\n"
"local out = {}\n"
"for i, set in ipairs({'sched', 'ready', 'proc', 'succeeded', 'failed', 'retry', 'deleted'}) do\n"
"  out[i] = redis.call('ZCARD', qk(q, set))\n"
"end\n"
"out[8] = redis.call('EXISTS', qk(q, 'paused'))\n"
"local head = redis.call('ZRANGE', qk(q, 'ready'), 0, 0)\n"
"out[9] = head[1] and tonumber(string.sub(head[1], 1, 13)) or -1\n"
"out[10] = NOW\n"
"local due = -1\n"
"for _, set in ipairs({'sched', 'retry'}) do\n"
"  local first = redis.call('ZRANGE', qk(q, set), 0, 0, 'WITHSCORES')\n"
"  if first[2] and (due < 0 or tonumber(first[2]) < due) then due = tonumber(first[2]) end\n"
"end\n"
"out[11] = due\n"
"return out\n";

static char *texts[RDS_SCRIPT_COUNT];
static pthread_once_t texts_once = PTHREAD_ONCE_INIT;

static void
build_texts(void)
{
	static const char *const bodies[RDS_SCRIPT_COUNT] = {
		[RDS_ENQUEUE] = enqueue,
		[RDS_CLAIM] = claim,
		[RDS_COMPLETE] = complete,
		[RDS_FAIL] = fail,
		[RDS_RELEASE] = release,
		[RDS_HEARTBEAT] = heartbeat,
		[RDS_MAINTAIN] = maintain,
		[RDS_DELETE] = delete,
		[RDS_REQUEUE] = requeue,
		[RDS_RECUR_SET] = recur_set,
		[RDS_RECUR_FIRE] = recur_fire,
		[RDS_COUNTS] = counts,
	};

	for (int i = 0; i < RDS_SCRIPT_COUNT; i++)
	{
		size_t		a = sizeof(prelude) - 1;
		size_t		b = strlen(bodies[i]);

		texts[i] = malloc(a + b + 1);
		if (texts[i] == NULL)
			continue;
		memcpy(texts[i], prelude, a);
		memcpy(texts[i] + a, bodies[i], b + 1);
	}
}

const char *
qml__rds_script_text(rds_script s)
{
	pthread_once(&texts_once, build_texts);
	return texts[s];
}
