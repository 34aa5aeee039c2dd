/*
 * store_redis_conn.c
 *	  Connections of the Redis store: a pool per node, AUTH and SELECT on
 *	  connect, reconnect with backoff, the slot map of a cluster (from
 *	  CLUSTER SLOTS, refreshed on MOVED), ASK redirections, and scripts
 *	  called by SHA (EVALSHA) and loaded again on NOSCRIPT.
 *
 * hiredis has no cluster client, so routing is here: a command names the
 * slot it is for (store_redis.h: every key of a script shares one slot),
 * and goes to the node the slot map says; a MOVED reply corrects the map
 * (and fetches it whole again), an ASK reply sends that one command, after
 * ASKING, to the node named. A command is never sent twice after its
 * connection broke mid-way (it may have run): that is QML_ERR_CONNECT for
 * the caller, as a lost PostgreSQL connection is. Only connecting is
 * retried, with backoff.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_redis.h"

#define CONNECT_TRIES 3
#define REDIRECTS 5

struct rds_node
{
	char		host[256];
	int			port;
	redisContext *idle[64];
	int			nidle;
};

/* ---- slots and tags ---- */

static uint16_t
crc16(const char *buf, size_t len)
{
	uint16_t	crc = 0;

	for (size_t i = 0; i < len; i++)
	{
		crc ^= (uint16_t) ((unsigned char) buf[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021) : (uint16_t) (crc << 1);
	}
	return crc;
}

int
qml__rds_key_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);

	if (open)
	{
		const char *close = memchr(open + 1, '}', len - (size_t) (open + 1 - key));

		if (close && close > open + 1)
			return crc16(open + 1, (size_t) (close - open - 1)) % RDS_SLOTS;
	}
	return crc16(key, len) % RDS_SLOTS;
}

static char slot_tags[RDS_SLOTS][8];
static pthread_once_t tags_once = PTHREAD_ONCE_INIT;

/* the first decimal number hashing to each slot: a short tag per slot */
static void
build_tags(void)
{
	int			left = RDS_SLOTS;

	for (unsigned n = 0; left > 0; n++)
	{
		char		buf[8];
		int			len = snprintf(buf, sizeof(buf), "%u", n);
		int			slot = crc16(buf, (size_t) len) % RDS_SLOTS;

		if (slot_tags[slot][0] == '\0')
		{
			memcpy(slot_tags[slot], buf, (size_t) len + 1);
			left--;
		}
	}
}

const char *
qml__rds_slot_tag(int slot)
{
	pthread_once(&tags_once, build_tags);
	return slot_tags[slot];
}

int
qml__rds_queue_slot(const char *queue)
{
	return crc16(queue, strlen(queue)) % RDS_SLOTS;
}

void
qml__rds_base(const rds_store *r, int slot, char *buf, size_t size)
{
	snprintf(buf, size, "%s{%s}:", r->url.prefix, qml__rds_slot_tag(slot));
}

void
qml__rds_id_text(int64_t id, char *buf)
{
	snprintf(buf, RDS_ID_LEN + 1, "%016lld", (long long) id);
}

/* ---- nodes and connections ---- */

/* the node at host:port, added when new; caller holds r->mu; -1 if full */
static int
node_index(rds_store *r, const char *host, int port)
{
	rds_node   *n;

	for (int i = 0; i < r->nnodes; i++)
		if (r->nodes[i]->port == port && strcmp(r->nodes[i]->host, host) == 0)
			return i;
	if (r->nnodes == RDS_MAX_NODES || (n = calloc(1, sizeof(*n))) == NULL)
		return -1;
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	r->nodes[r->nnodes] = n;
	return r->nnodes++;
}

static qml_status
reply_error(const redisReply *reply, const char *what)
{
	return qml__error(QML_ERR_SERVER, "Redis refused %s: %.*s", what,
					  (int) reply->len, reply->str);
}

/* Frees a connection a call failed on, and its reply; returns st. */
static qml_status
discard(redisContext *c, redisReply *reply, qml_status st)
{
	if (reply)
		freeReplyObject(reply);
	redisFree(c);
	return st;
}

