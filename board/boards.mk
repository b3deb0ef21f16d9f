# board/boards.mk -- board and port targets; included at the end of the
# top-level Makefile.
#
#   make lwip            build-lwip/picoimapd-lwip: picoimapd on lwIP (lwip-tap)
#   make test-lwip       the lwIP integration test (root, /dev/net/tun)
#   make board-<name>    cross build of board/<name> into build-<name>/
#   make boards          every cross board
#   make test-boards     boot the qemu-aarch64 image and test it
#   make test-endian     unit tests on big-endian MIPS (qemu-user), store BE<->LE
#   make install         binary, sample config, systemd unit (DESTDIR, PREFIX)
#   make install-openwrt binary, config, procd init script, OpenWrt layout
#   make sizes           text/data/bss and stripped size of the current build
#   make size-report     sizes per board, full and minimal config, vs budget
#
# The board builds run the top-level Makefile again with their own BUILD,
# DOTCONFIG and KCONFIG, so they never touch ./.config or build/.

# The lwIP variables (LWIP_SRC, LWIP_PORT_SRC, LWIP_INC) live in
# board/port.mk, which the Makefile includes early to pick PORT_SRC.
ifndef PORT_MK_INCLUDED
include board/port.mk
endif

$(LWIP_SRC):
	$(Q)sh board/tools/fetch-src.sh src lwip

ifeq ($(CONFIG_PORT_LWIP),y)
# lwIP is third-party code: our warnings, not our -Werror (and no
# -Wshadow/-Wundef, which its headers trip over).
$(LWIP_SRC:%.c=$(BUILD)/%.o): ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -Wall -Wno-address \
	$(OPT) -Iport -I$(BUILD) $(LWIP_INC)
endif

# ---- the lwip-tap build (until the Makefile picks PORT_SRC from the config) ----
LWIP_BUILD := build-lwip$(if $(filter 1,$(SAN)),-asan)
LWIP_MAKE = $(MAKE) --no-print-directory BUILD=$(LWIP_BUILD) \
	DOTCONFIG=$(LWIP_BUILD)/.config KCONFIG=$(LWIP_BUILD)/Kconfig

.PHONY: install install-openwrt lwip test-lwip sizes size-report boards test-boards test-endian FORCE_BOARDS

lwip: $(LWIP_SRC)
	$(Q)sh board/tools/kconfig-wrap.sh $(LWIP_BUILD)/Kconfig
	$(Q)srctree=$(CURDIR) $(LWIP_MAKE) lwip-tap_defconfig >/dev/null
	$(Q)srctree=$(CURDIR) $(LWIP_MAKE) PORT_SRC="$(LWIP_PORT_SRC)" \
		CFLAGS="$(LWIP_INC) $(CFLAGS)" $(LWIP_BUILD)/picoimapd
	$(Q)cmp -s $(LWIP_BUILD)/picoimapd $(LWIP_BUILD)/picoimapd-lwip || { \
		cp $(LWIP_BUILD)/picoimapd $(LWIP_BUILD)/picoimapd-lwip.tmp && \
		mv -f $(LWIP_BUILD)/picoimapd-lwip.tmp $(LWIP_BUILD)/picoimapd-lwip; }
	@echo "built $(LWIP_BUILD)/picoimapd-lwip"

test-lwip: lwip
	$(Q)PICOIMAPD_LWIP=$(abspath $(LWIP_BUILD)/picoimapd-lwip) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration/test_lwip.py

# ---- cross boards ----
CROSS_BOARDS := qemu-aarch64 qemu-armhf qemu-mipsel qemu-mips

board-%: FORCE_BOARDS
	$(Q)sh board/tools/build-board.sh $*

boards: $(addprefix board-,$(CROSS_BOARDS))

test-boards:
	$(Q)sh tests/boards/run.sh qemu-aarch64

test-endian:
	$(Q)sh tests/boards/endian.sh

size-report:
	$(Q)sh board/tools/size-report.sh

