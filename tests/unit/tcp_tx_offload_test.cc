// TX checksum offload: on a port whose device computes IPv4 and TCP checksums, TCP's segments ask
// for it (ol_flags, l2_len/l3_len, the IPv4 field zero, the pseudo-header's sum in the TCP field)
// instead of computing them; on one without (net_af_packet, net_af_xdp) they carry full checksums
// and ask for nothing. The in-memory device models both (tests/support/memory_io.h).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/tcp/services.h"
#include "dataplane/tcp/tcp_stack.h"
#include "tests/support/dataplane_harness.h"
#include "tests/support/eal_environment.h"
#include "tests/support/memory_io.h"
#include "tests/support/packet_builder.h"
#include "tests/support/tcp_script.h"

namespace weir::tcp {
namespace {

struct Exchange {
  std::vector<Frame> sent;
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t violations = 0;
};

// A handshake with the echo service, 3000 bytes echoed (a data segment is a header mbuf with the
// payload chained behind it), and a reset, through a port with (`port_offload`) or without the
// offload, on a device that has it or not (`device_offload`).
Exchange exchange(bool port_offload, bool device_offload) {
  net::StackConfig config = test::harness_port_config();
  config.ports[0].tx_checksum_offload = {.ipv4 = port_offload, .tcp = port_offload};
  test::StackPortHarness port(config, test::test_mbuf_pool());
  port.io.set_tx_checksum_offload(device_offload);
  TcpSettings settings;
  settings.max_connections = 8;
  TcpCounters counters{};
  uint64_t now = kStart;
  Exchange result;
  {
    TcpStack tcp(settings, *port.stack, port.pool, counters, Secret{7}, now);
    port.stack->set_transport(&tcp);
    EchoService echo(tcp);
    tcp.listen(kVip, kEcho, &echo, 8);
    port.deliver(Eth(kClientMac, MacAddress::broadcast())
                     .ARPRequest(kClientMac, kClientIp, kVip)
                     .pad_to(60)
                     .build(),
                 now);
    port.take_sent();  // the ARP reply
    port.deliver(Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kVip)
                     .TCP(kClientPort, kEcho, TcpFlag::syn, kClientIsn, 0, TcpOptions().mss(1460))
                     .build(),
                 now);
    std::vector<Frame> sent = port.take_sent();
    const Frame& syn_ack = sent.at(0);  // read directly: its checksums may be left to the device
    const uint32_t iss = uint32_t{syn_ack.at(38)} << 24 | uint32_t{syn_ack.at(39)} << 16 |
                         uint32_t{syn_ack.at(40)} << 8 | syn_ack.at(41);
    result.sent.insert(result.sent.end(), sent.begin(), sent.end());
    port.deliver(Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kVip)
                     .TCP(kClientPort, kEcho, TcpFlag::ack, kClientIsn + 1, iss + 1)
                     .payload(std::string(1000, 'x'))
                     .build(),
                 ++now);
    port.deliver(Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kVip)
                     .TCP(kClientPort, kEcho, TcpFlag::ack, kClientIsn + 1001, iss + 1)
                     .payload(std::string(1001, 'y'))  // odd: the pieces' sums shift
                     .build(),
                 ++now);
    port.deliver(Eth(kClientMac, kPortMac)
                     .IPv4(kClientIp, kVip)
                     .TCP(kClientPort, kEcho, TcpFlag::rst, kClientIsn + 2002, 0)
                     .build(),
                 ++now);
    sent = port.take_sent();
    result.sent.insert(result.sent.end(), sent.begin(), sent.end());
    port.stack->set_transport(nullptr);
  }
  result.completed = port.io.tx_checksums_completed();
  result.errors = port.io.tx_checksum_errors();
  result.violations = port.io.tx_violations();
  return result;
}

size_t payload_bytes(const std::vector<Frame>& frames) {
  size_t bytes = 0;
  for (const Frame& frame : frames) bytes += decode(frame).payload.size();  // checks checksums
  return bytes;
}

TEST(TcpTxChecksumOffload, WithoutItSegmentsCarryFullChecksumsAndAskForNothing) {
  // The device would compute nothing: any request would be a violation, and decode() checks that
  // every checksum on the wire is right.
  const Exchange e = exchange(false, false);
  EXPECT_EQ(e.violations, 0u);
  EXPECT_EQ(e.completed, 0u);
  EXPECT_GE(e.sent.size(), 3u);
  EXPECT_EQ(payload_bytes(e.sent), 2001u);
}

TEST(TcpTxChecksumOffload, WithItEverySegmentAsksTheDeviceWithPseudoHeaderSums) {
  const Exchange e = exchange(true, true);
  EXPECT_EQ(e.violations, 0u);
  EXPECT_EQ(e.errors, 0u);  // fields as a NIC expects them, checked against rte_ipv4_phdr_cksum
  EXPECT_GE(e.sent.size(), 3u);
  EXPECT_EQ(e.completed, e.sent.size());    // every segment, the SYN-ACK and data ones included
  EXPECT_EQ(payload_bytes(e.sent), 2001u);  // right once the device completes them
}

TEST(TcpTxChecksumOffload, SegmentsLeftToTheDeviceAreNotChecksummedBySoftware) {
  // The same port on a device that does not compute them: what left the stack is not valid on its
  // own, so the software checksums were really skipped.
  const Exchange e = exchange(true, false);
  EXPECT_EQ(e.violations, e.sent.size());
  for (const Frame& frame : e.sent) {
    const auto ip = net::ConstIpv4View::parse(std::span<const uint8_t>(frame).subspan(14));
    ASSERT_TRUE(ip);
    EXPECT_FALSE(ip->checksum_valid());
  }
}

}  // namespace
}  // namespace weir::tcp
