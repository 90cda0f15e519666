// A worker's TCP (RFC 9293). One TcpStack per worker, shared-nothing: its connection table, its
// timer wheel, its counters. It receives segments from the worker's net::Stack (as its
// TransportHandler) and sends through it. The layer above (the built-in echo and discard
// services today, the proxy later) sees connections through ConnectionHandler callbacks and the
// send/consumed/shutdown_write/abort calls.
//
// What it does, and where it departs from the RFCs, is in docs/architecture.md ("The worker's
// TCP"): passive and active open with MSS, window scale, SACK and timestamps; SYN cookies; delayed
// ACKs; a bounded out-of-order queue reported in SACK blocks; loss recovery from a SACK scoreboard
// (RFC 6675) or by NewReno (RFC 6582) without SACK; RTO with backoff; NewReno or CUBIC windows;
// zero-window probing; keepalive; every close path and TIME_WAIT; RFC 5961; PAWS; ICMP errors.
#pragma once

#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/net/stack.h"
#include "dataplane/net/tcp.h"
#include "dataplane/tcp/congestion.h"
#include "dataplane/tcp/connection_table.h"
#include "dataplane/tcp/mbuf_queue.h"
#include "dataplane/tcp/out_of_order_store.h"
#include "dataplane/tcp/rto.h"
#include "dataplane/tcp/sack_scoreboard.h"
#include "dataplane/tcp/seq.h"
#include "dataplane/tcp/source_table.h"
#include "dataplane/tcp/syn_cookie.h"
#include "dataplane/tcp/timer_wheel.h"

namespace weir::tcp {

using dataplane::PortIndex;
using dataplane::TcpCounters;

enum class State : uint8_t {
  closed,
  syn_sent,
  syn_received,
  established,
  fin_wait_1,
  fin_wait_2,
  close_wait,
  closing,
  last_ack,
  time_wait,
};
const char* name_of(State state);

enum class CloseReason : uint8_t { fin, rst, timeout, refused, aborted };
const char* name_of(CloseReason reason);

class Connection;

// A connection's allowance of `per_window` ACKs of one kind in each window of `window_us`, a window
// opening with the first ACK after the last one closed (window_us 0: no limit). Challenge ACKs and
// ACKs to out-of-window segments each have one.
// The window start is kept in milliseconds, in 32 bits (every connection holds two of these): after
// 49 days without one, an ACK may find itself in an old window and be refused once.
struct RateLimit {
  uint32_t window_start_ms = 0;
  uint8_t used = 0;
  // Takes one from the allowance; false when it is spent.
  bool take(uint64_t now_us, uint64_t window_us, uint8_t per_window) {
    const uint32_t now_ms = static_cast<uint32_t>(now_us / 1000);
    if (uint64_t{static_cast<uint32_t>(now_ms - window_start_ms)} * 1000 >= window_us) {
      window_start_ms = now_ms;
      used = 0;
    }
    if (used >= per_window) return false;
    ++used;
    return true;
  }
};

class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  virtual void on_established(Connection&) {}
  // In-order data; the handler owns `data` (its data starts at the payload). The bytes count
  // against the receive window until the handler calls TcpStack::consumed.
  virtual void on_data(Connection&, rte_mbuf* data) = 0;
  // Send budget became available after being exhausted.
  virtual void on_writable(Connection&) {}
  virtual void on_peer_fin(Connection&) {}
  // The last callback: the connection is gone once it returns.
  virtual void on_closed(Connection&, CloseReason) {}
};

class ListenerHandler {
 public:
  virtual ~ListenerHandler() = default;
  // A new connection (after the handshake completes). Returns its handler.
  virtual ConnectionHandler* accept(Connection&) = 0;
};

