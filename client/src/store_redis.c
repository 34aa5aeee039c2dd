/*
 * store_redis.c
 *	  The Redis store (store.h): the operations that change jobs, each a
 *	  Lua script (store_redis_lua.c) run on the slot that holds the job or
 *	  queue, and the maintenance the runtime ticks under an expiring lock.
 *
 * A batch (complete, fail, release, heartbeat) is grouped by slot: one
 * script call per slot it touches, so a runtime's batch of one queue is
 * one round trip. enqueue_batch is all or nothing per queue (one script);
 * jobs of several queues are as many calls, which a cluster cannot make
 * atomic together.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_redis.h"

#define MAINTAIN_LIMIT 1000
#define QUEUE_CACHE 64
#define DRAIN_ROUNDS 16		/* reads of the wakeup socket per drain */

typedef struct rds_session
{
	qml_store_session base;
	char	   *worker;
	char	  **queues;
	size_t		nqueues;
	/*
	 * per queue: its claim token, whether a claim with it lost its answer,
	 * and the token of the last claim answered with jobs (its set of ids
	 * is dropped by the next claim)
	 */
	char		(*tokens)[64];
	char		(*answered)[64];
	bool	   *pending;
	bool	   *tried;			/* rds_fetch's: claimed from in this fetch */
	int			lease_ms;
	bool		broken;
	redisContext *sub;			/* wakeups (fetch and watch sessions) */
} rds_session;

static _Thread_local uint64_t rng_state;

/* uniform in [0, 1): the jitter of a retry's delay */
static double
jitter(void)
{
	if (rng_state == 0)
		rng_state = (uint64_t) qml__mono_us() ^ ((uint64_t) pthread_self() << 1) ^ 0x9e3779b97f4a7c15ULL;
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (double) (rng_state >> 11) / 9007199254740992.0;
}

static rds_store *
R(qml_store *s)
{
	return (rds_store *) s;
}

/* ---- life ---- */

static qml_status
rds_open(qml_client *client, const char *url, qml_store **out)
{
	rds_store  *r;
	qml_status	st;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return qml__nomem();
	if ((st = qml__rds_url_parse(url, &r->url)) != QML_OK)
	{
		free(r);
		return st;
	}
	if (r->url.tls)
	{
		free(r);
		qml__error(QML_ERR_UNSUPPORTED,
				   "rediss:// (TLS) is not available: this libqml was built with a hiredis without TLS");
		qml__error_set_extra(NULL, "Use redis:// through a TLS tunnel (stunnel, spiped), "
							 "or build libqml against hiredis 1.0 or later with hiredis_ssl.",
							 NULL);
		return QML_ERR_UNSUPPORTED;
	}
	r->base.client = client;
	r->pool_max = qml_config_max_connections(client->config);
	if (r->pool_max < 2)
		r->pool_max = 2;
	r->timeout_ms = client->config->connect_timeout_s > 0 ?
		client->config->connect_timeout_s * 1000 : 10000;
	snprintf(r->lock_token, sizeof(r->lock_token), "%lld-%d",
			 (long long) qml__mono_us(), (int) getpid());
	pthread_mutex_init(&r->mu, NULL);
	r->base.ops = &qml__store_redis;
	if ((st = qml__rds_connect(r)) != QML_OK)
	{
		qml__rds_disconnect(r);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return st;
	}
	*out = &r->base;
	return QML_OK;
}

