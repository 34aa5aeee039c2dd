# client/client.mk
#	libqml (client/libqml.a, client/libqml.so), the qml command
#	(client/qml) with its dashboard (client/dashboard/), their tests and
#	the runtime benchmark.
#
# Included at the end of the top-level PGXS Makefile; paths are relative to
# the project root. Only QMLC_* variables and client*/install-client/
# bench-runtime targets are defined, and every rule names its own compiler
# flags, so PGXS's CFLAGS (and theirs ours) do not leak across.
#
#   make                 builds the extension and the client
#   make client-test     runs the client's C tests and valgrind pass
#                        (needs a running cluster: PG* or DATABASE_URL)
#   make install-client  installs qml, libqml, qml.h and qml.pc under
#                        QMLC_PREFIX (QMLC_LIBDIR for a multiarch libdir,
#                        DESTDIR for a staging root: debian/rules does both)
#   make bench-runtime   prints the runtime's jobs/s and latency

QMLC_DIR		:= client
QMLC_BUILD		:= $(QMLC_DIR)/build
QMLC_CC			?= cc
QMLC_PREFIX		?= /usr/local
QMLC_LIBDIR		?= $(QMLC_PREFIX)/lib
QMLC_INCLUDEDIR	?= $(QMLC_PREFIX)/include
# packagers' flags (dpkg-buildflags), appended to the compile and link lines
QMLC_EXTRA_CFLAGS ?=
QMLC_LDFLAGS	?=
# static: qml carries libqml.a (runs from the tree as is); shared: qml needs
# libqml.so.1 at run time, as a distribution package ships it
QMLC_CLI_LINK	?= static
QMLC_PQ_CFLAGS	:= $(shell pkg-config --cflags libpq 2>/dev/null || echo -I$$(pg_config --includedir))
QMLC_PQ_LIBS	:= $(shell pkg-config --libs libpq 2>/dev/null || echo -lpq)
QMLC_LIBS		:= $(QMLC_PQ_LIBS) -ljansson -lhiredis -lm -pthread
QMLC_CFLAGS		?= -std=gnu11 -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -fPIC -pthread
QMLC_CFLAGS		+= $(QMLC_EXTRA_CFLAGS)
QMLC_CPPFLAGS	:= -I$(QMLC_DIR)/include $(QMLC_PQ_CFLAGS)

