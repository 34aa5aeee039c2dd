/*
 * store_redis.h
 *	  Declarations shared by the files of the Redis store; not installed.
 *
 * Who owns what: store_redis_url.c the URL, store_redis_conn.c connections
 * (pool per node, AUTH/SELECT, reconnect with backoff, the cluster's slot
 * map, MOVED/ASK, scripts by SHA with NOSCRIPT reload), store_redis_lua.c
 * the Lua scripts, store_redis.c the operations of store.h that change
 * jobs, store_redis_read.c those that read them.
 *
 * Keys. Everything of one queue, and every job of it, lives under one hash
 * tag, so each script touches one slot of a cluster: the tag of a queue is
 * the tag of its slot (crc16(queue) mod 16384), a short string whose own
 * slot is that one (store_redis_conn.c finds one per slot). Job ids are
 * seq * 16384 + slot, seq from a counter of that slot: the id alone names
 * the slot (complete/fail by id find the job) and ids are unique across the
 * cluster. Keys, with P the prefix and T the tag:
 *	 P{T}:seq				the slot's id counter
 *	 P{T}:j:ID				a job (hash); ID zero-padded to 16 digits
 *	 P{T}:h:ID				its history (list, capped)
 *	 P{T}:q:Q:ready			enqueued (zset: -priority, member due.ID)
 *	 P{T}:q:Q:sched|retry	scheduled / awaiting_retry (zset: due ms)
 *	 P{T}:q:Q:proc			processing (zset: lease expiry ms)
 *	 P{T}:q:Q:succeeded|failed|deleted	(zset: finished ms)
 *	 P{T}:q:Q:all			every job (zset, score 0, by ID)
 *	 P{T}:q:Q:u				unique key -> live job id (hash)
 *	 P{T}:q:Q:paused		present while paused
 *	 P{T}:q:Q:ct:TOKEN		ids a claim with that token took (set, expiring
 *							with their lease; store_redis_lua.c claim)
 *	 P{T}:q:Q:tp:MINUTE		succeeded/failed counts of a minute (hash s, f)
 *	 P{T}:q:Q:rec			recurring jobs of the queue (hash name -> JSON)
 *	 P:queues				every queue's name (set), P:recurring name ->
 *							queue (hash), P:lock maintenance lock
 */
#ifndef QML_STORE_REDIS_H
#define QML_STORE_REDIS_H

#include <pthread.h>
#include <stdatomic.h>

#include <hiredis/hiredis.h>

#include "internal.h"
#include "store.h"

#define RDS_SLOTS 16384
#define RDS_ID_LEN 16			/* digits of a zero-padded id */
#define RDS_MAX_NODES 64

extern const qml_store_ops qml__store_redis;

/* ---- store_redis_url.c ---- */

typedef struct rds_addr
{
	char		host[256];
	int			port;
} rds_addr;

typedef struct rds_url
{
	bool		cluster;		/* redis+cluster:// */
	bool		tls;			/* rediss:// */
	char		user[128];		/* "" = default user */
	char		password[256];	/* "" = no AUTH */
	int			db;				/* SELECT (0..; single server only) */
	rds_addr	seeds[RDS_MAX_NODES];
	int			nseeds;
	char		prefix[64];		/* key prefix, "qml" */
	int64_t		ttl_ms;			/* finished jobs kept, ms (0 = forever) */
	int			history;		/* events kept per job (0 = none) */
	bool		prune_failed;	/* failed jobs expire too */
} rds_url;

/* Parses `url`; QML_ERR_INVALID with a message naming what is wrong. */
qml_status	qml__rds_url_parse(const char *url, rds_url *out);

/* ---- store_redis_lua.c ---- */

typedef enum rds_script
{
	RDS_ENQUEUE,
	RDS_CLAIM,
	RDS_COMPLETE,
	RDS_FAIL,
	RDS_RELEASE,
	RDS_HEARTBEAT,
	RDS_MAINTAIN,
	RDS_DELETE,
	RDS_REQUEUE,
	RDS_RECUR_SET,
	RDS_RECUR_FIRE,
	RDS_COUNTS,
	RDS_SCRIPT_COUNT
} rds_script;

/* The full text of a script (the shared prelude and its body). */
const char *qml__rds_script_text(rds_script s);

/* ---- store_redis_conn.c ---- */

typedef struct rds_node rds_node;
typedef struct rds_conn rds_conn;