static void
rds_close(qml_store *store)
{
	rds_store  *r = R(store);

	qml__rds_disconnect(r);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static qml_status
rds_schema_version(qml_store *store QML_UNUSED, char **installed, char **available)
{
	*installed = qml__strdup("redis");
	if (available)
		*available = qml__strdup("redis");
	if (*installed == NULL || (available && *available == NULL))
	{
		free(*installed);
		if (available)
			free(*available);
		return qml__nomem();
	}
	return QML_OK;
}

static qml_status
rds_migrate(qml_store *store QML_UNUSED, bool only_if_needed QML_UNUSED, bool *migrated)
{
	if (migrated)
		*migrated = false;
	return QML_OK;
}

static qml_status
rds_health(qml_store *store, qml_health **out)
{
	rds_store  *r = R(store);
	const char *argv[] = {"INFO", "server"};
	redisReply *reply;
	qml_health *h;
	qml_status	st;
	char		version[32] = "";
	const char *v;

	if ((st = qml__rds_command(r, -1, 2, argv, NULL, &reply)) != QML_OK)
		return st;
	v = reply->str ? strstr(reply->str, "redis_version:") : NULL;
	if (v)
		sscanf(v + 14, "%31[^\r\n]", version);
	freeReplyObject(reply);
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return qml__nomem();
	h->server_version = malloc(strlen(version) + 8);
	if (h->server_version)
		sprintf(h->server_version, "Redis %s", version);
	h->database = malloc(32);
	if (h->database)
		snprintf(h->database, 32, "%s%d", r->url.cluster ? "cluster " : "", r->url.db);
	h->user = qml__strdup(r->url.user[0] ? r->url.user : "default");
	h->installed_version = qml__strdup("redis");
	h->available_version = qml__strdup("redis");
	/* the scheduler's work is done by the running workers (rds_tick) */
	h->preloaded = h->preloaded_known = true;
	h->scheduler_processes = 1;
	if (!h->server_version || !h->database || !h->user ||
		!h->installed_version || !h->available_version)
	{
		qml_health_free(h);
		return qml__nomem();
	}
	*out = h;
	return QML_OK;
}

/* ---- queues ---- */

/* Adds a queue to P:queues (once per store instance and name, mostly). */
static qml_status
note_queue(rds_store *r, const char *queue)
{
	static _Thread_local char seen[QUEUE_CACHE][64];
	static _Thread_local const void *seen_store;
	unsigned	h = (unsigned) qml__rds_queue_slot(queue) % QUEUE_CACHE;
	char		key[96];
	const char *argv[3] = {"SADD", key, queue};
	redisReply *reply;
	qml_status	st;

	if (seen_store != r)
	{
		memset(seen, 0, sizeof(seen));
		seen_store = r;
	}
	if (strcmp(seen[h], queue) == 0)
		return QML_OK;
	snprintf(key, sizeof(key), "%s:queues", r->url.prefix);
	st = qml__rds_command(r, qml__rds_key_slot(key, strlen(key)), 3, argv, NULL, &reply);
	if (reply)
		freeReplyObject(reply);
	if (st == QML_OK && strlen(queue) < sizeof(seen[h]))
		strcpy(seen[h], queue);
	return st;
}

/* ---- producers ---- */

typedef struct enq_fields
{
	char		prio[16];
	char		run_at[24];
	char		delay[24];
	char		max[16];
	char		bb[24];
	char		bc[24];
} enq_fields;

static void
fill_fields(const qml_enqueue_options *o, enq_fields *f)
{
	/* a delay counts from the server's clock, as run_at does */
	int64_t		run_at = o && o->run_at > 0 ? o->run_at / 1000 : 0;

	snprintf(f->prio, sizeof(f->prio), "%d", o ? o->priority : 0);
	snprintf(f->run_at, sizeof(f->run_at), "%lld", (long long) (run_at > 0 ? run_at : 0));
	snprintf(f->delay, sizeof(f->delay), "%lld",
			 (long long) (o && o->delay_ms > 0 ? o->delay_ms : 0));
	snprintf(f->max, sizeof(f->max), "%d", o && o->max_attempts > 0 ? o->max_attempts : 20);
	snprintf(f->bb, sizeof(f->bb), "%lld",
			 (long long) (o && o->backoff_base_ms > 0 ? o->backoff_base_ms : 5000));
	snprintf(f->bc, sizeof(f->bc), "%lld",
			 (long long) (o && o->backoff_cap_ms > 0 ? o->backoff_cap_ms : 3600000));
}

/* jobs[idx[0..n)] all of `queue`, in one script; ids[idx[i]] set */
static qml_status
enqueue_group(rds_store *r, const char *queue, const qml_job_spec *jobs,
			  const size_t *idx, size_t n, int64_t *ids)
{
	int			slot = qml__rds_queue_slot(queue);
	int			argc = 3 + 9 * (int) n;
	const char **argv = malloc(sizeof(*argv) * (size_t) argc);
	enq_fields *f = malloc(sizeof(*f) * n);
	char		slottext[8];
	char		ntext[24];
	redisReply *reply = NULL;
	qml_status	st;

	if (argv == NULL || f == NULL)
	{
		free(argv);
		free(f);
		return qml__nomem();
	}
	snprintf(slottext, sizeof(slottext), "%d", slot);
	snprintf(ntext, sizeof(ntext), "%zu", n);
	argv[0] = queue;
	argv[1] = slottext;
	argv[2] = ntext;
	for (size_t i = 0; i < n; i++)
	{
		const qml_job_spec *j = &jobs[idx[i]];
		const char **a = argv + 3 + 9 * i;

		fill_fields(&j->options, &f[i]);
		a[0] = j->method;
		a[1] = j->arguments ? j->arguments : "[]";
		a[2] = f[i].prio;
		a[3] = f[i].run_at;
		a[4] = f[i].delay;
		a[5] = f[i].max;
		a[6] = j->options.unique_key ? j->options.unique_key : "";
		a[7] = f[i].bb;
		a[8] = f[i].bc;
	}
	st = note_queue(r, queue);
	if (st == QML_OK)
		st = qml__rds_evals(r, RDS_ENQUEUE, slot, argc, argv, &reply);
	if (st == QML_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements != n))
		st = qml__error(QML_ERR_SERVER, "Redis: unexpected reply to enqueue");
	for (size_t i = 0; st == QML_OK && i < n; i++)
		if (ids)
			ids[idx[i]] = strtoll(reply->element[i]->str, NULL, 10);
	if (reply)
		freeReplyObject(reply);
	free(argv);
	free(f);
	return st;
}

