/*
 * What the DPDK headers hide from bindgen: flags defined by function-like
 * macros, a thread-local variable behind a macro, and mbuf and link fields
 * inside anonymous unions and bitfields, whose generated names change from
 * one DPDK release to the next.
 */
#ifndef WIRESPEED_DPDK_SHIM_H
#define WIRESPEED_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

/*
 * Offload and RSS flags the port uses. DPDK defines them with RTE_BIT64(),
 * a function-like macro bindgen cannot evaluate; the C compiler evaluates
 * them here for whatever DPDK release is installed. All fit in 32 bits.
 */
enum wirespeed_dpdk_flag {
	WIRESPEED_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM,
	WIRESPEED_RX_OFFLOAD_TCP_CKSUM = RTE_ETH_RX_OFFLOAD_TCP_CKSUM,
	WIRESPEED_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH,
	WIRESPEED_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM,
	WIRESPEED_TX_OFFLOAD_TCP_CKSUM = RTE_ETH_TX_OFFLOAD_TCP_CKSUM,
	WIRESPEED_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS,
	WIRESPEED_RSS_IPV4 = RTE_ETH_RSS_IPV4,
	WIRESPEED_RSS_FRAG_IPV4 = RTE_ETH_RSS_FRAG_IPV4,
	WIRESPEED_RSS_NONFRAG_IPV4_TCP = RTE_ETH_RSS_NONFRAG_IPV4_TCP,
	WIRESPEED_RSS_NONFRAG_IPV4_OTHER = RTE_ETH_RSS_NONFRAG_IPV4_OTHER,
	WIRESPEED_MQ_RX_NONE = RTE_ETH_MQ_RX_NONE,
	WIRESPEED_MQ_RX_RSS = RTE_ETH_MQ_RX_RSS,
	WIRESPEED_MQ_TX_NONE = RTE_ETH_MQ_TX_NONE,
};

/*
 * Where the mbuf fields the port uses sit, as the C compiler lays them out
 * for the installed DPDK. Later releases moved some (data_off, data_len,
 * pkt_len, buf_len, nb_segs) into anonymous unions, which changes their
 * names in generated bindings but not in C; reading them by offset keeps
 * one Rust source for every release. Sizes are checked on the Rust side.
 */
#define WIRESPEED_MBUF_FIELD(f) \
	WIRESPEED_MBUF_OFF_##f = offsetof(struct rte_mbuf, f), \
	WIRESPEED_MBUF_SIZE_##f = sizeof(((struct rte_mbuf *)0)->f)

enum wirespeed_mbuf_layout {
	WIRESPEED_MBUF_FIELD(buf_addr),
	WIRESPEED_MBUF_FIELD(data_off),
	WIRESPEED_MBUF_FIELD(nb_segs),
	WIRESPEED_MBUF_FIELD(ol_flags),
	WIRESPEED_MBUF_FIELD(pkt_len),
	WIRESPEED_MBUF_FIELD(data_len),
	WIRESPEED_MBUF_FIELD(buf_len),
	WIRESPEED_MBUF_FIELD(pool),
	WIRESPEED_MBUF_FIELD(next),
	WIRESPEED_MBUF_SIZE = sizeof(struct rte_mbuf),
};

/* The calling thread's rte_errno. */
int wirespeed_rte_errno(void);

/* Sets the transmit offload flags (keeping the mbuf's own
 * RTE_MBUF_F_INDIRECT and RTE_MBUF_F_EXTERNAL bits), l2_len and l3_len. */
void wirespeed_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags,
				   uint16_t l2_len, uint16_t l3_len);

/* The port's link without waiting: speed in Mbit/s, whether it is up and
 * full duplex. Returns 0 or a negative errno. (The bitfields of
 * struct rte_eth_link sit inside an anonymous union in later releases.) */
int wirespeed_link_get(uint16_t port_id, uint32_t *speed, uint8_t *up,
		       uint8_t *full_duplex);

#endif