// Told of every segment that matches no connection, before any listener sees it: in a cluster the
// flow may live on another box (dataplane/cluster_forwarder.h). Returns true when it took the
// packet (whose data starts at the IPv4 header).
class FlowMissHandler {
 public:
  virtual ~FlowMissHandler() = default;
  // `completes_cookie`: a bare ACK this stack would accept as the return of its SYN cookie.
  virtual bool divert(PortIndex port, const FourTuple& tuple, net::TcpFlags flags,
                      bool completes_cookie, rte_mbuf* packet, uint64_t now_us) = 0;
};

struct TcpSettings {
  uint64_t min_rto_us = 200'000;
  uint64_t max_rto_us = 120'000'000;
  uint64_t time_wait_us = 2'000'000;
  // At most this many connections in TIME-WAIT (Linux's tcp_max_tw_buckets); past it a connection
  // that would enter TIME-WAIT is closed at once (counted). The configuration's default is a
  // quarter of max_connections, as here.
  uint32_t max_time_wait = 1024;
  CongestionAlgorithm congestion = CongestionAlgorithm::cubic;
  uint16_t min_mss = 48;
  // Taken from the MSS a listener advertises: room for the encapsulation a cluster box adds when
  // it forwards the client's packets to this one (net::gue::kOverhead), so that they are never
  // fragmented. 0 without a cluster.
  uint16_t listen_mss_reserve = 0;
  uint32_t max_connections = 4096;
  uint32_t receive_buffer = 128 * 1024;  // per connection: the most we advertise
  uint32_t send_buffer = 128 * 1024;     // per connection: the send budget, in bytes
  // ... and in mbufs: a producer of tiny mbufs must not hold the worker's pool with a few bytes.
  uint32_t max_send_segments = 512;
  uint64_t delayed_ack_us = 40'000;
  uint32_t max_retransmissions = 12;  // then the connection is abandoned (reason timeout)
  uint32_t syn_ack_retries = 5;
  // At most one ACK in this interval answers segments without data that fail the acceptability
  // test or PAWS (Linux's tcp_invalid_ratelimit); 0: every one is answered.
  uint64_t out_of_window_ack_interval_us = 500'000;
  uint64_t syn_received_timeout_us = 30'000'000;  // bounded time in SYN_RECEIVED
  // FIN-WAIT-2 (Linux's tcp_fin_timeout): our FIN is acknowledged but the peer's never comes.
  // After this long without a segment from the peer the connection is reset and abandoned.
  uint64_t fin_wait2_timeout_us = 60'000'000;
  // Keepalive (RFC 9293 3.8.4; RFC 1122 4.2.3.6): after this long without a segment from the
  // peer, probe every interval; after `probes` unanswered probes the connection is abandoned.
  uint64_t keepalive_idle_us = 0;  // 0: off
  uint64_t keepalive_interval_us = 75'000'000;
  uint32_t keepalive_probes = 9;
  // Out-of-order segments a worker keeps in all (at most 65,534), and at most
  // kOutOfOrderPerConnection of them per connection: bounds against the SegmentSmack class of
  // attack. When they are all in use a connection holding fewer than another takes room from it
  // (out_of_order_store.h), so that a scarce store is shared rather than held by the first comers.
  uint32_t out_of_order_segments = 4096;
  // SACK scoreboards (RFC 6675), per worker: a connection holds one only while its peer reports
  // holes. With none free, the connection recovers by NewReno (counted).
  uint16_t sack_scoreboards = 1024;
  // Memory pressure (Linux's tcp_mem), judged by the free mbufs of the pool, sampled at most every
  // memory_sample_us. Below pressure_free_mbufs: new SYNs are refused with RST, windows open no
  // further than already advertised (a connection with nothing unread keeps a floor of four
  // segments, so that it still makes progress), and out-of-order data is pruned. Below
  // critical_free_mbufs: a connection that already holds unread data takes no more (its window is
  // 0, its new data dropped and acknowledged no further), and below half that mark no connection
  // takes anything, so that TCP frees what arrives and the RX rings always refill. Under pressure
  // a send queue grows no further than four segments. Pressure ends when the free mbufs are back
  // above pressure_free_mbufs by an eighth of the distance between the marks, and clamped windows
  // are then reopened at once. 0: off.
  uint32_t pressure_free_mbufs = 0;
  uint32_t critical_free_mbufs = 0;
  // What the worker's connections may hold in all, in bytes (0: no limit): each connection's
  // receive window and send budget are at most an equal share of it (half each), and at least
  // four segments, so that many connections get small buffers before any mark is reached (Linux
  // sizes socket buffers by tcp_mem the same way).
  uint64_t memory_budget_bytes = 0;
  uint64_t memory_sample_us = 100;
  // Client addresses accounted apart (source_table.h), at most max_connections; past it new
  // addresses share one entry (counted in sources_table_full).
  uint32_t max_sources = 65536;
};