static qml_status
rds_enqueue_batch(qml_store *store, const qml_job_spec *jobs, size_t count,
				  int64_t *ids)
{
	size_t	   *idx = malloc(sizeof(*idx) * count);
	bool	   *done = calloc(count, sizeof(bool));
	qml_status	st = QML_OK;

	if (idx == NULL || done == NULL)
	{
		free(idx);
		free(done);
		return qml__nomem();
	}
	/* one script per queue, the jobs of each in their order */
	for (size_t i = 0; i < count && st == QML_OK; i++)
	{
		const char *q = jobs[i].options.queue ? jobs[i].options.queue : "default";
		size_t		n = 0;

		if (done[i])
			continue;
		for (size_t j = i; j < count; j++)
		{
			const char *qj = jobs[j].options.queue ? jobs[j].options.queue : "default";

			if (!done[j] && strcmp(q, qj) == 0)
			{
				idx[n++] = j;
				done[j] = true;
			}
		}
		st = enqueue_group(R(store), q, jobs, idx, n, ids);
	}
	free(idx);
	free(done);
	return st;
}

static qml_status
rds_enqueue(qml_store *store, const char *method, const char *arguments,
			const qml_enqueue_options *options, int64_t *id)
{
	qml_job_spec spec = {method, arguments, {0}};
	int64_t		got = 0;
	qml_status	st;

	if (options)
		spec.options = *options;
	st = rds_enqueue_batch(store, &spec, 1, &got);
	if (st == QML_OK && id)
		*id = got;
	return st;
}

/* ---- the runtime ---- */

static void
session_free(rds_session *s)
{
	for (size_t i = 0; i < s->nqueues; i++)
		free(s->queues[i]);
	free(s->queues);
	free(s->tokens);
	free(s->answered);
	free(s->pending);
	free(s->tried);
	free(s->worker);
	if (s->sub)
		redisFree(s->sub);
	free(s);
}

static qml_status
rds_session_open(qml_store *store, const qml_session_config *cfg,
				 qml_store_session **out)
{
	rds_session *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return qml__nomem();
	s->base.store = store;
	s->base.kind = cfg->kind;
	s->lease_ms = cfg->lease_ms;
	s->worker = qml__strdup(cfg->worker ? cfg->worker : "");
	s->queues = calloc(cfg->nqueues + 1, sizeof(char *));
	s->tokens = calloc(cfg->nqueues + 1, sizeof(*s->tokens));
	s->answered = calloc(cfg->nqueues + 1, sizeof(*s->answered));
	s->pending = calloc(cfg->nqueues + 1, sizeof(bool));
	s->tried = calloc(cfg->nqueues + 1, sizeof(bool));
	if (s->worker == NULL || s->queues == NULL || s->tokens == NULL ||
		s->answered == NULL || s->pending == NULL || s->tried == NULL)
	{
		session_free(s);
		return qml__nomem();
	}
	for (size_t i = 0; i < cfg->nqueues; i++)
	{
		if ((s->queues[i] = qml__strdup(cfg->queues[i])) == NULL)
		{
			session_free(s);
			return qml__nomem();
		}
		s->nqueues++;
	}
	if (cfg->kind != QML_SESSION_FLUSH)
	{
		qml_status	st = qml__rds_subscribe(R(store), &s->sub);

		if (st != QML_OK)
		{
			session_free(s);
			return st;
		}
	}
	*out = &s->base;
	return QML_OK;
}