typedef struct rds_store
{
	qml_store	base;
	rds_url		url;
	int			pool_max;		/* connections per node */
	int			timeout_ms;		/* connect and command timeout */

	pthread_mutex_t mu;			/* guards nodes, slots and the pools */
	rds_node   *nodes[RDS_MAX_NODES];
	int			nnodes;
	int16_t		slots[RDS_SLOTS];	/* node index, -1 unknown (cluster) */
	int			any_node;		/* the node that last answered a key-less call */
	char		sha[RDS_SCRIPT_COUNT][41];
	atomic_bool sha_ready;
	int64_t		next_tick_mono;
	char		lock_token[40];
	atomic_uint_least64_t claim_seq;	/* the last claim token (rds_fetch) */
} rds_store;

/* slot of a key (its {tag} if any), as Redis Cluster computes it */
int			qml__rds_key_slot(const char *key, size_t len);
/* the tag (without braces) whose slot is `slot` */
const char *qml__rds_slot_tag(int slot);
/* the slot of a queue, and of a job id */
int			qml__rds_queue_slot(const char *queue);
#define RDS_ID_SLOT(id) ((int) ((id) % RDS_SLOTS))

/* "P{T}:" for a slot, into buf */
void		qml__rds_base(const rds_store *r, int slot, char *buf, size_t size);
/* id <-> its zero-padded text */
void		qml__rds_id_text(int64_t id, char *buf);

/*
 * A connection of its own SUBSCRIBEd to "P:wake", where the scripts
 * PUBLISH a queue's name when it gets work (the workers' wakeups).
 */
qml_status	qml__rds_subscribe(rds_store *r, redisContext **out);

qml_status	qml__rds_connect(rds_store *r);
void		qml__rds_disconnect(rds_store *r);

/*
 * One command (argv/lens as hiredis) for `slot` (-1: any node); follows
 * MOVED/ASK, reconnects once with backoff. On QML_OK *reply is the reply
 * (freeReplyObject); an error reply is QML_ERR_SERVER with its text.
 */
qml_status	qml__rds_command(rds_store *r, int slot, int argc,
							 const char **argv, const size_t *lens,
							 redisReply **reply);
/*
 * EVALSHA of a script with KEYS[1] = the base of `slot` and ARGV[1] = the
 * history cap, then `argc` more arguments; loads the scripts on NOSCRIPT.
 */
qml_status	qml__rds_eval(rds_store *r, rds_script s, int slot, int argc,
						  const char **argv, const size_t *lens,
						  redisReply **reply);
/* the same for NUL-terminated arguments */
qml_status	qml__rds_evals(rds_store *r, rds_script s, int slot, int argc,
						   const char **argv, redisReply **reply);

/* ---- store_redis_recur.c ---- */

qml_status	qml__rds_recurring_add(qml_store *store, const char *name,
								   const char *schedule, const char *method,
								   const char *arguments,
								   const qml_recurring_options *options);
qml_status	qml__rds_recurring_remove(qml_store *store, const char *name);
qml_status	qml__rds_recurring_list(qml_store *store, char **json);
qml_status	qml__rds_recurring_run(qml_store *store, const char *name, int64_t *id);
/* fires every recurring job that is due (the maintenance pass) */
qml_status	qml__rds_recurring_fire_due(rds_store *r, int64_t *fired);

/* ---- store_redis_read.c ---- */

qml_status	qml__rds_job_get(qml_store *store, int64_t id, qml_job **job);
qml_status	qml__rds_job_list(qml_store *store, const qml_job_filter *filter,
							  qml_job_list **list);
qml_status	qml__rds_job_events(qml_store *store, int64_t id,
								qml_job_event **events, size_t *count);
qml_status	qml__rds_stats(qml_store *store, const char *queue,
						   qml_queue_stats **stats, size_t *count);
qml_status	qml__rds_overview(qml_store *store, qml_store_session *via,
							  qml_overview **out);
qml_status	qml__rds_throughput(qml_store *store, qml_store_session *via,
								int minutes, qml_throughput_bucket **out,
								size_t *count);
qml_status	qml__rds_workers(qml_store *store, qml_worker_info **out,
							 size_t *count);
/* every queue's name; free each and the array */
qml_status	qml__rds_queues(rds_store *r, char ***names, size_t *count);

#endif							/* QML_STORE_REDIS_H */