enum class MemoryLevel : uint8_t { normal, pressure, critical };

// A connection's three timers, first in its record (Connection derives from this): a timer's tag
// says which it is, and from that the TcpStack finds the connection, so a timer carries no owner
// pointer (tcp_timers.cc).
struct ConnectionTimers {
  Timer retransmit_timer_, delayed_ack_timer_, wait_timer_;
};
static_assert(std::is_standard_layout_v<ConnectionTimers>, "offsetof finds a timer's record");

// A connection's record. Every idle connection holds one, so its size is most of the memory per
// idle proxied session (docs/operations.md: at most 1 KiB for two connections and the session):
// fields are as narrow as their ranges allow, flags are bits, and state only loss recovery or
// out-of-order data needs lives in per-worker pools (the SACK scoreboards, the out-of-order store),
// taken while needed. The static_assert under the class catches growth.
class Connection : private ConnectionTimers {
 public:
  const FourTuple& tuple() const { return tuple_; }
  bool peer_closed() const { return fin_received_; }
  State state() const { return state_; }
  PortIndex port() const { return port_; }
  uint16_t mss() const { return mss_; }
  // The payload of a full segment: the MSS less the options every segment carries (RFC 9293
  // 3.7.1: the MSS counts no TCP options; timestamps take 12 bytes of it).
  uint16_t segment_payload() const { return static_cast<uint16_t>(mss_ - (ts_ok_ ? 12 : 0)); }
  uint32_t send_queued() const { return send_queue_.bytes(); }
  uint32_t unread() const { return unread_; }
  // Data the application could not hand to send() yet, kept on its behalf and freed with the
  // connection (the echo service parks here; so will the proxy).
  MbufQueue& parked() { return parked_; }

 private:
  friend class TcpStack;
  // The tags of the three timers.
  enum TimerKind : uint8_t { kRetransmit, kDelayedAck, kWait };
  // What the retransmission timer is set for: the timeout itself, a tail loss probe (RFC 8985
  // 7), or the end of a reordering window (RFC 8985 6.3). One timer serves the three, as Linux's
  // does, since only the earliest matters.
  enum class LossTimer : uint8_t { rto, probe, reorder };

  // The connection whose timer this is (its tag says which of the three).
  static Connection& of_timer(Timer& timer) {
    static constexpr size_t kOffsets[] = {offsetof(ConnectionTimers, retransmit_timer_),
                                          offsetof(ConnectionTimers, delayed_ack_timer_),
                                          offsetof(ConnectionTimers, wait_timer_)};
    auto* timers = reinterpret_cast<ConnectionTimers*>(reinterpret_cast<char*>(&timer) -
                                                       kOffsets[timer.tag()]);
    return static_cast<Connection&>(*timers);
  }
  void count_retransmission() {
    if (retransmissions_ < UINT16_MAX) ++retransmissions_;
  }