static void
rds_session_close(qml_store_session *session)
{
	session_free((rds_session *) session);
}

static bool
rds_session_ok(qml_store_session *session)
{
	return !((rds_session *) session)->broken;
}

static int
rds_session_fd(qml_store_session *session)
{
	rds_session *s = (rds_session *) session;

	return s->sub ? s->sub->fd : -1;
}

/*
 * Wakeups that arrived for the session's queues (any queue: a watch).
 * The pub/sub context is a blocking one, so its socket is read only when
 * poll says something is there: the fetcher drains right after a fetch
 * came back empty, and a blocking read would hold it (and a stop) until a
 * message or the socket timeout, the connect timeout (10 s by default).
 */
static int
rds_session_drain(qml_store_session *session)
{
	rds_session *s = (rds_session *) session;
	void	   *msg;
	int			n = 0;

	if (s->sub == NULL)
		return 0;

	/* only what has arrived; a flood in a few rounds */
	for (int round = 0; round < DRAIN_ROUNDS; round++)
	{
		struct pollfd pfd = {.fd = s->sub->fd, .events = POLLIN};

		if (poll(&pfd, 1, 0) <= 0)
			break;
		if (redisBufferRead(s->sub) != REDIS_OK)
		{
			/*
			 * The wakeup connection is lost (Redis restarted, a node died).
			 * A fetch session is not broken by it: its claims belong to the
			 * worker name, not to a connection, so the jobs the runtime
			 * claimed ahead stay its to run (a new session would drop them
			 * to their leases). It subscribes again at its next fetch, and
			 * reports a wakeup now, since some may have been missed.
			 */
			redisFree(s->sub);
			s->sub = NULL;
			if (s->base.kind != QML_SESSION_FETCH)
			{
				s->broken = true;
				return -1;
			}
			return n + 1;
		}
		while (redisGetReplyFromReader(s->sub, &msg) == REDIS_OK && msg != NULL)
		{
			redisReply *m = msg;

			/* ["message", channel, queue] */
			if (m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
				m->element[2]->type == REDIS_REPLY_STRING)
			{
				bool		ours = s->base.kind == QML_SESSION_WATCH;

				for (size_t i = 0; i < s->nqueues && !ours; i++)
					ours = strcmp(s->queues[i], m->element[2]->str) == 0;
				n += ours;
			}
			freeReplyObject(m);
		}
	}
	return n;
}

/* claim reply rows -> jobs; *again: how many a lost claim had taken */
static qml_status
take_claimed(const char *queue, redisReply *reply, qml_store_job **out, int *got,
			 int *again)
{
	for (size_t i = 0; i < reply->elements; i++)
	{
		redisReply *row = reply->element[i];
		qml_store_job *job;

		if (row->type != REDIS_REPLY_ARRAY || row->elements < 8)
			return qml__error(QML_ERR_SERVER, "Redis: unexpected reply to a claim");
		*again += row->element[7]->integer == 1;
		job = qml__store_job_new(strtoll(row->element[0]->str, NULL, 10), queue,
								 row->element[1]->str ? row->element[1]->str : "",
								 row->element[2]->str ? row->element[2]->str : "[]",
								 row->element[3]->str ? atoi(row->element[3]->str) : 0,
								 (int) row->element[4]->integer,
								 row->element[5]->str ? atoi(row->element[5]->str) : 0,
								 row->element[6]->str ? strtoll(row->element[6]->str, NULL, 10) * 1000 : 0);
		if (job == NULL)
			return qml__nomem();
		out[(*got)++] = job;
	}
	return QML_OK;
}