/* A new connection to a node, authenticated and on the URL's database. */
static qml_status
dial(rds_store *r, const char *host, int port, redisContext **out)
{
	struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	redisReply *reply;

	if (c == NULL)
		return qml__nomem();
	if (c->err)
	{
		qml_status	st = qml__error(QML_ERR_CONNECT,
									"cannot connect to Redis at %s:%d: %s",
									host, port, c->errstr);

		redisFree(c);
		return st;
	}
	redisSetTimeout(c, tv);
	if (r->url.password[0])
	{
		if (r->url.user[0])
			reply = redisCommand(c, "AUTH %s %s", r->url.user, r->url.password);
		else
			reply = redisCommand(c, "AUTH %s", r->url.password);
		if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
		{
			qml_status	st = qml__error(QML_ERR_CONNECT,
										"Redis at %s:%d refused the password: %s",
										host, port,
										reply ? reply->str : c->errstr);

			qml__error_set_extra(NULL, "Check the password in the URL "
								 "(redis://:PASSWORD@host:port/db).", NULL);
			return discard(c, reply, st);
		}
		freeReplyObject(reply);
	}
	if (r->url.db != 0)
	{
		reply = redisCommand(c, "SELECT %d", r->url.db);
		if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
		{
			qml_status	st = qml__error(QML_ERR_INVALID,
										"Redis at %s:%d refused database %d: %s",
										host, port, r->url.db,
										reply ? reply->str : c->errstr);

			return discard(c, reply, st);
		}
		freeReplyObject(reply);
	}
	*out = c;
	return QML_OK;
}

/* a refused password or database is not going to change */
static bool
worth_retrying(qml_status st)
{
	return st == QML_ERR_CONNECT && strstr(qml_errmsg(), "password") == NULL;
}

/* An idle connection to node i, or a new one (connecting tried `tries` times). */
static qml_status
acquire_tries(rds_store *r, int i, int tries, redisContext **out)
{
	char		host[256];
	int			port;
	qml_status	st = QML_OK;

	pthread_mutex_lock(&r->mu);
	if (r->nodes[i]->nidle > 0)
	{
		*out = r->nodes[i]->idle[--r->nodes[i]->nidle];
		pthread_mutex_unlock(&r->mu);
		return QML_OK;
	}
	snprintf(host, sizeof(host), "%s", r->nodes[i]->host);
	port = r->nodes[i]->port;
	pthread_mutex_unlock(&r->mu);
	for (int attempt = 0; attempt < tries; attempt++)
	{
		if (attempt > 0)
			qml__sleep_ms(qml__backoff_ms(attempt), NULL);
		st = dial(r, host, port, out);
		if (!worth_retrying(st))
			break;
	}
	return st;
}

static qml_status
acquire(rds_store *r, int i, redisContext **out)
{
	return acquire_tries(r, i, CONNECT_TRIES, out);
}