  // The send sequence variables (RFC 9293 3.3.1) and the sender's loss-recovery state.
  struct SendSequence {
    Seq iss;  // ISS
    Seq una;  // SND.UNA: the oldest unacknowledged sequence number
    Seq nxt;  // SND.NXT: the next to send (a retransmission timeout rewinds it to SND.UNA)
    Seq max;  // the highest sent (BSD's snd_max): a retransmission never goes beyond it
    Seq wl1;  // SND.WL1 and SND.WL2: SEQ and ACK of the segment that last set SND.WND
    Seq wl2;
    Seq recover;            // RFC 6582's "recover": the highest sent when fast recovery began
    uint32_t wnd = 0;       // SND.WND, in bytes (scaled)
    uint8_t wnd_scale = 0;  // the peer's shift (RFC 7323), applied to the windows it advertises
    uint8_t dupacks = 0;    // duplicate ACKs since the last one that acknowledged new data
  };
  // The receive sequence variables (RFC 9293 3.3.1). RCV.WND is not kept: receive_window()
  // derives it from the bytes the application has not consumed.
  struct ReceiveSequence {
    Seq irs;                // IRS
    Seq nxt;                // RCV.NXT
    Seq edge;               // the right edge of the window last advertised (RCV.NXT + RCV.WND then)
    uint8_t wnd_scale = 0;  // our shift (RFC 7323)
    uint8_t unacked_segments = 0;  // data segments received since our last ACK (delayed ACKs)
  };

  // 8-byte members first (the timers are in the base), then narrower ones, so nothing is padded.
  uint64_t last_received_us_ = 0;
  uint64_t rtt_start_us_ = 0;  // when the timed segment left (in the handshake: the last SYN)
  MbufQueue send_queue_;       // from SND.UNA: sent-unacknowledged, then unsent
  MbufQueue parked_;
  ConnectionHandler* handler_ = nullptr;
  ListenerHandler* listener_ = nullptr;
  CongestionControl cc_{CongestionAlgorithm::cubic, 536};  // set when the handshake completes
  RtoEstimator rto_{200'000, 120'000'000};
  SendSequence snd_;
  ReceiveSequence rcv_;
  FourTuple tuple_;
  uint32_t unread_ = 0;
  uint32_t ts_recent_ = 0;
  Seq rtt_seq_;
  uint32_t slot_ = 0;
  RateLimit challenge_acks_;                            // RFC 5961 7
  RateLimit out_of_window_acks_;                        // Linux's tcp_invalid_ratelimit
  SourceTable::Index source_ = SourceTable::kOverflow;  // the client it is charged to
  uint32_t charged_bytes_ = 0;        // what its source was last charged for it (account())
  OutOfOrderStore::Queue ooo_;        // the out-of-order segments held
  uint16_t scoreboard_ = UINT16_MAX;  // the SACK scoreboard in use, if any
  uint16_t mss_ = 536;
  PortIndex port_ = 0;
  State state_ = State::closed;
  uint16_t retransmissions_ = 0;  // saturates at UINT16_MAX (settings may say "never give up")
  uint8_t keepalive_probes_sent_ = 0;
  LossTimer loss_timer_ = LossTimer::rto;  // (a running reordering window ends at its deadline)
  bool in_table_ : 1 = false;
  bool close_notified_ : 1 = false;
  bool fin_queued_ : 1 = false;  // shutdown_write: a FIN follows the queued data
  bool fin_sent_ : 1 = false;
  bool fin_received_ : 1 = false;
  bool ts_ok_ : 1 = false;
  bool sack_ok_ : 1 = false;  // both SYNs carried SACK-permitted: our ACKs report out-of-order data
  bool timing_rtt_ : 1 = false;
  bool blocked_ : 1 = false;         // send() refused: on_writable owed
  bool in_recovery_ : 1 = false;     // fast recovery (RFC 6582) until SND.UNA passes snd_.recover
  bool window_clamped_ : 1 = false;  // advertised a window under memory pressure: reopen after it
  bool probe_outstanding_ : 1 = false;  // a tail loss probe sent; no new data acknowledged since
  bool share_clamped_ : 1 = false;  // a zero window under pressure: its source is over its share
  // process_data is handing it an in-order segment: consumed() leaves the window update to
  // process_data's ACK decision after the handler returns (one window computed, not two).
  bool delivering_ : 1 = false;
  bool loss_timer_deferred_ : 1 = false;  // put off once after the worker's absence; until re-armed
};
// Two records and the session's are the memory of an idle proxied session (at most 1 KiB, the
// many_connections suite): a field added here is added 200,000 times at 100,000 sessions.
static_assert(sizeof(Connection) <= 344, "a connection's record outgrew its 344 bytes");

class TcpStack final : public net::TransportHandler {
 public:
  TcpStack(const TcpSettings& settings, net::Stack& net_stack, rte_mempool* pool,
           TcpCounters& counters, const Secret& secret, uint64_t now_us);
  ~TcpStack() override;

