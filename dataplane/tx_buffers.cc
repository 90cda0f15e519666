#include "dataplane/tx_buffers.h"

#include <algorithm>
#include <cstring>

namespace weir::dataplane {
namespace {

// Copies `chain` into fresh mbufs of its first mbuf's pool, each filled to its data room.
rte_mbuf* copy_into_new_buffers(rte_mbuf* chain, uint16_t max_segments) {
  rte_mempool* pool = chain->pool;
  const uint32_t room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
  const uint32_t length = rte_pktmbuf_pkt_len(chain);
  const uint32_t needed = std::max<uint32_t>(1, (length + room - 1) / room);
  if (room == 0 || needed > max_segments) return nullptr;
  rte_mbuf* head = nullptr;
  rte_mbuf* tail = nullptr;
  for (uint32_t offset = 0, s = 0; s < needed; ++s) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) {
      rte_pktmbuf_free(head);  // null-safe
      return nullptr;
    }
    const uint32_t n = std::min(room, length - offset);
    auto* out = rte_pktmbuf_mtod(m, uint8_t*);
    const void* in = rte_pktmbuf_read(chain, offset, n, out);
    if (in != out) std::memcpy(out, in, n);
    m->data_len = static_cast<uint16_t>(n);
    if (head == nullptr) {
      head = m;
    } else {
      tail->next = m;
      ++head->nb_segs;
    }
    tail = m;
    offset += n;
  }
  head->pkt_len = length;
  // What the device reads besides the bytes (offload requests and their header lengths).
  head->ol_flags = chain->ol_flags;
  head->tx_offload = chain->tx_offload;
  head->packet_type = chain->packet_type;
  rte_pktmbuf_free(chain);
  return head;
}

}  // namespace

rte_mbuf* linearise(rte_mbuf* chain, uint16_t max_segments) {
  if (chain->nb_segs <= max_segments) return chain;
  // A TCP segment's header mbuf is its own (direct, one reference) with a full buffer's tailroom
  // behind ~66 bytes of headers: the payload is copied in behind them, and no mbuf is allocated.
  const uint32_t rest = rte_pktmbuf_pkt_len(chain) - rte_pktmbuf_data_len(chain);
  if (RTE_MBUF_DIRECT(chain) && rte_mbuf_refcnt_read(chain) == 1 &&
      rest <= rte_pktmbuf_tailroom(chain)) {
    if (rte_pktmbuf_linearize(chain) == 0) return chain;
  }
  return copy_into_new_buffers(chain, max_segments);
}

void TxBuffers::fit_to_device(PortIndex port, Pending& pending) {
  PortCounters& counters = counters_[port];
  const uint16_t max_segments = std::max<uint16_t>(io_.tx_limits(port).max_segments, 1);
  uint16_t kept = 0;
  for (uint16_t i = 0; i < pending.count; ++i) {
    rte_mbuf* m = pending.packets[i];
    if (m->nb_segs > max_segments) {
      rte_mbuf* fitted = linearise(m, max_segments);
      if (fitted == nullptr) {
        counters.drop(DropReason::tx_linearise_failed);
        rte_pktmbuf_free(m);
        continue;
      }
      counters.tx_linearised.add();
      m = fitted;
    }
    pending.packets[kept++] = m;
  }
  // The device's checks; one it refuses is dropped and the rest checked again.
  uint16_t checked = 0;
  while (checked < kept) {
    checked = static_cast<uint16_t>(
        checked + io_.prepare(port, pending.packets.data() + checked, kept - checked));
    if (checked >= kept) break;
    counters.drop(DropReason::tx_prepare_refused);
    rte_pktmbuf_free(pending.packets[checked]);
    std::copy(pending.packets.begin() + checked + 1, pending.packets.begin() + kept,
              pending.packets.begin() + checked);
    --kept;
  }
  pending.count = kept;
}

void TxBuffers::flush(PortIndex port) {
  Pending& pending = pending_[port];
  if (pending.count == 0) return;
  fit_to_device(port, pending);
  if (pending.count == 0) return;
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < pending.count; ++i) bytes += rte_pktmbuf_pkt_len(pending.packets[i]);
  const uint16_t sent = io_.transmit(port, pending.packets.data(), pending.count);
  uint64_t unsent_bytes = 0;
  for (uint16_t i = sent; i < pending.count; ++i) {
    unsent_bytes += rte_pktmbuf_pkt_len(pending.packets[i]);
    rte_pktmbuf_free(pending.packets[i]);
  }
  PortCounters& counters = counters_[port];
  counters.tx_packets.add(sent);
  counters.tx_bytes.add(bytes - unsent_bytes);
  if (sent < pending.count) counters.drop(DropReason::tx_ring_full, pending.count - sent);
  pending.count = 0;
}

}  // namespace weir::dataplane