/*
 * One claim of up to n jobs of queue i (store_redis_lua.c claim). The
 * script may run and its answer never arrive: Redis killed before the
 * reply, a connection cut. Its jobs are then this worker's, and nobody
 * would run them before their lease ran out (five minutes by default; a
 * PostgreSQL session's claims are given back when it ends, a Redis
 * connection has no such hold). So every claim carries a token, kept in
 * the jobs it takes, and after a claim that failed the next one on that
 * queue sends the same token again, asking for the jobs it holds first
 * (the script keeps each token's ids in a set of their own, which the
 * next claim after an answer drops: s->answered).
 * A token is fresh once an answer came back, so its jobs are never handed
 * out twice; it starts with the store's own token (time and pid), so that
 * two processes a user gave the same worker name never share one.
 */
static qml_status
claim_queue(rds_session *s, size_t i, int n, qml_store_job **out, int *got)
{
	rds_store  *r = R(s->base.store);
	char		ntext[16];
	char		lease[16];
	const char *argv[7] = {s->queues[i], s->worker, ntext, lease, s->tokens[i],
	s->pending[i] ? "1" : "0", s->answered[i]};
	int			before = *got,
				again = 0;
	redisReply *reply;
	qml_status	st;

	if (!s->pending[i])
		snprintf(s->tokens[i], sizeof(s->tokens[i]), "%s-%llu", r->lock_token,
				 (unsigned long long) atomic_fetch_add(&r->claim_seq, 1) + 1);
	snprintf(ntext, sizeof(ntext), "%d", n);
	snprintf(lease, sizeof(lease), "%d", s->lease_ms > 0 ? s->lease_ms : 300000);
	st = qml__rds_evals(r, RDS_CLAIM, qml__rds_queue_slot(s->queues[i]), 7, argv, &reply);
	if (st == QML_OK)
	{
		st = reply->type == REDIS_REPLY_ARRAY ?
			take_claimed(s->queues[i], reply, out, got, &again) :
			qml__error(QML_ERR_SERVER, "Redis: unexpected reply to a claim");
		freeReplyObject(reply);
	}
	/* jobs taken from an answer are ours; none taken, the claim may have run */
	s->pending[i] = st != QML_OK && *got == before;
	if (st == QML_OK)
		strcpy(s->answered[i], *got > before ? s->tokens[i] : "");
	if (again > 0)
		snprintf(s->base.note, sizeof(s->base.note),
				 "fetcher: took back %d jobs of queue \"%.64s\" that a claim took "
				 "when its answer was lost", again, s->queues[i]);
	return st;
}

static qml_status
rds_fetch(qml_store_session *session, int want, int wait_ms QML_UNUSED,
		  qml_store_job **out, int *got)
{
	rds_session *s = (rds_session *) session;
	rds_store  *r = R(session->store);
	qml_status	st = QML_OK;

	*got = 0;
	/* subscribed before the claims, so that no wakeup after them is missed */
	if (s->sub == NULL && (st = qml__rds_subscribe(r, &s->sub)) != QML_OK)
		return st;

	/*
	 * Queues whose last claim lost its answer first, so that the jobs it
	 * took do not wait behind the other queues' work; then the queues in
	 * their order. A queue is claimed from once a fetch.
	 */
	memset(s->tried, 0, s->nqueues * sizeof(bool));
	for (int pass = 0; pass < 2 && st == QML_OK; pass++)
	{
		for (size_t i = 0; i < s->nqueues && *got < want && st == QML_OK; i++)
		{
			if (s->tried[i] || (pass == 0 && !s->pending[i]))
				continue;
			s->tried[i] = true;
			st = claim_queue(s, i, want - *got, out, got);
		}
	}
	/*
	 * Jobs claimed before an error are the caller's still. A lost
	 * connection does not break the session (see rds_session_drain): the
	 * runtime backs off and fetches again through the pool.
	 */
	return *got > 0 ? QML_OK : st;
}

/*
 * Runs `script` once per slot among ids[0..n): per id `per` arguments from
 * fill(i, slot_args), after `head` leading arguments; each reply goes to
 * take(reply, idx, k, data) for the k ids of that slot.
 */
typedef void (*fill_fn) (size_t i, const char **args, char *scratch, void *data);
typedef qml_status (*take_fn) (redisReply *reply, const size_t *idx, size_t k,
							   void *data);

