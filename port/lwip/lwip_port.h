/*
 * lwip_port.h -- pieces of the lwIP port shared between its files (not part
 * of the port.h contract).
 */
#ifndef PICO_LWIP_PORT_H
#define PICO_LWIP_PORT_H

#include "lwip/netif.h"

/* Attach to the TAP device `ifname` (created with IFF_TAP|IFF_NO_PI if it
 * does not exist) and add it to lwIP as the default netif with the given
 * IPv4 address. Returns the device's file descriptor, or -1 after logging. */
int tapif_open(struct netif *nif, const char *ifname, const ip4_addr_t *addr,
               const ip4_addr_t *mask, const ip4_addr_t *gw);

/* Read at most max_frames frames from the TAP device and feed them to
 * lwIP. Returns the number of frames read (0 when none were waiting). */
int tapif_input(struct netif *nif, int max_frames);

#endif