# The cross compiler and board flags, from the board's .config. Recipes
# expand $(CC), $(ALL_CFLAGS) and $(LDFLAGS) when they run, so setting them
# here, after the Makefile's own assignments, still applies.
unquote = $(subst ",,$(1))
CROSS_PREFIX := $(call unquote,$(CONFIG_CROSS_COMPILE))
ifneq ($(CROSS_PREFIX),)
CC := $(CROSS_PREFIX)gcc
endif
CONFIG_GOALS := %_defconfig defconfig olddefconfig menuconfig clean distclean
ifeq ($(CONFIG_LIBC_MUSL)$(filter $(CONFIG_GOALS),$(MAKECMDGOALS)),y)
MUSL_SPECS := $(shell sh board/tools/musl.sh "$(CROSS_PREFIX)")
ifeq ($(MUSL_SPECS),)
$(error CONFIG_LIBC_MUSL: no musl for "$(CROSS_PREFIX)" (board/tools/musl.sh))
endif
CC := $(CROSS_PREFIX)gcc -specs=$(MUSL_SPECS)
endif
ALL_CFLAGS += $(call unquote,$(CONFIG_BOARD_CFLAGS))
LDFLAGS += $(call unquote,$(CONFIG_BOARD_LDFLAGS))

# mbedTLS from Debian's source package with the board's config header
# (CONFIG_MBEDTLS_CONFIG), instead of the system's libmbedtls.
MBEDTLS_CONFIG_H := $(call unquote,$(CONFIG_MBEDTLS_CONFIG))
ifneq ($(MBEDTLS_CONFIG_H),)
ifeq ($(CONFIG_TLS),y)
MBEDTLS_OUT  := $(BUILD)/mbedtls
MBEDTLS_LIBS := $(addprefix $(MBEDTLS_OUT)/library/,libmbedtls.a libmbedx509.a libmbedcrypto.a)
ALL_CFLAGS += -I$(MBEDTLS_OUT)/include -DMBEDTLS_CONFIG_FILE='"$(abspath $(MBEDTLS_CONFIG_H))"'
LDFLAGS += -L$(MBEDTLS_OUT)/library
# The unit-test link line has no $(LDFLAGS): carry the -L in TLS_LIBS.
TLS_LIBS = -L$(MBEDTLS_OUT)/library -lmbedtls -lmbedx509 -lmbedcrypto
$(BUILD)/port/tls_mbedtls.o $(BUILD)/picoimapd $(UNIT_BIN): | $(MBEDTLS_OUT)/.built
$(MBEDTLS_OUT)/.built: $(MBEDTLS_CONFIG_H) board/common/mbedtls-small.h board/tools/build-mbedtls.sh
	$(Q)sh board/tools/build-mbedtls.sh "$(CC)" "$(CROSS_PREFIX)ar" $(MBEDTLS_CONFIG_H) $(MBEDTLS_OUT) \
		"$(call unquote,$(CONFIG_BOARD_CFLAGS))"
	$(Q)touch $@
endif
endif

# zlib from Debian's source package for cross builds with COMPRESS=DEFLATE
# (the host build links the system's -lz).
ifneq ($(CROSS_PREFIX),)
ifeq ($(CONFIG_EXT_COMPRESS),y)
ZLIB_OUT := $(BUILD)/zlib
ALL_CFLAGS += -I$(ZLIB_OUT)/include
Z_LIBS = -L$(ZLIB_OUT) -lz
$(BUILD)/core/compress.o $(BUILD)/picoimapd $(UNIT_BIN): | $(ZLIB_OUT)/libz.a
$(ZLIB_OUT)/libz.a: board/tools/build-zlib.sh
	$(Q)sh board/tools/build-zlib.sh "$(CC)" "$(CROSS_PREFIX)ar" $(ZLIB_OUT) \
		"$(call unquote,$(CONFIG_BOARD_CFLAGS))"
endif
endif

# ---- sizes ----
sizes: $(BUILD)/picoimapd
	$(Q)sh board/tools/sizes.sh "$(CROSS_PREFIX)" $(BUILD)/picoimapd

# ---- installation ----
# For NAS vendors and distributions: `make install DESTDIR=/tmp/stage
# PREFIX=/usr`. The config is installed as a sample; an existing one is
# never overwritten. OpenWrt packagers: `make install-openwrt DESTDIR=...`.
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
STRIP_CMD  := $(CROSS_PREFIX)strip

install: $(BUILD)/picoimapd
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/picoimapd $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(PREFIX)/share/doc/picoimapd
	install -m 755 $(BUILD)/picoimapd $(DESTDIR)$(SBINDIR)/picoimapd
	$(STRIP_CMD) $(DESTDIR)$(SBINDIR)/picoimapd
	install -m 644 board/dist/picoimapd.conf.sample $(DESTDIR)$(SYSCONFDIR)/picoimapd/picoimapd.conf.sample
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		board/dist/picoimapd.service > $(DESTDIR)$(UNITDIR)/picoimapd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/picoimapd.service
	install -m 644 $(wildcard README.md LICENSE) $(DESTDIR)$(PREFIX)/share/doc/picoimapd/

install-openwrt: $(BUILD)/picoimapd
	install -d $(DESTDIR)/usr/sbin $(DESTDIR)/etc/init.d $(DESTDIR)/etc/picoimapd
	install -m 755 $(BUILD)/picoimapd $(DESTDIR)/usr/sbin/picoimapd
	$(STRIP_CMD) $(DESTDIR)/usr/sbin/picoimapd
	install -m 755 board/dist/openwrt/picoimapd.init $(DESTDIR)/etc/init.d/picoimapd
	test -e $(DESTDIR)/etc/picoimapd/picoimapd.conf || \
		sed -e 's|^user = mail|user = nobody|' board/dist/picoimapd.conf.sample \
		> $(DESTDIR)/etc/picoimapd/picoimapd.conf
