#include "dataplane/tcp/services.h"

namespace weir::tcp {

void EchoService::on_data(Connection& c, rte_mbuf* data) {
  tcp_.keep_received(c.parked(), data);  // in order behind anything not yet sent back
  drain(c);
}

void EchoService::on_writable(Connection& c) {
  drain(c);
}

void EchoService::on_peer_fin(Connection& c) {
  drain(c);
}

void EchoService::drain(Connection& c) {
  while (rte_mbuf* segment = c.parked().pop()) {
    const uint32_t length = rte_pktmbuf_pkt_len(segment);
    if (!tcp_.send(c, segment, tcp_.now_us())) {
      c.parked().push_front(segment);
      return;  // on_writable resumes
    }
    tcp_.consumed(c, length, tcp_.now_us());
  }
  // Everything received has been echoed: when the client has finished, so has the echo.
  if (c.peer_closed()) tcp_.shutdown_write(c, tcp_.now_us());
}

void DiscardService::on_data(Connection& c, rte_mbuf* data) {
  const uint32_t length = rte_pktmbuf_pkt_len(data);
  rte_pktmbuf_free(data);
  tcp_.consumed(c, length, tcp_.now_us());
}

void DiscardService::on_peer_fin(Connection& c) {
  tcp_.shutdown_write(c, tcp_.now_us());
}

}  // namespace weir::tcp