  // Passive open on address:port (RFC 9293 3.10.1). `backlog` bounds connections in SYN_RECEIVED;
  // beyond it, or with the connection table full, SYN cookies answer.
  bool listen(net::Ipv4Address address, uint16_t port, ListenerHandler* handler, uint32_t backlog);
  // Stops accepting on address:port (new SYNs are answered with RST); connections already made
  // carry on. Returns false if nothing listened there.
  bool unlisten(net::Ipv4Address address, uint16_t port);

  // Active open (RFC 9293 3.10.1) from tuple.local to tuple.remote through `port`. Returns null
  // when the 4-tuple is in use or the table is full (counted). The handler hears on_established,
  // or on_closed with `refused` (a RST) or `timeout` (no answer after the SYN retries).
  // With `handshake_timeout_us` (0: none), a handshake not complete by then ends the connection
  // with CloseReason::timeout, however many SYN retransmissions remain.
  Connection* connect(PortIndex port, const FourTuple& tuple, ConnectionHandler* handler,
                      uint64_t now_us, uint64_t handshake_timeout_us = 0);

  // Queues `data` (a chain whose data is payload) if the whole of it fits in the send budget, and
  // returns true; otherwise returns false and the caller keeps it (on_writable follows).
  bool send(Connection& c, rte_mbuf* data, uint64_t now_us);
  // Appends received data the application keeps (a session's pending bytes, the echo's parked
  // ones) to `queue`, small segments collapsed into the buffer before them (counted).
  void keep_received(MbufQueue& queue, rte_mbuf* data);
  uint32_t send_space(const Connection& c) const;
  // The application is done with `bytes` of delivered data: the receive window reopens.
  void consumed(Connection& c, uint32_t bytes, uint64_t now_us);
  // Charges the connection (a session's backend side) to the client `source` rather than to its
  // remote address: what a session holds counts against the client that made it.
  void charge_to(Connection& c, net::Ipv4Address source);
  const SourceTable& sources() const { return sources_; }
  // Half-close (RFC 9293 3.10.4): a FIN follows the queued data.
  void shutdown_write(Connection& c, uint64_t now_us);
  // RST and forget (RFC 9293 3.10.5).
  void abort(Connection& c, uint64_t now_us);

  // Runs due timers and frees closed connections. Call every poll.
  void tick(uint64_t now_us);
  // The worker was away from `since_us` until `now_us` (not scheduled on a busy machine, or held
  // up): what arrived meanwhile waits unread in its receive ring. Until it has listened for
  // kCatchUpUs, a loss timer that comes due is put off once (the ACKs that would have stopped it
  // may be in the ring), and an RTT sample leaves the absence out (the ACK may have waited
  // through it). Call before the first tick of the poll that ends the absence.
  void worker_was_away(uint64_t since_us, uint64_t now_us) {
    away_since_us_ = since_us;
    back_at_us_ = now_us;
  }
  static constexpr uint64_t kCatchUpUs = 1'000;

