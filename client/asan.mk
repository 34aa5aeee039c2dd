# client/asan.mk
#	make check-asan: libqml, the qml command and the client's C tests built
#	again with AddressSanitizer and UndefinedBehaviorSanitizer (clang), into
#	client/build-asan/ so the normal build is untouched, then the client
#	suite (client/tests/run.sh) and the CLI suite (test/cli/run.sh) run on
#	those binaries. Needs the running cluster the suites need (PG*).
#	valgrind is skipped there (it cannot run sanitized binaries); the
#	normal suites keep it.
#
# Included by the top-level Makefile after client/client.mk; only QMLA_*
# variables and asan targets are defined.

QMLA_DIR		:= $(QMLC_DIR)/build-asan
QMLA_CC			?= clang
QMLA_CFLAGS		?= -std=gnu11 -O1 -g -Wall -Wextra -fno-omit-frame-pointer -pthread \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
QMLA_LIB_OBJS	:= $(patsubst $(QMLC_DIR)/src/%.c,$(QMLA_DIR)/lib/%.o,$(QMLC_LIB_SRCS)) \
				   $(QMLA_DIR)/lib/cron.o
QMLA_CLI_OBJS	:= $(patsubst $(QMLC_DIR)/cli/%.c,$(QMLA_DIR)/cli/%.o,$(QMLC_CLI_SRCS))
QMLA_DASH_OBJS	:= $(patsubst $(QMLC_DIR)/dashboard/%.c,$(QMLA_DIR)/dashboard/%.o,$(QMLC_DASH_SRCS)) \
				   $(QMLA_DIR)/dashboard/assets_data.o
QMLA_TESTS		:= $(patsubst $(QMLC_DIR)/tests/%,$(QMLA_DIR)/tests/%,$(QMLC_TESTS))
# leaks are errors; the first report stops a test, with a stack
QMLA_ENV		:= ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: check-asan client-asan

client-asan: $(QMLA_DIR)/libqml.a $(QMLA_DIR)/qml $(QMLA_TESTS)

$(QMLA_DIR)/lib/%.o: $(QMLC_DIR)/src/%.c $(QMLC_LIB_HDRS)
	@mkdir -p $(@D)
	$(QMLA_CC) $(QMLC_CPPFLAGS) $(QMLA_CFLAGS) -c -o $@ $<

$(QMLA_DIR)/lib/cron.o: src/cron.c src/cron.h
	@mkdir -p $(@D)
	$(QMLA_CC) $(QMLC_CPPFLAGS) $(QMLA_CFLAGS) -c -o $@ $<

$(QMLA_DIR)/cli/%.o: $(QMLC_DIR)/cli/%.c $(QMLC_CLI_HDRS) $(QMLC_DIR)/dashboard/dashboard.h
	@mkdir -p $(@D)
	$(QMLA_CC) $(QMLC_CPPFLAGS) $(QMLA_CFLAGS) -c -o $@ $<

$(QMLA_DIR)/dashboard/%.o: $(QMLC_DIR)/dashboard/%.c $(QMLC_DASH_HDRS)
	@mkdir -p $(@D)
	$(QMLA_CC) $(QMLC_CPPFLAGS) $(QMLA_CFLAGS) -c -o $@ $<

$(QMLA_DIR)/dashboard/assets_data.o: $(QMLC_BUILD)/dashboard/assets_data.c $(QMLC_DASH_HDRS)
	@mkdir -p $(@D)
	$(QMLA_CC) $(QMLC_CPPFLAGS) -I$(QMLC_DIR)/dashboard $(QMLA_CFLAGS) -c -o $@ $<

$(QMLA_DIR)/libqml.a: $(QMLA_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(QMLA_DIR)/qml: $(QMLA_CLI_OBJS) $(QMLA_DASH_OBJS) $(QMLA_DIR)/libqml.a
	$(QMLA_CC) $(QMLA_CFLAGS) -o $@ $(QMLA_CLI_OBJS) $(QMLA_DASH_OBJS) $(QMLA_DIR)/libqml.a \
		$(QMLC_CIVET_LIBS) $(QMLC_LIBS)

$(QMLA_DIR)/tests/memory_oom_test: QMLA_TEST_LDFLAGS = $(QMLC_TEST_WRAP)
$(QMLA_DIR)/tests/%_test: $(QMLC_DIR)/tests/%_test.c $(QMLC_TEST_HDRS) $(QMLA_DIR)/libqml.a
	@mkdir -p $(@D)
	$(QMLA_CC) $(QMLC_CPPFLAGS) $(QMLA_CFLAGS) -o $@ $< $(QMLA_DIR)/libqml.a $(QMLC_LIBS) $(QMLA_TEST_LDFLAGS)

check-asan: client-asan
	$(QMLA_ENV) QML_CLIENT_TESTS=$(QMLA_DIR)/tests QML_NO_VALGRIND=1 $(QMLC_DIR)/tests/run.sh
	$(QMLA_ENV) QML_CLIENT_TESTS=$(QMLA_DIR)/tests $(QMLC_DIR)/tests/conformance.sh
	$(QMLA_ENV) QML_BIN=$(CURDIR)/$(QMLA_DIR)/qml test/cli/run.sh
