#include <string.h>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "shim.h"

int wirespeed_rte_errno(void)
{
	return rte_errno;
}

void wirespeed_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t ol_flags,
				   uint16_t l2_len, uint16_t l3_len)
{
	m->ol_flags = (m->ol_flags & (RTE_MBUF_F_INDIRECT | RTE_MBUF_F_EXTERNAL)) |
		      ol_flags;
	m->l2_len = l2_len;
	m->l3_len = l3_len;
}

int wirespeed_link_get(uint16_t port_id, uint32_t *speed, uint8_t *up,
		       uint8_t *full_duplex)
{
	struct rte_eth_link link;
	int rc;

	memset(&link, 0, sizeof(link));
	rc = rte_eth_link_get_nowait(port_id, &link);
	if (rc < 0)
		return rc;
	*speed = link.link_speed;
	*up = link.link_status == RTE_ETH_LINK_UP;
	*full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
	return 0;
}
