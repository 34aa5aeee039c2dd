# test/cron/cron.mk
#	Standalone unit test for the schedule parser (src/cron.c); its fuzzer
#	is test/fuzz/cron_fuzz.c (test/fuzz/fuzz.mk).
#
# Included by the top-level Makefile, or run on its own from the project
# root:  make -f test/cron/cron.mk cron-test | cron-clean
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
.PHONY: cron-test cron-clean

cron-test: $(CRON_SRC) $(CRON_HDR) $(CRON_DIR)/cron_test.c
	$(CRON_CC) $(CRON_CFLAGS) -Isrc -o $(CRON_DIR)/cron_test \
		$(CRON_DIR)/cron_test.c $(CRON_SRC)
	./$(CRON_DIR)/cron_test

cron-clean:
	rm -f $(CRON_DIR)/cron_test

ifdef CRON_STANDALONE
.DEFAULT_GOAL := cron-test
else
.DEFAULT_GOAL := $(CRON_SAVED_GOAL)
endif