static qml_status
by_slot(rds_store *r, rds_script script, const int64_t *ids, size_t n,
		const char **head, int nhead, int per, fill_fn fill, take_fn take,
		void *data)
{
	size_t	   *idx = malloc(sizeof(*idx) * n);
	bool	   *done = calloc(n, sizeof(bool));
	const char **argv = malloc(sizeof(*argv) * ((size_t) nhead + 1 + n * (size_t) per));
	char	   *scratch = malloc(n * 48);
	char		ktext[24];
	qml_status	st = QML_OK;

	if (!idx || !done || !argv || !scratch)
	{
		st = qml__nomem();
		goto out;
	}
	for (size_t i = 0; i < n && st == QML_OK; i++)
	{
		int			slot = RDS_ID_SLOT(ids[i]);
		size_t		k = 0;
		redisReply *reply;

		if (done[i])
			continue;
		for (size_t j = i; j < n; j++)
			if (!done[j] && RDS_ID_SLOT(ids[j]) == slot)
			{
				done[j] = true;
				fill(j, argv + nhead + 1 + k * per, scratch + j * 48, data);
				idx[k++] = j;
			}
		for (int h = 0; h < nhead; h++)
			argv[h] = head[h];
		snprintf(ktext, sizeof(ktext), "%zu", k);
		argv[nhead] = ktext;
		st = qml__rds_evals(r, script, slot, nhead + 1 + (int) (k * per), argv, &reply);
		if (st == QML_OK)
		{
			st = take(reply, idx, k, data);
			freeReplyObject(reply);
		}
	}
out:
	free(idx);
	free(done);
	free(argv);
	free(scratch);
	return st;
}

typedef struct batch_ctx
{
	const int64_t *ids;
	const char *const *texts;
	const bool *retry;
	size_t		done;
	size_t		recorded;		/* not held: this worker's outcome already */
	bool	   *held;
	int64_t    *next_ms;		/* fail: ms to each job's next try, or -1 */
} batch_ctx;

static void
fill_id(size_t i, const char **args, char *scratch, void *data)
{
	batch_ctx  *b = data;

	qml__rds_id_text(b->ids[i], scratch);
	args[0] = scratch;
}

static void
fill_id_text(size_t i, const char **args, char *scratch, void *data)
{
	batch_ctx  *b = data;

	fill_id(i, args, scratch, data);
	args[1] = b->texts && b->texts[i] ? b->texts[i] : "";
}

static void
fill_fail(size_t i, const char **args, char *scratch, void *data)
{
	batch_ctx  *b = data;

	fill_id_text(i, args, scratch, data);
	args[2] = b->retry[i] ? "1" : "0";
	snprintf(scratch + 24, 24, "%.6f", jitter());
	args[3] = scratch + 24;
}

/* a job's code in an outcome's answer: >= 0 done, -2 recorded already */
static void
count_code(batch_ctx *b, long long code)
{
	if (code >= 0)
		b->done++;
	else if (code == -2)
		b->recorded++;
}

/* the complete script's answer: a code per job */
static qml_status
take_completed(redisReply *reply, const size_t *idx QML_UNUSED, size_t k,
			   void *data)
{
	for (size_t i = 0; i < k && i < reply->elements; i++)
		count_code(data, reply->element[i]->integer);
	return QML_OK;
}

/* the fail script's answer: (state, ms to the next try) per job */
static qml_status
take_failed(redisReply *reply, const size_t *idx, size_t k, void *data)
{
	batch_ctx  *b = data;

	for (size_t i = 0; i < k && 2 * i + 1 < reply->elements; i++)
	{
		count_code(b, reply->element[2 * i]->integer);
		if (b->next_ms)
			b->next_ms[idx[i]] = reply->element[2 * i + 1]->integer;
	}
	return QML_OK;
}

static qml_status
take_integer(redisReply *reply, const size_t *idx QML_UNUSED, size_t k QML_UNUSED,
			 void *data)
{
	((batch_ctx *) data)->done += (size_t) reply->integer;
	return QML_OK;
}

static qml_status
take_held(redisReply *reply, const size_t *idx, size_t k, void *data)
{
	for (size_t i = 0; i < k && i < reply->elements; i++)
		((batch_ctx *) data)->held[idx[i]] = reply->element[i]->integer == 1;
	return QML_OK;
}

static qml_status
session_result(qml_store_session *session, qml_status st)
{
	if (st == QML_ERR_CONNECT)
		((rds_session *) session)->broken = true;
	return st;
}