  size_t connections() const { return table_.size(); }
  void set_miss_handler(FlowMissHandler* handler) { miss_handler_ = handler; }
  MemoryLevel memory_level() const { return memory_level_; }
  size_t capacity() const { return settings_.max_connections; }
  // The time of the last segment or tick, for callbacks that send.
  uint64_t now_us() const { return last_now_us_; }
  static constexpr size_t connection_record_bytes() { return sizeof(Connection); }
  // The timer wheel's resolution: a timer fires at the first tick at or after its deadline, so a
  // TIME-WAIT holds its 4-tuple for up to this much longer than TcpSettings::time_wait_us.
  static constexpr uint64_t kTimerTickUs = 1000;
  // The most out-of-order segments one connection holds.
  static constexpr uint8_t kOutOfOrderPerConnection = 64;

  // net::TransportHandler
  void tcp_segment(PortIndex port, rte_mbuf* packet, uint64_t now_us) override;
  void tcp_icmp_error(PortIndex port, uint8_t type, uint8_t code, rte_mbuf* packet,
                      uint64_t now_us) override;

 public:
  // A segment as received and parsed (and, for a SYN-ACK sent again, the SYN it answers).
  struct Segment {
    FourTuple tuple;  // local = the destination
    Seq seq, ack;
    net::TcpFlags flags;
    uint16_t window = 0;
    uint32_t payload_offset = 0;  // from the IPv4 header
    uint32_t length = 0;          // payload bytes
    std::optional<uint16_t> mss;
    std::optional<uint8_t> window_scale;
    bool sack_permitted = false;
    std::optional<net::TcpTimestamps> timestamps;
    std::array<net::SackBlock, net::kMaxSackBlocks> sack{};
    uint8_t sack_blocks = 0;

    bool has(net::TcpFlag flag) const { return flags.has(flag); }
    // SEG.LEN of RFC 9293: the payload plus one for SYN and one for FIN.
    uint32_t seg_len() const {
      return length + (has(net::TcpFlag::syn) ? 1 : 0) + (has(net::TcpFlag::fin) ? 1 : 0);
    }
  };

 private:
  struct Listener {
    net::Ipv4Address address;
    uint16_t port;
    ListenerHandler* handler;
    uint32_t backlog;
    uint32_t syn_received = 0;
    // A bare ACK is taken for a cookie's return only until then: as long as a cookie sent at the
    // last overflow (of the SYN queue or the table) can be valid. Otherwise it is answered as on
    // a closed port, and a blind attacker cannot have its guesses checked as cookies.
    uint64_t cookies_until_us = 0;
  };

  Listener* find_listener(uint32_t address, uint16_t port);
  // A bare ACK that on_listen() would accept as the return of a SYN cookie.
  bool completes_cookie(const Segment& s, uint64_t now_us);
  Connection* allocate(const FourTuple& tuple, PortIndex port, uint64_t now_us);
  void release(Connection& c);
  void close(Connection& c, CloseReason reason);
  void enter_time_wait(Connection& c, uint64_t now_us);
  void keepalive(Connection& c, uint64_t now_us);
  void fin_wait2_expired(Connection& c, uint64_t now_us);

  void on_listen(Listener& listener, PortIndex port, const Segment& s, rte_mbuf* packet,
                 uint64_t now_us);
  void on_segment(Connection& c, const Segment& s, rte_mbuf* packet, uint64_t now_us);
  void on_syn_sent(Connection& c, const Segment& s, rte_mbuf* packet, uint64_t now_us);
  void send_syn(Connection& c, uint64_t now_us);
  void negotiate(Connection& c, const Segment& s);
  bool process_ack(Connection& c, const Segment& s, uint64_t now_us);
  uint32_t retransmit_length(const Connection& c) const;
  // `window`: receive_window(c) as the acceptability test found it (nothing before the data
  // changes it in normal memory; under pressure it is computed again).
  void process_data(Connection& c, const Segment& s, rte_mbuf* packet, uint64_t now_us,
                    uint32_t window);
  // Whether output() may have anything to do: unsent data, a FIN, or loss recovery.
  static bool output_pending(const Connection& c) {
    return c.in_recovery_ || c.fin_queued_ ||
           c.send_queue_.bytes() > static_cast<uint32_t>(c.snd_.nxt - c.snd_.una);
  }
  void established(Connection& c, uint64_t now_us);

