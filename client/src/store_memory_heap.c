/*
 * store_memory_heap.c
 *	  The memory store's indexes: a binary heap of jobs that keeps each
 *	  job's position (so a job can leave or move in O(log n)), its three
 *	  orders, and a small chained string map for unique keys.
 */
#include <stdlib.h>
#include <string.h>

#include "store_memory.h"

/* claim order: higher priority, then earlier run_at, then lower id */
bool
mem_ready_before(const mem_job *a, const mem_job *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	if (a->run_at != b->run_at)
		return a->run_at < b->run_at;
	return a->id < b->id;
}

bool
mem_timer_before(const mem_job *a, const mem_job *b)
{
	if (a->run_at != b->run_at)
		return a->run_at < b->run_at;
	return a->id < b->id;
}

bool
mem_lease_before(const mem_job *a, const mem_job *b)
{
	if (a->locked_until != b->locked_until)
		return a->locked_until < b->locked_until;
	return a->id < b->id;
}

static void
put(mem_heap *h, size_t i, mem_job *j)
{
	h->items[i] = j;
	j->heap_index = (int) i;
}

static void
sift_up(mem_heap *h, size_t i)
{
	mem_job    *j = h->items[i];

	while (i > 0)
	{
		size_t		parent = (i - 1) / 2;

		if (!h->before(j, h->items[parent]))
			break;
		put(h, i, h->items[parent]);
		i = parent;
	}
	put(h, i, j);
}

static void
sift_down(mem_heap *h, size_t i)
{
	mem_job    *j = h->items[i];

	for (;;)
	{
		size_t		l = 2 * i + 1,
					best = l;

		if (l >= h->n)
			break;
		if (l + 1 < h->n && h->before(h->items[l + 1], h->items[l]))
			best = l + 1;
		if (!h->before(h->items[best], j))
			break;
		put(h, i, h->items[best]);
		i = best;
	}
	put(h, i, j);
}

/* room for `more` pushes that cannot fail; false when out of memory */
static bool
heap_reserve(mem_heap *h, size_t more)
{
	mem_job   **items;

	/* room already: the common case, without a call */
	if (h->n + more <= h->cap)
		return true;
	if ((items = qml__grow(h->items, &h->cap, h->n + more, 64, sizeof(mem_job *))) == NULL)
		return false;
	h->items = items;
	return true;
}

bool
mem_heap_push(mem_heap *h, mem_job *j)
{
	if (!heap_reserve(h, 1))
		return false;
	h->items[h->n] = j;
	sift_up(h, h->n++);
	return true;
}

mem_job *
mem_heap_top(const mem_heap *h)
{
	return h->n ? h->items[0] : NULL;
}

void
mem_heap_remove(mem_heap *h, mem_job *j)
{
	size_t		i = (size_t) j->heap_index;
	mem_job    *last;

	j->heap_index = -1;
	last = h->items[--h->n];
	if (i == h->n)
		return;
	put(h, i, last);
	mem_heap_fix(h, last);
}

