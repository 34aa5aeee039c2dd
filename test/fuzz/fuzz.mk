# test/fuzz/fuzz.mk
#	libFuzzer targets for every parser of outside input, one file per
#	target (test/fuzz/<target>_fuzz.c), each with a committed seed corpus
#	(test/fuzz/corpus/<target>/). Built with clang's
#	-fsanitize=fuzzer,address,undefined.
#
#   make fuzz                   every target, FUZZ_SECONDS (300) each
#   make fuzz FUZZ_SECONDS=10   the short run of the test command
#   make fuzz-cron              one target (cron, interval, routes,
#                               origins, exec_result, cli_args, batch)
#   make fuzz-build             build them only
#   make fuzz-server            qml.so itself under ASan and UBSan in a
#                               throwaway server: pg_regress, the isolation
#                               specs, the batch target, generated cron
#                               schedules (test/fuzz/server_sanitized.sh)
#
# The batch target drives qml.enqueue_batch in a running server (libpq's
# PG* environment, as the suites have it); the others run in-process.
# libFuzzer adds the inputs it finds to its first corpus directory, so the
# committed seeds are only read and a scratch copy under
# test/fuzz/build/ grows; a crash leaves test/fuzz/build/<target>-crash-*.
# Only FUZZ_* variables and fuzz* targets are defined, so PGXS is not
# disturbed; paths are relative to the project root.

FUZZ_DIR		:= test/fuzz
FUZZ_BUILD		:= $(FUZZ_DIR)/build
FUZZ_CC			?= clang
FUZZ_CFLAGS		?= -std=gnu11 -g -O1 -Wall -Wextra -Werror \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SECONDS	?= 300
FUZZ_TARGETS	:= cron interval routes origins exec_result cli_args batch

# what each target compiles besides its own file, and its own options
FUZZ_SRCS_cron			:= src/cron.c
FUZZ_SRCS_interval		:= src/cron.c
FUZZ_SRCS_routes		:= client/dashboard/router.c
FUZZ_HDRS_routes		:= client/dashboard/router.h
FUZZ_OPTS_routes		:= -max_len=1200 -dict=$(FUZZ_DIR)/routes.dict
FUZZ_SRCS_origins		:= client/dashboard/auth.c
FUZZ_HDRS_origins		:= client/dashboard/dashboard.h
FUZZ_OPTS_origins		:= -max_len=800 -dict=$(FUZZ_DIR)/origins.dict
FUZZ_SRCS_exec_result	:= client/cli/exec_result.c
FUZZ_HDRS_exec_result	:= client/cli/exec_result.h
FUZZ_LIBS_exec_result	:= -ljansson
FUZZ_OPTS_exec_result	:= -max_len=20000
FUZZ_SRCS_cli_args		:= client/cli/args.c client/cli/output.c $(wildcard client/src/*.c) src/cron.c
FUZZ_HDRS_cli_args		:= client/cli/cli.h client/src/internal.h client/include/qml.h
FUZZ_LIBS_cli_args		= $(FUZZ_PQ_LIBS) -ljansson -lhiredis -lm -pthread
FUZZ_OPTS_cli_args		:= -close_fd_mask=2 -max_len=600 -dict=$(FUZZ_DIR)/cli_args.dict
FUZZ_LIBS_batch			= $(FUZZ_PQ_LIBS)
FUZZ_OPTS_batch			:= -max_len=2000 -timeout=20 -dict=$(FUZZ_DIR)/batch.dict
FUZZ_OPTS_cron			:= -timeout=10 -max_len=300
FUZZ_OPTS_interval		:= -timeout=10 -max_len=300 -dict=$(FUZZ_DIR)/interval.dict
FUZZ_CPPFLAGS			:= -Iclient/include -Iclient/src -Iclient/cli -Iclient/dashboard -Isrc \
	$(shell pkg-config --cflags libpq 2>/dev/null || echo -I$$(pg_config --includedir))
# the lines of libFuzzer's log worth showing: seeds, start, end, totals
FUZZ_LOG_LINES			:= ^(INFO: seed corpus|\#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss)
FUZZ_PQ_LIBS			:= $(shell pkg-config --libs libpq 2>/dev/null || echo -lpq)

.PHONY: fuzz fuzz-build fuzz-clean fuzz-server $(addprefix fuzz-,$(FUZZ_TARGETS))

fuzz-build: $(foreach t,$(FUZZ_TARGETS),$(FUZZ_BUILD)/$(t)_fuzz)

# one after the other, so each gets the cores it can; the sanitized server
# last, as it runs the batch target again
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS) server; do \
		$(MAKE) -s --no-print-directory fuzz-$$t FUZZ_SECONDS=$(FUZZ_SECONDS) || exit 1; \
	done

fuzz-server: $(FUZZ_BUILD)/batch_fuzz
	@test/fuzz/server_sanitized.sh $(FUZZ_SECONDS)

define FUZZ_TARGET_RULES
$(FUZZ_BUILD)/$(1)_fuzz: $(FUZZ_DIR)/$(1)_fuzz.c $(FUZZ_SRCS_$(1)) $(FUZZ_HDRS_$(1)) $(FUZZ_DIR)/fuzz.mk
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -o $$@ $(FUZZ_DIR)/$(1)_fuzz.c $(FUZZ_SRCS_$(1)) $(FUZZ_LIBS_$(1))

fuzz-$(1): $(FUZZ_BUILD)/$(1)_fuzz
	@mkdir -p $(FUZZ_BUILD)/corpus-$(1)
	@echo "# fuzz $(1): $(FUZZ_SECONDS) s"
	@./$(FUZZ_BUILD)/$(1)_fuzz $(FUZZ_OPTS_$(1)) -max_total_time=$(FUZZ_SECONDS) \
		-print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/$(1)- \
		$(FUZZ_BUILD)/corpus-$(1) $(FUZZ_DIR)/corpus/$(1) >$(FUZZ_BUILD)/$(1).log 2>&1; \
	rc=$$$$?; \
	grep -E '$(FUZZ_LOG_LINES)' $(FUZZ_BUILD)/$(1).log; \
	[ $$$$rc = 0 ] || { tail -40 $(FUZZ_BUILD)/$(1).log; echo "# fuzz $(1): FAILED (exit $$$$rc)"; }; \
	exit $$$$rc
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_TARGET_RULES,$(t))))

clean: fuzz-clean
fuzz-clean:
	rm -rf $(FUZZ_BUILD)