/* One outcome for n jobs held by `worker`, a script call per slot. */
static qml_status
outcome(qml_store_session *session, rds_script script, const char *worker,
		batch_ctx *b, size_t n, int per, fill_fn fill, take_fn take,
		size_t *done)
{
	const char *head[] = {worker};
	qml_status	st;

	st = by_slot(R(session->store), script, b->ids, n, head, 1, per, fill, take, b);
	*done = b->done;
	session->recorded = (long) b->recorded;
	return session_result(session, st);
}

static qml_status
rds_complete(qml_store_session *session, const char *worker, const int64_t *ids,
			 const char *const *results, size_t n, size_t *done)
{
	batch_ctx	b = {ids, results, NULL, 0, 0, NULL, NULL};

	return outcome(session, RDS_COMPLETE, worker, &b, n, 2, fill_id_text,
				   take_completed, done);
}

static qml_status
rds_fail(qml_store_session *session, const char *worker, const int64_t *ids,
		 const char *const *errors, const bool *retry, size_t n, size_t *done,
		 int64_t *next_ms)
{
	batch_ctx	b = {ids, errors, retry, 0, 0, NULL, next_ms};

	for (size_t i = 0; next_ms && i < n; i++)
		next_ms[i] = -1;
	return outcome(session, RDS_FAIL, worker, &b, n, 4, fill_fail, take_failed, done);
}

static qml_status
rds_release(qml_store_session *session, const char *worker, const int64_t *ids,
			size_t n, size_t *done)
{
	batch_ctx	b = {ids, NULL, NULL, 0, 0, NULL, NULL};

	return outcome(session, RDS_RELEASE, worker, &b, n, 1, fill_id, take_integer, done);
}

static qml_status
rds_heartbeat(qml_store *store, const char *worker, const int64_t *ids,
			  size_t n, int lease_ms, bool *held)
{
	batch_ctx	b = {ids, NULL, NULL, 0, 0, held, NULL};
	char		lease[16];
	const char *head[] = {worker, lease};

	memset(held, 0, n * sizeof(bool));
	snprintf(lease, sizeof(lease), "%d", lease_ms);
	return by_slot(R(store), RDS_HEARTBEAT, ids, n, head, 2, 1,
				   fill_id, take_held, &b);
}

/* ---- maintenance ---- */

static qml_status
rds_maintain(qml_store *store, char **report)
{
	rds_store  *r = R(store);
	char	  **queues = NULL;
	size_t		nq = 0;
	long long	totals[3] = {0, 0, 0};
	int64_t		fired = 0;
	qml_status	st;

	if ((st = qml__rds_queues(r, &queues, &nq)) != QML_OK)
		return st;
	for (size_t i = 0; i < nq && st == QML_OK; i++)
	{
		char		limit[16];
		char		seed[24];
		const char *argv[3] = {queues[i], limit, seed};
		redisReply *reply;

		snprintf(limit, sizeof(limit), "%d", MAINTAIN_LIMIT);
		snprintf(seed, sizeof(seed), "%u", (unsigned) (jitter() * 4e9));
		st = qml__rds_evals(r, RDS_MAINTAIN, qml__rds_queue_slot(queues[i]), 3, argv, &reply);
		if (st == QML_OK)
		{
			for (size_t k = 0; k < 3 && k < reply->elements; k++)
				totals[k] += reply->element[k]->integer;
			freeReplyObject(reply);
		}
	}
	for (size_t i = 0; i < nq; i++)
		free(queues[i]);
	free(queues);
	if (st == QML_OK)
		st = qml__rds_recurring_fire_due(r, &fired);
	if (st == QML_OK && report)
	{
		*report = malloc(160);
		if (*report == NULL)
			return qml__nomem();
		snprintf(*report, 160,
				 "{\"promoted\": %lld, \"rescued\": %lld, \"pruned\": %lld, \"recurring\": %lld}",
				 totals[0], totals[1], totals[2], (long long) fired);
	}
	return st;
}

/*
 * Every runtime ticks; the one that takes the lock (SET NX PX, expiring
 * after a tick) does the pass, so many worker hosts make one pass a tick
 * together, and a host that dies holding it holds it for a tick at most.
 */
static void
rds_tick(qml_store *store)
{
	rds_store  *r = R(store);
	char		key[96];
	char		px[16];
	const char *argv[6] = {"SET", key, r->lock_token, "NX", "PX", px};
	redisReply *reply;
	bool		mine;

	snprintf(key, sizeof(key), "%s:lock", r->url.prefix);
	snprintf(px, sizeof(px), "%d", qml__store_redis.tick_ms - 50);
	if (qml__rds_command(r, qml__rds_key_slot(key, strlen(key)), 6, argv, NULL,
						 &reply) != QML_OK)
	{
		if (reply)
			freeReplyObject(reply);
		return;
	}
	mine = reply->type == REDIS_REPLY_STATUS;
	freeReplyObject(reply);
	if (mine)
		rds_maintain(store, NULL);
}