  void output(Connection& c, uint64_t now_us);
  void send_ack(Connection& c, uint64_t now_us);
  // A SYN-ACK answering `s`; `cookie` puts window scale and SACK-permitted into the timestamp.
  void send_syn_ack_for(PortIndex port, const Segment& s, Seq iss, uint16_t mss, uint64_t now_us,
                        bool cookie, Connection* c = nullptr);
  uint8_t receive_window_scale() const;
  // The MSS a port can receive: its MTU less the IPv4 and TCP headers.
  uint16_t port_mss(PortIndex port) const;
  // A connection leaves SYN-RECEIVED: its listener's SYN queue has room for one more.
  void leave_syn_queue(const Connection& c);
  void send_segment(Connection& c, Seq seq, net::TcpFlags flags, uint32_t payload, uint64_t now_us);
  void send_reset(PortIndex port, const FourTuple& tuple, Seq seq, Seq ack, bool with_ack,
                  uint64_t now_us);
  void send_challenge_ack(Connection& c, uint64_t now_us);
  // The RTT sample (or the RFC 6298 5.7 fallback) when a handshake completes.
  void handshake_rtt(Connection& c, const Segment& s, uint64_t now_us);
  // An RTT measured now, less any absence of the worker's it spans (worker_was_away).
  uint64_t path_rtt(uint64_t measured_us, uint64_t now_us) const;
  bool defer_after_absence(Connection& c, uint64_t now_us);
  // The ACK RFC 9293 3.10.7.4 sends for a segment that is not acceptable (or fails PAWS).
  void send_out_of_window_ack(Connection& c, const Segment& s, uint64_t now_us);
  uint32_t receive_window(const Connection& c) const;
  // The most a connection may be offered while memory is short (see TcpSettings).
  uint32_t pressure_window(const Connection& c) const;
  // A connection's equal share of memory_budget_bytes (see TcpSettings).
  uint32_t memory_share(const Connection& c) const;
  // Recomputes share_per_connection_ after the table grew or shrank.
  void refresh_memory_share();
  // What remains of the window last advertised: the edge less RCV.NXT.
  static uint32_t offered_window(const Connection& c) {
    return c.rcv_.edge > c.rcv_.nxt ? static_cast<uint32_t>(c.rcv_.edge - c.rcv_.nxt) : 0;
  }
  // Whether the window has opened enough to be worth an update of its own: by two segments, or
  // from below one segment (receiver-side silly window avoidance, RFC 9293 3.8.6.2.2).
  static bool window_update_due(const Connection& c, uint32_t window) {
    const uint32_t offered = offered_window(c);
    return window >= offered + 2u * c.mss_ || (offered < c.mss_ && window >= c.mss_);
  }
  void sample_memory(uint64_t now_us);
  // Brings the connection's source up to date with what it holds now (send queue and unread
  // data); called wherever those change: after a segment, send() and consumed().
  void account(Connection& c);
  // Whether a SYN from `address` is taken while memory is short (counted either way).
  bool admit_under_pressure(uint32_t address);
  // Whether the connection's source holds at least its share: its windows stop first.
  bool heavy(const Connection& c) const { return sources_.over_share(c.source_); }
  void prune_out_of_order();
  void reopen_clamped_windows(uint64_t now_us);
  // Arms the retransmission timer for the earliest of the RTO, a tail loss probe and a running
  // reordering window.
  void arm_retransmit(Connection& c, uint64_t now_us);
  // RFC 8985 7.2's probe timeout, or 0 when no probe is due (see tcp_timers.cc).
  uint64_t probe_timeout(const Connection& c) const;
  void send_loss_probe(Connection& c, uint64_t now_us);
  // After an ACK: starts a reordering window when a hole lies below SACKed data without being
  // lost by RFC 6675's count; its end declares it lost (RFC 8985 6.3).
  void watch_reordering(Connection& c, uint64_t now_us);
  void detect_lost_retransmission(Connection& c, uint32_t newly_sacked, uint64_t now_us);
  void reordering_window_passed(Connection& c, uint64_t now_us);
  static bool reordering_window_running(const Connection& c) {
    return c.loss_timer_ == Connection::LossTimer::reorder && c.retransmit_timer_.armed();
  }
  void on_timer(Timer& timer, uint64_t now_us);
  uint32_t timestamp_now(uint64_t now_us) const { return static_cast<uint32_t>(now_us / 1000); }

