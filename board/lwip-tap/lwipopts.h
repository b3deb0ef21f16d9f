/*
 * lwipopts.h -- lwIP 2.1.3 options for the lwip-tap board: picoimapd on
 * lwIP's raw TCP API, NO_SYS=1 (one thread, one poll loop), IPv4 over an
 * Ethernet TAP device on a Linux host.
 *
 * Sized for 20+ simultaneous IMAP clients and 10 MB transfers each way. The
 * numbers below trade memory for throughput; each says why. Everything not
 * named here keeps lwIP's default from lwip/opt.h.
 */
#ifndef LWIPOPTS_H
#define LWIPOPTS_H

/* ---- system ---- */
#define NO_SYS                  1   /* raw API only; no threads, no sys_sem */
#define SYS_LIGHTWEIGHT_PROT    0   /* nothing runs concurrently with lwIP */
#define LWIP_SOCKET             0
#define LWIP_NETCONN            0
#define LWIP_NETIF_API          0
#define LWIP_TIMERS             1   /* sys_check_timeouts() from the loop */

/* ---- memory ----
 * The lwIP heap (PBUF_RAM: our copied TCP output) is libc malloc on Linux,
 * so there is no second fixed heap to size; the pools below are static. */
#define MEM_LIBC_MALLOC         1
#define MEM_ALIGNMENT           8   /* 64-bit host; pointers in pbufs */
#define MEMP_MEM_MALLOC         0

/* Active TCP connections: 20 clients plus the ones in TIME_WAIT/FIN_WAIT
 * after a burst of logouts. 64 * ~200 bytes. */
#define MEMP_NUM_TCP_PCB        64
#define MEMP_NUM_TCP_PCB_LISTEN 4   /* plain, implicit TLS, LMTP */
/* Queued TCP segments across all connections: unsent + unacked + out of
 * order. 20 clients with full send queues need 20 * TCP_SND_QUEUELEN. */
#define MEMP_NUM_TCP_SEG        1024
/* PBUF_REF/ROM pbufs: we always copy (TCP_WRITE_FLAG_COPY), few needed. */
#define MEMP_NUM_PBUF           32
/* Received frames. The port copies each segment out of the pool pbuf in the
 * recv callback, so pool pbufs only live for one input turn plus the
 * out-of-order queues: 256 * 1.5 KiB = 384 KiB. */
#define PBUF_POOL_SIZE          256
#define PBUF_POOL_BUFSIZE       1536 /* one Ethernet frame, no chaining */

/* ---- protocols ---- */
#define LWIP_IPV4               1
#define LWIP_IPV6               0
#define LWIP_ARP                1
#define LWIP_ETHERNET           1
#define LWIP_ICMP               1   /* ping, for diagnosing the TAP link */
#define LWIP_RAW                0
#define LWIP_UDP                0   /* no DHCP/DNS: static address */
#define LWIP_TCP                1
#define LWIP_DHCP               0
#define LWIP_AUTOIP             0
#define LWIP_IGMP               0
#define LWIP_DNS                0
#define IP_REASSEMBLY           0   /* TCP never fragments */
#define IP_FRAG                 0

/* ---- TCP ----
 * MSS for a 1500-byte Ethernet MTU. A 16-segment window (23 KiB) keeps a
 * 10 MB transfer near the link speed on a host TAP with sub-ms RTT while a
 * client that stops reading holds at most that much of our memory. */
#define TCP_MSS                 1460
#define TCP_WND                 (16 * TCP_MSS)
#define TCP_SND_BUF             (16 * TCP_MSS)
/* Segments (pbufs) one connection may queue: enough for a full TCP_SND_BUF
 * written in small pieces by the response writer. */
#define TCP_SND_QUEUELEN        (4 * TCP_SND_BUF / TCP_MSS)
#define TCP_QUEUE_OOSEQ         1
#define TCP_OOSEQ_MAX_PBUFS     8   /* per connection; bounds pool use */
#define TCP_LISTEN_BACKLOG      1
#define TCP_DEFAULT_LISTEN_BACKLOG 32
#define LWIP_TCP_KEEPALIVE      0   /* the core has its own idle timers */
#define LWIP_CALLBACK_API       1

/* TCP initial sequence numbers come from the port's random source, not
 * lwIP's predictable counter (blind-injection resistance). */
unsigned int lwip_port_tcp_isn(void);
#define LWIP_HOOK_TCP_ISN(lip, lport, rip, rport) lwip_port_tcp_isn()

/* ---- netif ---- */
#define LWIP_NETIF_STATUS_CALLBACK 0
#define LWIP_NETIF_LINK_CALLBACK   0
#define LWIP_SINGLE_NETIF          1
#define LWIP_HAVE_LOOPIF           0
#define ETHARP_SUPPORT_STATIC_ENTRIES 0

/* ---- checksums: all in software (the TAP hands us full checksums) ---- */
#define LWIP_CHKSUM_ALGORITHM   3

/* ---- diagnostics (LWIP_DEBUG stays undefined: lwIP tests it with #ifdef) ---- */
#define LWIP_STATS              0

#endif