static void
give_back(rds_store *r, int i, redisContext *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	if (c->err == 0 && r->nodes[i]->nidle < r->pool_max &&
		r->nodes[i]->nidle < (int) (sizeof(r->nodes[i]->idle) / sizeof(c)))
	{
		r->nodes[i]->idle[r->nodes[i]->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&r->mu);
	if (c)
		redisFree(c);
}

/*
 * What any node of a cluster can do (CLUSTER SLOTS, SUBSCRIBE, SCRIPT
 * LOAD) goes to the first node that answers, starting from the one that
 * answered last: each node once a round, CONNECT_TRIES rounds with backoff.
 * A dead node (a failed master, the URL's first seed) thus costs one
 * refused connect, not a command's retries, and never stops the others
 * from serving. fn owns the connection (gives it back or frees it); an
 * error from it moves on to the next node.
 */
typedef qml_status (*node_fn) (rds_store *r, int i, redisContext *c, void *arg);

static qml_status
on_any_node(rds_store *r, node_fn fn, void *arg)
{
	qml_status	st = QML_ERR_CONNECT;

	for (int round = 0; round < CONNECT_TRIES; round++)
	{
		int			n,
					start;

		if (round > 0)
			qml__sleep_ms(qml__backoff_ms(round), NULL);
		pthread_mutex_lock(&r->mu);
		n = r->nnodes;
		start = r->any_node;
		pthread_mutex_unlock(&r->mu);
		for (int k = 0; k < n; k++)
		{
			int			i = (start + k) % n;
			redisContext *c;

			if ((st = acquire_tries(r, i, 1, &c)) == QML_OK &&
				(st = fn(r, i, c, arg)) == QML_OK)
			{
				pthread_mutex_lock(&r->mu);
				r->any_node = i;
				pthread_mutex_unlock(&r->mu);
				return QML_OK;
			}
			if (st == QML_ERR_CONNECT && !worth_retrying(st))
				return st;
		}
		/* only an outage is worth another round; an error reply is not */
		if (st != QML_ERR_CONNECT)
			break;
	}
	return st;
}

/* CLUSTER SLOTS on node i: the masters of every slot into the map */
static qml_status
read_slots(rds_store *r, int i, redisContext *c, void *arg QML_UNUSED)
{
	redisReply *reply = redisCommand(c, "CLUSTER SLOTS");
	qml_status	st;

	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
	{
		st = reply ? reply_error(reply, "CLUSTER SLOTS")
			: qml__error(QML_ERR_CONNECT, "lost Redis at %s:%d: %s",
						 r->nodes[i]->host, r->nodes[i]->port, c->errstr);
		if (reply)
			freeReplyObject(reply);
		give_back(r, i, c);
		return st;
	}
	pthread_mutex_lock(&r->mu);
	for (size_t e = 0; e < reply->elements; e++)
	{
		redisReply *range = reply->element[e];
		redisReply *master;
		int			node;

		if (range->type != REDIS_REPLY_ARRAY || range->elements < 3)
			continue;
		master = range->element[2];
		if (master->type != REDIS_REPLY_ARRAY || master->elements < 2)
			continue;
		node = node_index(r, master->element[0]->str,
						  (int) master->element[1]->integer);
		for (long long s = range->element[0]->integer;
			 node >= 0 && s <= range->element[1]->integer && s < RDS_SLOTS; s++)
			r->slots[s] = (int16_t) node;
	}
	pthread_mutex_unlock(&r->mu);
	freeReplyObject(reply);
	give_back(r, i, c);
	return QML_OK;
}

/* Reads the slot map from any node that answers; QML_ERR_CONNECT if none. */
static qml_status
refresh_slots(rds_store *r)
{
	return on_any_node(r, read_slots, NULL);
}

/* "MOVED 3999 127.0.0.1:6381" or "ASK ...": the node it names */
static int
redirect_node(rds_store *r, const redisReply *reply, bool *ask)
{
	char		host[256];
	int			port;
	int			slot;
	int			node;
	const char *addr;
	const char *colon;

	*ask = strncmp(reply->str, "ASK ", 4) == 0;
	if (!*ask && strncmp(reply->str, "MOVED ", 6) != 0)
		return -1;
	if (sscanf(reply->str + (*ask ? 4 : 6), "%d", &slot) != 1 ||
		(addr = strchr(reply->str + (*ask ? 4 : 6), ' ')) == NULL ||
		(colon = strrchr(addr, ':')) == NULL || colon - addr - 1 >= (int) sizeof(host))
		return -1;
	memcpy(host, addr + 1, (size_t) (colon - addr - 1));
	host[colon - addr - 1] = '\0';
	port = atoi(colon + 1);
	pthread_mutex_lock(&r->mu);
	node = node_index(r, host, port);
	if (!*ask && node >= 0 && slot >= 0 && slot < RDS_SLOTS)
		r->slots[slot] = (int16_t) node;
	pthread_mutex_unlock(&r->mu);
	return node;
}

static int
slot_node(rds_store *r, int slot)
{
	int			node = 0;

	if (!r->url.cluster || slot < 0)
		return 0;
	pthread_mutex_lock(&r->mu);
	node = r->slots[slot];
	pthread_mutex_unlock(&r->mu);
	if (node < 0 && refresh_slots(r) == QML_OK)
	{
		pthread_mutex_lock(&r->mu);
		node = r->slots[slot];
		pthread_mutex_unlock(&r->mu);
	}
	return node < 0 ? 0 : node;
}

/* on_any_node's fn for a command to any node: the connection itself */
typedef struct rds_any
{
	int			node;
	redisContext *c;
} rds_any;

static qml_status
take_connection(rds_store *r QML_UNUSED, int i, redisContext *c, void *arg)
{
	((rds_any *) arg)->node = i;
	((rds_any *) arg)->c = c;
	return QML_OK;
}

qml_status
qml__rds_command(rds_store *r, int slot, int argc, const char **argv,
				 const size_t *lens, redisReply **out)
{
	int			node = slot_node(r, slot);
	bool		ask = false;

	*out = NULL;
	for (int hop = 0; hop <= REDIRECTS; hop++)
	{
		redisContext *c;
		redisReply *reply;
		qml_status	st;
		int			next;

		if (slot < 0 && hop == 0)
		{
			/* any node (SCRIPT LOAD, a key-less command): one that answers */
			rds_any	any = {0, NULL};

			st = on_any_node(r, take_connection, &any);
			node = any.node;
			c = any.c;
		}
		else
			st = acquire(r, node, &c);
		if (st != QML_OK)
		{
			/* the node may be gone from the cluster: ask the others */
			if (r->url.cluster && hop < REDIRECTS && refresh_slots(r) == QML_OK &&
				slot_node(r, slot) != node)
			{
				node = slot_node(r, slot);
				continue;
			}
			return st;
		}
		if (ask)
		{
			reply = redisCommand(c, "ASKING");
			if (reply)
				freeReplyObject(reply);
		}
		reply = redisCommandArgv(c, argc, argv, lens);
		if (reply == NULL)
		{
			st = qml__error(QML_ERR_CONNECT, "lost Redis at %s:%d: %s",
							r->nodes[node]->host, r->nodes[node]->port,
							c->errstr[0] ? c->errstr : "connection closed");
			redisFree(c);
			return st;
		}
		give_back(r, node, c);
		if (reply->type != REDIS_REPLY_ERROR)
		{
			*out = reply;
			return QML_OK;
		}
		if ((next = redirect_node(r, reply, &ask)) >= 0)
		{
			freeReplyObject(reply);
			if (!ask)
				refresh_slots(r);
			node = next;
			continue;
		}
		if (strncmp(reply->str, "TRYAGAIN", 8) == 0 ||
			strncmp(reply->str, "CLUSTERDOWN", 11) == 0 ||
			strncmp(reply->str, "LOADING", 7) == 0)
		{
			freeReplyObject(reply);
			qml__sleep_ms(qml__backoff_ms(hop + 1), NULL);
			ask = false;
			continue;
		}
		*out = reply;
		if (strncmp(reply->str, "NOAUTH", 6) == 0 || strncmp(reply->str, "WRONGPASS", 9) == 0)
		{
			qml__error(QML_ERR_CONNECT, "Redis at %s:%d needs a password: %.*s",
					   r->nodes[node]->host, r->nodes[node]->port,
					   (int) reply->len, reply->str);
			qml__error_set_extra(NULL, "Put it in the URL: redis://:PASSWORD@host:port/db.",
								 NULL);
			return QML_ERR_CONNECT;
		}
		return qml__error(QML_ERR_SERVER, "Redis error: %.*s", (int) reply->len,
						  reply->str);
	}
	return qml__error(QML_ERR_CONNECT, "Redis kept redirecting slot %d", slot);
}

/* ---- wakeups ---- */

static qml_status
subscribe_on(rds_store *r, int i, redisContext *c, void *arg)
{
	char		channel[96];
	redisReply *reply;

	snprintf(channel, sizeof(channel), "%s:wake", r->url.prefix);
	reply = redisCommand(c, "SUBSCRIBE %s", channel);
	if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
	{
		qml_status	st = qml__error(QML_ERR_CONNECT, "Redis at %s:%d refused SUBSCRIBE: %s",
									r->nodes[i]->host, r->nodes[i]->port,
									reply && reply->str ? reply->str : c->errstr);

		return discard(c, reply, st);
	}
	freeReplyObject(reply);
	*(redisContext **) arg = c;
	return QML_OK;
}

/* any node: a cluster passes every PUBLISH to all of them */
qml_status
qml__rds_subscribe(rds_store *r, redisContext **out)
{
	return on_any_node(r, subscribe_on, out);
}

/* ---- scripts ---- */

static qml_status
load_scripts(rds_store *r)
{
	for (int i = 0; i < RDS_SCRIPT_COUNT; i++)
	{
		const char *text = qml__rds_script_text(i);
		const char *argv[] = {"SCRIPT", "LOAD", text};
		size_t		lens[] = {6, 4, text ? strlen(text) : 0};
		redisReply *reply;
		qml_status	st;

		if (text == NULL)
			return qml__nomem();
		if ((st = qml__rds_command(r, -1, 3, argv, lens, &reply)) != QML_OK)
		{
			if (reply)
				freeReplyObject(reply);
			return st;
		}
		if (reply->type != REDIS_REPLY_STRING || reply->len != 40)
		{
			freeReplyObject(reply);
			return qml__error(QML_ERR_SERVER, "Redis did not load a script");
		}
		memcpy(r->sha[i], reply->str, 41);
		freeReplyObject(reply);
	}
	atomic_store(&r->sha_ready, true);
	return QML_OK;
}

qml_status
qml__rds_eval(rds_store *r, rds_script s, int slot, int argc,
			  const char **argv, const size_t *lens, redisReply **out)
{
	const char *av[64];
	size_t		al[64];
	const char **pa = av;
	size_t	   *pl = al;
	char		base[96];
	char		hcap[16];
	char		ttl[24];
	int			n = argc + 7;
	qml_status	st;

	*out = NULL;
	if (n > 64)
	{
		pa = malloc(sizeof(*pa) * (size_t) n);
		pl = malloc(sizeof(*pl) * (size_t) n);
		if (pa == NULL || pl == NULL)
		{
			free(pa);
			free(pl);
			return qml__nomem();
		}
	}
	qml__rds_base(r, slot, base, sizeof(base));
	snprintf(hcap, sizeof(hcap), "%d", r->url.history);
	snprintf(ttl, sizeof(ttl), "%lld", (long long) r->url.ttl_ms);
	pa[0] = "EVALSHA";
	pa[1] = r->sha[s];
	pa[2] = "1";
	pa[3] = base;
	pa[4] = hcap;
	pa[5] = ttl;
	pa[6] = r->url.prune_failed ? "1" : "0";
	for (int i = 0; i < 7; i++)
		pl[i] = strlen(pa[i]);
	for (int i = 0; i < argc; i++)
	{
		pa[7 + i] = argv[i];
		pl[7 + i] = lens ? lens[i] : strlen(argv[i]);
	}
	st = qml__rds_command(r, slot, n, pa, pl, out);
	if (st == QML_ERR_SERVER && *out && strncmp((*out)->str, "NOSCRIPT", 8) == 0)
	{
		/* that node lost its scripts (a restart, SCRIPT FLUSH): EVAL loads it */
		freeReplyObject(*out);
		*out = NULL;
		pa[0] = "EVAL";
		pa[1] = qml__rds_script_text(s);
		pl[0] = 4;
		pl[1] = strlen(pa[1]);
		st = qml__rds_command(r, slot, n, pa, pl, out);
	}
	if (st != QML_OK && *out)
	{
		freeReplyObject(*out);
		*out = NULL;
	}
	if (pa != av)
	{
		free(pa);
		free(pl);
	}
	return st;
}

qml_status
qml__rds_evals(rds_store *r, rds_script s, int slot, int argc,
			   const char **argv, redisReply **out)
{
	return qml__rds_eval(r, s, slot, argc, argv, NULL, out);
}

qml_status
qml__rds_connect(rds_store *r)
{
	qml_status	st;

	memset(r->slots, 0xff, sizeof(r->slots));
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->url.nseeds; i++)
		node_index(r, r->url.seeds[i].host, r->url.seeds[i].port);
	pthread_mutex_unlock(&r->mu);
	if (r->url.cluster && (st = refresh_slots(r)) != QML_OK)
		return st;
	return load_scripts(r);
}

void
qml__rds_disconnect(rds_store *r)
{
	for (int i = 0; i < r->nnodes; i++)
	{
		for (int c = 0; c < r->nodes[i]->nidle; c++)
			redisFree(r->nodes[i]->idle[c]);
		free(r->nodes[i]);
		r->nodes[i] = NULL;
	}
	r->nnodes = 0;
}
