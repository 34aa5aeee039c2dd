/*
 * store_pg.h
 *	  The PostgreSQL store's operations, shared by its files: store_pg.c
 *	  (the table and life), store_pg_jobs.c (job API), store_pg_read.c
 *	  (monitoring), store_pg_schema.c (extension and health),
 *	  store_pg_session.c (the runtime's connections).
 */
#ifndef QML_STORE_PG_H
#define QML_STORE_PG_H

#include "internal.h"
#include "store.h"

/* the connection under a session (a watch reads over it) */
qml_conn   *qml__pg_session_conn(qml_store_session *session);

qml_status	pg_schema_version(qml_store *store, char **installed, char **available);
qml_status	pg_migrate(qml_store *store, bool only_if_needed, bool *migrated);
qml_status	pg_health(qml_store *store, qml_health **out);

qml_status	pg_enqueue(qml_store *store, const char *method, const char *arguments,
					   const qml_enqueue_options *o, int64_t *id);
qml_status	pg_enqueue_batch(qml_store *store, const qml_job_spec *jobs,
							 size_t count, int64_t *ids);
qml_status	pg_job_get(qml_store *store, int64_t id, qml_job **job);
qml_status	pg_job_list(qml_store *store, const qml_job_filter *filter,
						qml_job_list **out);
qml_status	pg_job_events(qml_store *store, int64_t id, qml_job_event **events,
						  size_t *count);
qml_status	pg_job_delete(qml_store *store, int64_t id, bool *done);
qml_status	pg_job_requeue(qml_store *store, int64_t id, bool *done);
qml_status	pg_stats(qml_store *store, const char *queue, qml_queue_stats **stats,
					 size_t *count);
qml_status	pg_queue_pause(qml_store *store, const char *queue, bool pause,
						   bool *changed);
qml_status	pg_recurring_add(qml_store *store, const char *name,
							 const char *schedule, const char *method,
							 const char *arguments,
							 const qml_recurring_options *options);
qml_status	pg_recurring_remove(qml_store *store, const char *name);
qml_status	pg_recurring_list(qml_store *store, char **json);
qml_status	pg_recurring_run(qml_store *store, const char *name, int64_t *id);
qml_status	pg_maintain(qml_store *store, char **report);

qml_status	pg_overview(qml_store *store, qml_store_session *via, qml_overview **out);
qml_status	pg_throughput(qml_store *store, qml_store_session *via, int minutes,
						  qml_throughput_bucket **out, size_t *count);
qml_status	pg_workers(qml_store *store, qml_worker_info **out, size_t *count);

qml_status	pg_session_open(qml_store *store, const qml_session_config *cfg,
							qml_store_session **out);
void		pg_session_close(qml_store_session *session);
void		pg_session_close_reported(qml_store_session *session);
bool		pg_session_ok(qml_store_session *session);
int			pg_session_fd(qml_store_session *session);
int			pg_session_drain(qml_store_session *session);
qml_status	pg_fetch(qml_store_session *session, int want, int wait_ms,
					 qml_store_job **out, int *got);
qml_status	pg_complete(qml_store_session *session, const char *worker,
						const int64_t *ids, const char *const *results,
						size_t n, size_t *done);
qml_status	pg_fail(qml_store_session *session, const char *worker,
					const int64_t *ids, const char *const *errors,
					const bool *retry, size_t n, size_t *done,
					int64_t *next_ms);
void		pg_session_tick(qml_store_session *session);
qml_status	pg_release(qml_store_session *session, const char *worker,
					   const int64_t *ids, size_t n, size_t *done);
qml_status	pg_heartbeat(qml_store *store, const char *worker, const int64_t *ids,
						 size_t n, int lease_ms, bool *held);

#endif							/* QML_STORE_PG_H */
