/*
 * redis_url_test.c
 *	  The Redis store without a server: its URLs (good and bad), the slot
 *	  of a key as Redis Cluster computes it, the tag of each slot, and ids
 *	  that name their slot.
 */
#include "testlib.h"
#include "../src/store_redis.h"

static void
test_urls(void)
{
	rds_url		u;

	is_status(qml__rds_url_parse("redis://127.0.0.1:6380/2", &u), QML_OK, "host, port, db");
	is_str(u.seeds[0].host, "127.0.0.1", "host");
	is_int(u.seeds[0].port, 6380, "port");
	is_int(u.db, 2, "db");
	ok(!u.cluster && !u.tls, "plain");
	is_str(u.prefix, "qml", "default prefix");
	is_int(u.ttl_ms, 86400000, "default ttl a day");
	is_int(u.history, 32, "default history 32 events");

	is_status(qml__rds_url_parse("redis://localhost", &u), QML_OK, "host only");
	is_int(u.seeds[0].port, 6379, "default port");
	is_int(u.db, 0, "default db");

	is_status(qml__rds_url_parse("redis://:s%40cr%3At@h:1/0", &u), QML_OK, "password");
	is_str(u.password, "s@cr:t", "percent-decoded password");
	is_str(u.user, "", "no user");
	is_status(qml__rds_url_parse("redis://bob:p@w@h:1", &u), QML_OK, "user and password with @");
	is_str(u.user, "bob", "user");
	is_str(u.password, "p@w", "the last @ ends the password");

	is_status(qml__rds_url_parse("rediss://h:6380/0", &u), QML_OK, "rediss");
	ok(u.tls, "tls");

	is_status(qml__rds_url_parse("redis+cluster://a:1,b:2,[::1]:3?prefix=app&ttl=60&history=0&prune_failed=1",
								 &u), QML_OK, "cluster with options");
	ok(u.cluster, "cluster");
	is_int(u.nseeds, 3, "three seeds");
	is_str(u.seeds[2].host, "::1", "IPv6 host");
	is_int(u.seeds[2].port, 3, "IPv6 port");
	is_str(u.prefix, "app", "prefix");
	is_int(u.ttl_ms, 60000, "ttl");
	is_int(u.history, 0, "history off");
	ok(u.prune_failed, "prune_failed");

	is_status(qml__rds_url_parse("redis://h:0", &u), QML_ERR_INVALID, "port 0");
	contains(qml_errmsg(), "bad port", "says port");
	is_status(qml__rds_url_parse("redis://h:99999", &u), QML_ERR_INVALID, "port too big");
	is_status(qml__rds_url_parse("redis://h/x", &u), QML_ERR_INVALID, "db not a number");
	contains(qml_errmsg(), "database", "says database");
	is_status(qml__rds_url_parse("redis:///0", &u), QML_ERR_INVALID, "no host");
	is_status(qml__rds_url_parse("redis://a:1,b:2", &u), QML_ERR_INVALID, "several hosts, not a cluster");
	contains(qml_errmsg(), "redis+cluster", "hints at the cluster scheme");
	is_status(qml__rds_url_parse("redis+cluster://a:1/3", &u), QML_ERR_INVALID, "cluster db 3");
	is_status(qml__rds_url_parse("redis://h?prefix=a{b}", &u), QML_ERR_INVALID, "prefix with a brace");
	is_status(qml__rds_url_parse("redis://h?ttl=-1", &u), QML_ERR_INVALID, "negative ttl");
	is_status(qml__rds_url_parse("redis://h?colour=red", &u), QML_ERR_INVALID, "unknown option");
	contains(qml_errmsg(), "colour", "names it");
	is_status(qml__rds_url_parse("redis://:%zz@h", &u), QML_ERR_INVALID, "bad percent encoding");
	is_status(qml__rds_url_parse("redis://[::1", &u), QML_ERR_INVALID, "unclosed bracket");
	is_status(qml__rds_url_parse("mysql://h", &u), QML_ERR_INVALID, "not redis");
}

static void
test_slots(void)
{
	bool		all = true;

	/* values from the Redis Cluster specification and redis-cli CLUSTER KEYSLOT */
	is_int(qml__rds_key_slot("123456789", 9), 12739, "crc16 of the spec's check string");
	is_int(qml__rds_key_slot("foo", 3), 12182, "slot of foo");
	is_int(qml__rds_key_slot("{user1000}.following", 20),
		   qml__rds_key_slot("user1000", 8), "a hash tag decides");
	is_int(qml__rds_key_slot("foo{}{bar}", 10), qml__rds_key_slot("foo{}{bar}", 10),
		   "an empty tag is no tag");
	is_int(qml__rds_key_slot("foo{}{bar}", 10), 8363, "the whole key then");
	for (int s = 0; s < RDS_SLOTS; s++)
	{
		const char *tag = qml__rds_slot_tag(s);

		if (qml__rds_key_slot(tag, strlen(tag)) != s)
			all = false;
	}
	ok(all, "every slot has a tag that hashes to it");
	is_int(RDS_ID_SLOT((int64_t) 7 * RDS_SLOTS + 5718), 5718, "an id names its slot");
}

int
main(void)
{
	test_urls();
	test_slots();
	return tap_done();
}
