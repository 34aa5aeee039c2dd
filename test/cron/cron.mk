# test/cron/cron.mk
#	Standalone unit test and fuzzer for the schedule parser (src/cron.c).
#
# Included by the top-level Makefile, or run on its own from the project
# root:  make -f test/cron/cron.mk cron-test | cron-fuzz | cron-clean
# Only CRON_* variables and cron-* targets are defined, so PGXS is not
# disturbed; paths are relative to the project root.

# When run on its own the unit test is the default goal; when included, keep
# whatever default goal the including Makefile has or will define.
ifeq ($(words $(MAKEFILE_LIST)),1)
CRON_STANDALONE := 1
endif
CRON_SAVED_GOAL := $(.DEFAULT_GOAL)

CRON_DIR		:= test/cron
CRON_SRC		:= src/cron.c
CRON_HDR		:= src/cron.h
CRON_CC			?= gcc
CRON_CFLAGS		?= -std=gnu99 -Wall -Wextra -Werror -O1 -g
CRON_FUZZ_CC	?= clang
CRON_FUZZ_CFLAGS ?= -g -O1 -Wall -Wextra -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined
CRON_FUZZ_SECONDS ?= 20
# libFuzzer adds the inputs it finds to the first corpus directory, so the
# committed seeds (CRON_FUZZ_SEEDS) are only read and a scratch copy grows.
CRON_FUZZ_SEEDS	:= $(CRON_DIR)/corpus
CRON_FUZZ_WORK	:= $(CRON_DIR)/fuzz-corpus
CRON_FUZZ_OPTS	?= -timeout=10 -max_len=300

.PHONY: cron-test cron-fuzz cron-clean

cron-test: $(CRON_SRC) $(CRON_HDR) $(CRON_DIR)/cron_test.c
	$(CRON_CC) $(CRON_CFLAGS) -Isrc -o $(CRON_DIR)/cron_test \
		$(CRON_DIR)/cron_test.c $(CRON_SRC)
	./$(CRON_DIR)/cron_test

cron-fuzz: $(CRON_SRC) $(CRON_HDR) $(CRON_DIR)/cron_fuzz.c
	$(CRON_FUZZ_CC) $(CRON_FUZZ_CFLAGS) -Isrc -o $(CRON_DIR)/cron_fuzz \
		$(CRON_DIR)/cron_fuzz.c $(CRON_SRC)
	mkdir -p $(CRON_FUZZ_WORK)
	./$(CRON_DIR)/cron_fuzz $(CRON_FUZZ_OPTS) \
		-max_total_time=$(CRON_FUZZ_SECONDS) -print_final_stats=1 \
		-artifact_prefix=$(CRON_DIR)/fuzz- \
		$(CRON_FUZZ_WORK) $(CRON_FUZZ_SEEDS)

cron-clean:
	rm -rf $(CRON_DIR)/cron_test $(CRON_DIR)/cron_fuzz $(CRON_FUZZ_WORK) \
		$(CRON_DIR)/fuzz-crash-* $(CRON_DIR)/fuzz-leak-* \
		$(CRON_DIR)/fuzz-timeout-* $(CRON_DIR)/fuzz-oom-*

ifdef CRON_STANDALONE
.DEFAULT_GOAL := cron-test
else
.DEFAULT_GOAL := $(CRON_SAVED_GOAL)
endif