QMLC_LIB_SRCS	:= $(wildcard $(QMLC_DIR)/src/*.c)
# the memory store's recurring jobs use the extension's schedule parser
QMLC_LIB_OBJS	:= $(patsubst $(QMLC_DIR)/src/%.c,$(QMLC_BUILD)/lib/%.o,$(QMLC_LIB_SRCS)) \
				   $(QMLC_BUILD)/lib/cron.o
QMLC_LIB_HDRS	:= $(QMLC_DIR)/include/qml.h $(wildcard $(QMLC_DIR)/src/*.h)
QMLC_CLI_SRCS	:= $(wildcard $(QMLC_DIR)/cli/*.c)
QMLC_CLI_OBJS	:= $(patsubst $(QMLC_DIR)/cli/%.c,$(QMLC_BUILD)/cli/%.o,$(QMLC_CLI_SRCS))
QMLC_CLI_HDRS	:= $(QMLC_DIR)/include/qml.h $(wildcard $(QMLC_DIR)/cli/*.h)
# the dashboard, linked into qml; its page embedded by embed_assets.sh
QMLC_DASH_SRCS	:= $(wildcard $(QMLC_DIR)/dashboard/*.c)
QMLC_DASH_OBJS	:= $(patsubst $(QMLC_DIR)/dashboard/%.c,$(QMLC_BUILD)/dashboard/%.o,$(QMLC_DASH_SRCS)) \
				   $(QMLC_BUILD)/dashboard/assets_data.o
QMLC_DASH_HDRS	:= $(QMLC_DIR)/include/qml.h $(QMLC_DIR)/dashboard/dashboard.h $(QMLC_DIR)/cli/cli.h
QMLC_ASSETS		:= $(sort $(wildcard $(QMLC_DIR)/dashboard/assets/*))
QMLC_CHARTJS	:= $(firstword $(wildcard /usr/share/javascript/chart.js/chart.umd.js \
										  /usr/share/javascript/chart.js/chart.min.js))
QMLC_CIVET_LIBS	:= -lcivetweb
QMLC_TESTS		:= $(patsubst %.c,%,$(wildcard $(QMLC_DIR)/tests/*_test.c))
QMLC_TEST_HDRS	:= $(wildcard $(QMLC_DIR)/tests/*.h)
ifeq ($(QMLC_CLI_LINK),shared)
QMLC_CLI_LIBQML	:= -L$(QMLC_DIR) -lqml
else
QMLC_CLI_LIBQML	:= $(QMLC_DIR)/libqml.a
endif

.PHONY: client client-test install-client client-clean bench-runtime

all: client
clean: client-clean

client: $(QMLC_DIR)/libqml.a $(QMLC_DIR)/libqml.so $(QMLC_DIR)/qml $(QMLC_TESTS)

# hidden by default: libqml.so exports the QML_API functions of qml.h only
$(QMLC_BUILD)/lib/%.o: $(QMLC_DIR)/src/%.c $(QMLC_LIB_HDRS)
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -fvisibility=hidden -c -o $@ $<

$(QMLC_BUILD)/lib/cron.o: src/cron.c src/cron.h
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -fvisibility=hidden -c -o $@ $<

$(QMLC_BUILD)/cli/%.o: $(QMLC_DIR)/cli/%.c $(QMLC_CLI_HDRS) $(QMLC_DIR)/dashboard/dashboard.h
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -c -o $@ $<

$(QMLC_DIR)/libqml.a: $(QMLC_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(QMLC_DIR)/libqml.so: $(QMLC_LIB_OBJS)
	$(QMLC_CC) -shared -Wl,-soname,libqml.so.1 $(QMLC_LDFLAGS) -o $@ $^ $(QMLC_LIBS)

$(QMLC_BUILD)/dashboard/%.o: $(QMLC_DIR)/dashboard/%.c $(QMLC_DASH_HDRS)
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -c -o $@ $<

# every file of assets/ under its own name, Debian's Chart.js as chart.js
$(QMLC_BUILD)/dashboard/assets_data.c: $(QMLC_DIR)/dashboard/embed_assets.sh $(QMLC_ASSETS) $(QMLC_CHARTJS) $(QMLC_DIR)/client.mk
	@mkdir -p $(@D)
	sh $(QMLC_DIR)/dashboard/embed_assets.sh $@ $(foreach f,$(QMLC_ASSETS),$(notdir $(f))=$(f)) \
		$(if $(QMLC_CHARTJS),chart.js=$(QMLC_CHARTJS))

$(QMLC_BUILD)/dashboard/assets_data.o: $(QMLC_BUILD)/dashboard/assets_data.c $(QMLC_DASH_HDRS)
	$(QMLC_CC) $(QMLC_CPPFLAGS) -I$(QMLC_DIR)/dashboard $(QMLC_CFLAGS) -c -o $@ $<

$(QMLC_DIR)/qml: $(QMLC_CLI_OBJS) $(QMLC_DASH_OBJS) $(QMLC_DIR)/libqml.a $(QMLC_DIR)/libqml.so
	$(QMLC_CC) $(QMLC_CFLAGS) $(QMLC_LDFLAGS) -o $@ $(QMLC_CLI_OBJS) $(QMLC_DASH_OBJS) $(QMLC_CLI_LIBQML) \
		$(QMLC_CIVET_LIBS) $(QMLC_LIBS)

# memory_oom_test refuses allocations: its own malloc, calloc and realloc
# stand in for libc's in the libqml.a it links (none in libqml itself)
QMLC_TEST_WRAP	:= -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
$(QMLC_DIR)/tests/memory_oom_test: QMLC_TEST_LDFLAGS = $(QMLC_TEST_WRAP)

$(QMLC_DIR)/tests/%_test: $(QMLC_DIR)/tests/%_test.c $(QMLC_TEST_HDRS) $(QMLC_DIR)/libqml.a
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -o $@ $< $(QMLC_DIR)/libqml.a $(QMLC_LIBS) $(QMLC_TEST_LDFLAGS)

client-test: client
	$(QMLC_DIR)/tests/run.sh

$(QMLC_BUILD)/bench-runtime: bench/runtime.c bench/rt_bench.h $(QMLC_DIR)/libqml.a
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -o $@ $< $(QMLC_DIR)/libqml.a $(QMLC_LIBS)

# bench/runtime_cost.sh: the runtime's store calls with fixed batch sizes
# (it calls libqml's internal store operations, so it sees client/src)
$(QMLC_BUILD)/runtime-cost: bench/runtime_cost.c bench/pq_bench.h $(QMLC_LIB_HDRS) $(QMLC_DIR)/libqml.a
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) -I$(QMLC_DIR)/src $(QMLC_CFLAGS) -o $@ $< $(QMLC_DIR)/libqml.a $(QMLC_LIBS)

# bench/horizon.sh's flow: a held xmin horizon through the runtime (issue 19)
$(QMLC_BUILD)/bench-horizon: bench/horizon.c bench/pq_bench.h $(QMLC_DIR)/libqml.a
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -o $@ $< $(QMLC_DIR)/libqml.a $(QMLC_LIBS)

# qml's side of bench/redis.sh (BullMQ's is bench/bullmq/bench.mjs)
$(QMLC_BUILD)/redis-bench: bench/redis_bench.c bench/rt_bench.h $(QMLC_DIR)/libqml.a
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -o $@ $< $(QMLC_DIR)/libqml.a $(QMLC_LIBS)

$(QMLC_BUILD)/bench-stores: bench/stores.c bench/rt_bench.h $(QMLC_DIR)/libqml.a
	@mkdir -p $(@D)
	$(QMLC_CC) $(QMLC_CPPFLAGS) $(QMLC_CFLAGS) -o $@ $< $(QMLC_DIR)/libqml.a $(QMLC_LIBS)

bench-runtime: $(QMLC_BUILD)/bench-runtime
	$(QMLC_BUILD)/bench-runtime $(BENCH_ARGS)

# qml.pc's version is the library's, QML_VERSION of qml.h
install-client: client
	install -d $(DESTDIR)$(QMLC_PREFIX)/bin $(DESTDIR)$(QMLC_LIBDIR)/pkgconfig $(DESTDIR)$(QMLC_INCLUDEDIR)
	install -m 755 $(QMLC_DIR)/qml $(DESTDIR)$(QMLC_PREFIX)/bin/qml
	install -m 644 $(QMLC_DIR)/libqml.a $(DESTDIR)$(QMLC_LIBDIR)/libqml.a
	install -m 644 $(QMLC_DIR)/libqml.so $(DESTDIR)$(QMLC_LIBDIR)/libqml.so.1
	ln -sf libqml.so.1 $(DESTDIR)$(QMLC_LIBDIR)/libqml.so
	install -m 644 $(QMLC_DIR)/include/qml.h $(DESTDIR)$(QMLC_INCLUDEDIR)/qml.h
	sed -e 's|@PREFIX@|$(QMLC_PREFIX)|' -e 's|@LIBDIR@|$(QMLC_LIBDIR)|' -e 's|@INCLUDEDIR@|$(QMLC_INCLUDEDIR)|' \
		-e "s|@VERSION@|$$(sed -n 's/^#define QML_VERSION \"\(.*\)\"/\1/p' $(QMLC_DIR)/include/qml.h)|" \
		$(QMLC_DIR)/qml.pc.in >$(DESTDIR)$(QMLC_LIBDIR)/pkgconfig/qml.pc

client-clean:
	rm -rf $(QMLC_BUILD) $(QMLC_DIR)/build-asan $(QMLC_DIR)/libqml.a $(QMLC_DIR)/libqml.so $(QMLC_DIR)/qml $(QMLC_TESTS)
