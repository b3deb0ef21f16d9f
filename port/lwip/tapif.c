/*
 * tapif.c -- an lwIP Ethernet netif over a Linux TAP device.
 *
 * The device's fd is non-blocking and polled by port_poll() together with
 * lwIP's timers, so the stack runs in the loop's thread (NO_SYS=1). Frames
 * travel whole: with IFF_NO_PI each read() is one Ethernet frame and each
 * write() sends one.
 */
#include "lwip_port.h"
#include "port.h"

#include "lwip/etharp.h"
#include "lwip/pbuf.h"
#include "netif/ethernet.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Largest frame we exchange: a 1500-byte MTU plus the Ethernet header and a
 * VLAN tag. The kernel truncates nothing at this size for our MTU. */
#define TAP_FRAME_MAX 1522

static int tap_fd = -1;  /* the TAP device */

/* netif->linkoutput: send one frame. A full device queue drops the frame,
 * as a busy Ethernet would; TCP retransmits. */
static err_t tap_linkoutput(struct netif *nif, struct pbuf *p)
{
    unsigned char frame[TAP_FRAME_MAX];
    (void)nif;
    if (p->tot_len > sizeof frame) {
        return ERR_BUF;
    }
    u16_t n = pbuf_copy_partial(p, frame, p->tot_len, 0);
    ssize_t w;
    do {
        w = write(tap_fd, frame, n);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        log_debug("tap write: %s", strerror(errno));
        return ERR_IF;
    }
    return ERR_OK;
}

static err_t tap_netif_init(struct netif *nif)
{
    nif->name[0] = 't';
    nif->name[1] = 'p';
    nif->output = etharp_output;
    nif->linkoutput = tap_linkoutput;
    nif->mtu = 1500;
    nif->hwaddr_len = ETH_HWADDR_LEN;
    /* A random locally administered unicast MAC: two picoimapd instances
     * on one bridge must not collide. */
    port_random(nif->hwaddr, ETH_HWADDR_LEN);
    nif->hwaddr[0] = (u8_t)((nif->hwaddr[0] & 0xfe) | 0x02);
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    return ERR_OK;
}

int tapif_open(struct netif *nif, const char *ifname, const ip4_addr_t *addr,
               const ip4_addr_t *mask, const ip4_addr_t *gw)
{
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        log_err("open /dev/net/tun: %s", strerror(errno));
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (strlen(ifname) >= sizeof ifr.ifr_name) {
        log_err("tap device name too long: %s", ifname);
        close(fd);
        return -1;
    }
    memcpy(ifr.ifr_name, ifname, strlen(ifname) + 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        log_err("TUNSETIFF %s: %s", ifname, strerror(errno));
        close(fd);
        return -1;
    }
    tap_fd = fd;
    if (!netif_add(nif, addr, mask, gw, NULL, tap_netif_init, ethernet_input)) {
        log_err("netif_add failed");
        close(fd);
        tap_fd = -1;
        return -1;
    }
    netif_set_default(nif);
    netif_set_up(nif);
    netif_set_link_up(nif);
    return fd;
}

int tapif_input(struct netif *nif, int max_frames)
{
    int frames = 0;
    while (frames < max_frames) {
        unsigned char frame[TAP_FRAME_MAX];
        ssize_t n = read(tap_fd, frame, sizeof frame);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                log_warn("tap read: %s", strerror(errno));
            }
            break;
        }
        if (n == 0) {
            break;
        }
        frames++;
        /* Out of pool pbufs: drop the frame; the sender retransmits. */
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)n, PBUF_POOL);
        if (!p) {
            continue;
        }
        pbuf_take(p, frame, (u16_t)n);
        if (nif->input(p, nif) != ERR_OK) {
            pbuf_free(p);
        }
    }
    return frames;
}
