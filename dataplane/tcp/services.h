// The dataplane's own TCP services, configured as listeners like any other: echo (RFC 862) and
// discard (RFC 863). A diagnostic for operators, and the way to test the TCP stack without the
// proxy. Both respect backpressure: echo takes no more from a client than it can send back, so a
// client that does not read sees its window close instead of Weir buffering without bound.
#pragma once

#include "dataplane/tcp/tcp_stack.h"

namespace weir::tcp {

class EchoService final : public ListenerHandler, public ConnectionHandler {
 public:
  explicit EchoService(TcpStack& tcp) : tcp_(tcp) {}
  ConnectionHandler* accept(Connection&) override { return this; }
  void on_data(Connection& c, rte_mbuf* data) override;
  void on_writable(Connection& c) override;
  void on_peer_fin(Connection& c) override;

 private:
  void drain(Connection& c);
  TcpStack& tcp_;
};

class DiscardService final : public ListenerHandler, public ConnectionHandler {
 public:
  explicit DiscardService(TcpStack& tcp) : tcp_(tcp) {}
  ConnectionHandler* accept(Connection&) override { return this; }
  void on_data(Connection& c, rte_mbuf* data) override;
  void on_peer_fin(Connection& c) override;

 private:
  TcpStack& tcp_;
};

}  // namespace weir::tcp