/* ---- admin ---- */

static qml_status
by_id(rds_store *r, rds_script s, int64_t id, long long *result)
{
	char		idtext[RDS_ID_LEN + 1];
	const char *argv[1] = {idtext};
	redisReply *reply;
	qml_status	st;

	qml__rds_id_text(id, idtext);
	if ((st = qml__rds_evals(r, s, RDS_ID_SLOT(id), 1, argv, &reply)) != QML_OK)
		return st;
	*result = reply->integer;
	freeReplyObject(reply);
	return QML_OK;
}

static qml_status
rds_job_delete(qml_store *store, int64_t id, bool *done)
{
	long long	res;
	qml_status	st = by_id(R(store), RDS_DELETE, id, &res);

	if (st != QML_OK)
		return st;
	if (res < 0)
		return qml__error(QML_ERR_NOT_FOUND, "job %lld does not exist", (long long) id);
	if (done)
		*done = res == 1;
	return QML_OK;
}

static qml_status
rds_job_requeue(qml_store *store, int64_t id, bool *done)
{
	long long	res;
	qml_status	st = by_id(R(store), RDS_REQUEUE, id, &res);

	if (st != QML_OK)
		return st;
	if (res == -1)
		return qml__error(QML_ERR_NOT_FOUND, "job %lld does not exist", (long long) id);
	if (res == -2)
		return qml__error(QML_ERR_CONFLICT,
						  "another live job holds the unique key of job %lld",
						  (long long) id);
	if (done)
		*done = res == 1;
	return QML_OK;
}

static qml_status
rds_queue_pause(qml_store *store, const char *queue, bool pause, bool *changed)
{
	rds_store  *r = R(store);
	char		key[300];
	const char *set[] = {"SET", key, "1", "NX"};
	const char *del[] = {"DEL", key};
	redisReply *reply;
	qml_status	st;
	int			slot = qml__rds_queue_slot(queue);
	int			n;

	if ((st = note_queue(r, queue)) != QML_OK)
		return st;
	qml__rds_base(r, slot, key, sizeof(key));
	n = (int) strlen(key);
	snprintf(key + n, sizeof(key) - (size_t) n, "q:%s:paused", queue);
	st = pause ? qml__rds_command(r, slot, 4, set, NULL, &reply)
		: qml__rds_command(r, slot, 2, del, NULL, &reply);
	if (st == QML_OK && changed)
		*changed = pause ? reply->type == REDIS_REPLY_STATUS : reply->integer > 0;
	if (reply)
		freeReplyObject(reply);
	return st;
}

const qml_store_ops qml__store_redis = {
	.name = "redis",
	.open = rds_open,
	.close = rds_close,
	.schema_version = rds_schema_version,
	.migrate = rds_migrate,
	.health = rds_health,
	.enqueue = rds_enqueue,
	.enqueue_batch = rds_enqueue_batch,
	.session_open = rds_session_open,
	.session_close = rds_session_close,
	.session_ok = rds_session_ok,
	.session_fd = rds_session_fd,
	.session_drain = rds_session_drain,
	.fetch = rds_fetch,
	.complete = rds_complete,
	.fail = rds_fail,
	.release = rds_release,
	.heartbeat = rds_heartbeat,
	.maintain = rds_maintain,
	.tick = rds_tick,
	.tick_ms = 1000,
	.job_delete = rds_job_delete,
	.job_requeue = rds_job_requeue,
	.queue_pause = rds_queue_pause,
	.recurring_add = qml__rds_recurring_add,
	.recurring_remove = qml__rds_recurring_remove,
	.recurring_list = qml__rds_recurring_list,
	.recurring_run = qml__rds_recurring_run,
	.job_get = qml__rds_job_get,
	.job_list = qml__rds_job_list,
	.job_events = qml__rds_job_events,
	.stats = qml__rds_stats,
	.overview = qml__rds_overview,
	.throughput = qml__rds_throughput,
	.workers = qml__rds_workers,
};
