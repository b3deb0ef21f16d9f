# picoimapd -- GNU make.
#   make                 build ./picoimapd for the current .config (host default)
#   make run             install what is missing, build, run the demo server
#   make test            unit + integration tests, then again under ASan+UBSan
#   make menuconfig | defconfig | <board>_defconfig

PYTHON   ?= /usr/bin/python3
CC       ?= cc
BUILD    ?= build
SAN      ?= 0
V        ?= 0

KCONFIG  := Kconfig
DOTCONFIG := .config
GENCONFIG := $(PYTHON) board/tools/genconfig.py
CONFIG_H := $(BUILD)/config.h

ifeq ($(V),0)
Q := @
else
Q :=
endif

# Values from .config that the build itself needs.
-include $(DOTCONFIG)

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wundef \
	-Wno-unused-parameter -D_FILE_OFFSET_BITS=64 -Icore -Iport -Istorage -I$(BUILD)
ifeq ($(SAN),1)
OPT ?= -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDSAN := -fsanitize=address,undefined
else
OPT ?= -Os -g
LDSAN :=
endif
CFLAGS  ?=
LDFLAGS ?=
ifeq ($(CONFIG_STATIC),y)
LDFLAGS += -static
endif
ALL_CFLAGS := $(CFLAGS_BASE) $(OPT) $(CFLAGS)

CORE_SRC    := $(wildcard core/*.c)
STORAGE_SRC := $(wildcard storage/*.c)
PORT_SRC    := $(wildcard port/posix/*.c) port/tls_mbedtls.c
# Other network ports (lwIP, CONFIG_PORT_LWIP) replace PORT_SRC there.
include board/port.mk
# mbedTLS is linked only when the generated header says CONFIG_TLS 1
# (tls_mbedtls.c compiles to nothing otherwise). Read from config.h, not
# .config, so an old .config without the symbol still links right.
# Both libraries are linked from their static archives (-l:lib*.a; Debian's
# -dev packages ship them) so that the binary needs nothing at run time but
# libc, which stays dynamic on the host. Board builds are fully static and
# set their own TLS_LIBS/Z_LIBS in board/boards.mk.
TLS_LIBS     = $(if $(shell grep -s '^\#define CONFIG_TLS 1$$' $(CONFIG_H)),-l:libmbedtls.a -l:libmbedx509.a -l:libmbedcrypto.a)
# zlib only when COMPRESS=DEFLATE is built.
Z_LIBS       = $(if $(shell grep -s '^\#define CONFIG_EXT_COMPRESS 1$$' $(CONFIG_H)),-l:libz.a)
LIB_SRC     := $(CORE_SRC) $(STORAGE_SRC)
LIB_OBJ     := $(LIB_SRC:%.c=$(BUILD)/%.o)
PORT_OBJ    := $(PORT_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all run test test-unit test-integration test-asan fuzz clean distclean \
	menuconfig defconfig olddefconfig deps demo FORCE

all: $(BUILD)/picoimapd
ifeq ($(BUILD),build)
	$(Q)cp $(BUILD)/picoimapd picoimapd
endif

$(DOTCONFIG):
	$(Q)$(GENCONFIG) defconfig $(KCONFIG) board/host/defconfig $(DOTCONFIG)

$(CONFIG_H): $(DOTCONFIG) $(KCONFIG) $(wildcard port/Kconfig.* core/Kconfig.* board/Kconfig.*) board/tools/genconfig.py
	$(Q)mkdir -p $(BUILD)
	$(Q)$(GENCONFIG) header $(KCONFIG) $(DOTCONFIG) $@

$(BUILD)/%.o: %.c $(CONFIG_H)
	$(Q)mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/picoimapd: $(LIB_OBJ) $(PORT_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(OPT) $(LDSAN) $(LDFLAGS) -o $@ $^ $(TLS_LIBS) $(Z_LIBS)

# Unit tests link the whole server but main(), so the port is the real one.
PORT_LIB_OBJ := $(filter-out $(BUILD)/port/posix/main.o,$(PORT_OBJ))
$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJ) $(PORT_LIB_OBJ) tests/unit/unit.h
	$(Q)mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/unit $(LDSAN) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(PORT_LIB_OBJ) $(TLS_LIBS) $(Z_LIBS)

-include $(LIB_OBJ:.o=.d) $(PORT_OBJ:.o=.d)

# ---- configuration ----
menuconfig: deps
	$(Q)srctree=. $(PYTHON) -m menuconfig $(KCONFIG)

defconfig:
	$(Q)$(GENCONFIG) defconfig $(KCONFIG) board/host/defconfig $(DOTCONFIG)

olddefconfig:
	$(Q)$(GENCONFIG) olddefconfig $(KCONFIG) $(DOTCONFIG)

%_defconfig:
	$(Q)test -f board/$*/defconfig || { echo "no board/$*/defconfig"; exit 1; }
	$(Q)$(GENCONFIG) defconfig $(KCONFIG) board/$*/defconfig $(DOTCONFIG)
	@echo "configured for board $*"

# ---- newcomer commands ----
deps:
	$(Q)sh board/tools/deps.sh build

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh board/tools/demo.sh
	exec ./picoimapd -c demo/picoimapd.conf

# ---- tests ----
# Every stage runs even when an earlier one fails, so one run reports all;
# the exit status is nonzero if any failed.
test: deps
	$(Q)sh board/tools/deps.sh test
	$(Q)rc=0; \
	$(MAKE) --no-print-directory test-unit || rc=1; \
	$(MAKE) --no-print-directory test-integration || rc=1; \
	$(MAKE) --no-print-directory test-asan || rc=1; \
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-20} || rc=1; \
	exit $$rc

test-unit: $(UNIT_BIN)
	$(Q)sh tests/run-unit.sh $(UNIT_BIN)

test-integration: $(BUILD)/picoimapd
	$(Q)PICOIMAPD=$(abspath $(BUILD)/picoimapd) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

test-asan:
	$(Q)rc=0; \
	$(MAKE) --no-print-directory BUILD=build-asan SAN=1 test-unit || rc=1; \
	$(MAKE) --no-print-directory BUILD=build-asan SAN=1 test-integration || rc=1; \
	exit $$rc

FUZZ_SECONDS ?= 20
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
fuzz: $(CONFIG_H)
	$(Q)sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_SRC)

clean:
	rm -rf build build-asan build-fuzz picoimapd

distclean: clean
	rm -rf .config demo

# Targets owned by other parts of the tree (boards, benchmarks).
-include board/boards.mk
-include tests/bench/bench.mk