  TcpSettings settings_;
  net::Stack& net_stack_;
  rte_mempool* pool_;
  TcpCounters& counters_;
  Secret secret_;
  ConnectionTable table_;
  SourceTable sources_;
  TimerWheel wheel_;
  std::vector<std::unique_ptr<Connection>> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<Connection*> closing_;  // closed during processing; freed in tick()

  static constexpr uint8_t kMaxWindowScale = 14;  // RFC 7323 2.3
  static constexpr uint32_t kIpTcpHeaders = 40;
  static constexpr uint16_t kDefaultPeerMss = 536;  // RFC 9293 3.7.1, when the SYN carries no MSS
  static bool synchronized(State s) { return s != State::closed && s != State::syn_received; }

  static constexpr uint64_t kChallengeWindowUs = 1'000'000;
  static constexpr uint8_t kChallengesPerWindow = 10;
  OutOfOrderStore ooo_store_;
  bool stash_out_of_order(Connection& c, Seq seq, rte_mbuf* payload);
  void deliver_out_of_order(Connection& c);
  void free_out_of_order(Connection& c);
  // SACK option bytes (RFC 2018 3) describing the out-of-order queue, into `out`; returns the
  // length (0 when there is nothing to report). At most `max_blocks` blocks.
  size_t sack_option(const Connection& c, uint8_t* out, size_t max_blocks) const;
  std::vector<SackScoreboard> scoreboards_;
  std::vector<uint16_t> scoreboard_free_;
  SackScoreboard* scoreboard(Connection& c) {
    return c.scoreboard_ == UINT16_MAX ? nullptr : &scoreboards_[c.scoreboard_];
  }
  // Records the SACK blocks of an ACK; returns the bytes newly SACKed.
  uint32_t update_scoreboard(Connection& c, const Segment& s);
  void release_scoreboard(Connection& c);
  // RFC 6675 5 (4)-(5): enter loss recovery, and send what the scoreboard says is lost.
  void enter_recovery(Connection& c, uint64_t now_us);
  // RFC 6675 5 (C): while pipe leaves room in cwnd, retransmit lost holes (NextSeg rule 1).
  void sack_retransmit(Connection& c, uint64_t now_us);
  std::vector<Listener> listeners_;
  uint32_t time_wait_connections_ = 0;  // against settings_.max_time_wait
  MemoryLevel memory_level_ = MemoryLevel::normal;
  // memory_budget_bytes / (2 x connections), kept up to date as connections come and go: a
  // division per connection opened or closed rather than several per segment (receive_window).
  uint64_t share_per_connection_ = 0;
  FlowMissHandler* miss_handler_ = nullptr;
  unsigned free_mbufs_ = 0;  // at the last sample
  uint64_t next_memory_sample_us_ = 0;
  // Slots of connections that advertised a window under pressure, to reopen when it ends; past
  // max_connections entries (slots reused during a long episode) every slot is swept instead.
  std::vector<uint32_t> clamped_;
  bool sweep_all_clamped_ = false;
  uint16_t ip_id_ = 0;
  uint64_t last_now_us_ = 0;
  uint64_t away_since_us_ = 0;  // the worker's last absence (worker_was_away)
  uint64_t back_at_us_ = 0;
};

}  // namespace weir::tcp
