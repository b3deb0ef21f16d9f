# board/port.mk -- which network port the build links. Included by the
# Makefile right after its PORT_SRC line (and by board/boards.mk), so it
# may only set variables, never rules.
#
# CONFIG_PORT_LWIP=y: port/lwip over lwIP 2.1.3 (Debian's source package,
# fetched by board/tools/fetch-src.sh into build-deps/) with the board's
# lwipopts.h, plus everything of port/posix but its BSD-socket adapter
# (logging, main(), privilege drop do not depend on the network) and the
# TLS layer, which runs over any port_read/port_write.
PORT_MK_INCLUDED := 1

LWIP_VER  := 2.1.3+dfsg1
LWIP_DIR  := build-deps/src/lwip-$(LWIP_VER)
LWIP_FILES := core/init.c core/def.c core/inet_chksum.c core/ip.c core/mem.c \
	core/memp.c core/netif.c core/pbuf.c core/tcp.c core/tcp_in.c \
	core/tcp_out.c core/timeouts.c core/ipv4/etharp.c core/ipv4/icmp.c \
	core/ipv4/ip4.c core/ipv4/ip4_addr.c core/ipv4/ip4_frag.c netif/ethernet.c
LWIP_SRC  := $(addprefix $(LWIP_DIR)/src/,$(LWIP_FILES))
# The port: our lwIP glue, plus everything of port/posix but its network
# adapter (logging, main(), privilege drop do not depend on the network),
# and the TLS layer, which runs over any port_read/port_write.
LWIP_PORT_SRC := $(wildcard port/lwip/*.c) $(filter-out port/posix/net.c,$(wildcard port/posix/*.c)) \
	$(wildcard port/tls_*.c) $(LWIP_SRC)
LWIP_OPTS_DIR = $(subst ",,$(CONFIG_LWIP_OPTS_DIR))
LWIP_INC   = -Iport/lwip -I$(or $(LWIP_OPTS_DIR),board/lwip-tap) -I$(LWIP_DIR)/src/include


ifeq ($(CONFIG_PORT_LWIP),y)
PORT_SRC := $(LWIP_PORT_SRC)
ALL_CFLAGS += $(LWIP_INC)
endif