void
mem_heap_fix(mem_heap *h, mem_job *j)
{
	size_t		i = (size_t) j->heap_index;

	if (i > 0 && h->before(j, h->items[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}

/* ---- an index: lane and heap ---- */

/*
 * Room for `more` pushes that cannot fail: a push that cannot grow the lane
 * goes to the heap, so room in the heap is enough.
 */
bool
mem_index_reserve(mem_index *x, size_t more)
{
	return heap_reserve(&x->heap, more);
}

bool
mem_index_push(mem_index *x, mem_job *j)
{
	mem_lane   *l = &x->lane;

	if (l->n > 0 && x->heap.before(j, &l->tail))
		return mem_heap_push(&x->heap, j);
	if (l->n == l->cap)
	{
		size_t		cap = l->cap ? l->cap * 2 : 256;
		mem_job   **ring = malloc(cap * sizeof(mem_job *));

		if (ring == NULL)
			return mem_heap_push(&x->heap, j);
		for (size_t i = 0; i < l->n; i++)
			ring[i] = l->ring[(l->head + i) % l->cap];
		free(l->ring);
		l->ring = ring;
		l->cap = cap;
		l->head = 0;
	}
	l->ring[(l->head + l->n) % l->cap] = j;
	j->heap_index = -2;
	j->lane_seq = l->base + (int64_t) l->n++;
	l->tail.priority = j->priority;
	l->tail.run_at = j->run_at;
	l->tail.locked_until = j->locked_until;
	l->tail.id = j->id;
	return true;
}

mem_job *
mem_index_top(mem_index *x)
{
	mem_lane   *l = &x->lane;
	mem_job    *h = mem_heap_top(&x->heap);

	while (l->n > 0 && l->ring[l->head] == NULL)
	{
		l->head = (l->head + 1) % l->cap;
		l->n--;
		l->base++;
	}
	if (l->n == 0)
		return h;
	return h && x->heap.before(h, l->ring[l->head]) ? h : l->ring[l->head];
}

void
mem_index_remove(mem_index *x, mem_job *j)
{
	mem_lane   *l = &x->lane;

	if (j->heap_index != -2)
	{
		mem_heap_remove(&x->heap, j);
		return;
	}
	l->ring[(l->head + (size_t) (j->lane_seq - l->base)) % l->cap] = NULL;
	j->heap_index = -1;
}

void
mem_index_each(mem_index *x, void (*fn) (mem_job *j, void *arg), void *arg)
{
	for (size_t i = 0; i < x->lane.n; i++)
	{
		mem_job    *j = x->lane.ring[(x->lane.head + i) % x->lane.cap];

		if (j)
			fn(j, arg);
	}
	for (size_t i = 0; i < x->heap.n; i++)
		fn(x->heap.items[i], arg);
}

void
mem_index_free(mem_index *x)
{
	free(x->lane.ring);
	free(x->heap.items);
}

/* ---- the string map ---- */

static size_t
hash(const char *s)
{
	size_t		h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char) *s++) * 1099511628211ULL;
	return h;
}

mem_job *
mem_map_get(const mem_map *m, const char *key)
{
	if (m->nbuckets == 0)
		return NULL;
	for (mem_map_entry *e = m->buckets[hash(key) % m->nbuckets]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e->job;
	return NULL;
}

static bool
grow(mem_map *m)
{
	size_t		nb = m->nbuckets ? m->nbuckets * 2 : 64;
	mem_map_entry **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return false;
	for (size_t i = 0; i < m->nbuckets; i++)
	{
		mem_map_entry *e = m->buckets[i],
				   *next;

		for (; e; e = next)
		{
			size_t		k = hash(e->key) % nb;

			next = e->next;
			e->next = b[k];
			b[k] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = nb;
	return true;
}

/* room for one put that cannot fail; false when out of memory */
bool
mem_map_reserve(mem_map *m)
{
	if (m->n >= m->nbuckets && !grow(m))
		return false;
	if (m->spare == NULL && (m->spare = malloc(sizeof(mem_map_entry))) == NULL)
		return false;
	return true;
}

bool
mem_map_put(mem_map *m, const char *key, mem_job *j)
{
	mem_map_entry *e;
	size_t		k;

	if (!mem_map_reserve(m))
		return false;
	e = m->spare;
	m->spare = NULL;
	k = hash(key) % m->nbuckets;
	e->key = key;
	e->job = j;
	e->next = m->buckets[k];
	m->buckets[k] = e;
	m->n++;
	return true;
}

void
mem_map_del(mem_map *m, const char *key)
{
	mem_map_entry **p;

	if (m->nbuckets == 0)
		return;
	for (p = &m->buckets[hash(key) % m->nbuckets]; *p; p = &(*p)->next)
	{
		if (strcmp((*p)->key, key) == 0)
		{
			mem_map_entry *e = *p;

			*p = e->next;
			free(e);
			m->n--;
			return;
		}
	}
}

void
mem_map_free(mem_map *m)
{
	for (size_t i = 0; i < m->nbuckets; i++)
	{
		mem_map_entry *e = m->buckets[i],
				   *next;

		for (; e; e = next)
		{
			next = e->next;
			free(e);
		}
	}
	free(m->buckets);
	free(m->spare);
	memset(m, 0, sizeof(*m));
}
