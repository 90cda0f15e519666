// Prints the packet builder's frames for a fixed set of named cases, one "NAME HEX" line each, and
// with --pcap FILE also writes them to a capture file (case i stamped 1700000000 + i seconds and
// i * 1111 microseconds). tests/integration/test_packet_builders.py builds the same frames with
// scapy and compares them byte for byte, and reads the capture back with scapy's rdpcap.
//
// Every field scapy would default is set explicitly here and there, so the comparison does not
// depend on either side's defaults.
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/packet_builder.h"
#include "tests/support/pcap_writer.h"

namespace weir::test {
namespace {

constexpr MacAddress kClientMac({0x52, 0x54, 0x00, 0x12, 0x34, 0x56});
constexpr MacAddress kBalancerMac({0x52, 0x54, 0x00, 0xab, 0xcd, 0xef});
constexpr Ipv4Address kClientIp = Ipv4Address::from_octets(198, 51, 100, 7);
constexpr Ipv4Address kVip = Ipv4Address::from_octets(203, 0, 113, 10);

std::vector<std::pair<std::string, std::vector<uint8_t>>> cases() {
  std::vector<uint8_t> ping_data;
  for (int i = 0; i < 56; ++i) ping_data.push_back(static_cast<uint8_t>(0x10 + i));
  const std::vector<uint8_t> router_alert = {0x94, 0x04, 0x00, 0x00};  // RFC 2113
  const std::vector<uint8_t> three_nops = {0x01, 0x01, 0x01};

  auto client = [] { return Eth(kClientMac, kBalancerMac).IPv4(kClientIp, kVip); };
  std::vector<std::pair<std::string, std::vector<uint8_t>>> frames;
  // Linux's SYN option layout: MSS, SACK permitted, timestamps, NOP, window scale.
  frames.emplace_back("tcp_syn_options", client()
                                             .id(0x1c46)
                                             .ttl(64)
                                             .tos(0)
                                             .dont_fragment(true)
                                             .TCP(51514, 443, TcpFlag::syn, 0x12345678, 0,
                                                  TcpOptions()
                                                      .mss(1460)
                                                      .sack_permitted()
                                                      .timestamps(0xdeadbeef, 0)
                                                      .nop()
                                                      .window_scale(7))
                                             .window(64240)
                                             .urgent_pointer(0)
                                             .build());
  frames.emplace_back("tcp_data_segment",
                      client()
                          .id(0x1c47)
                          .ttl(64)
                          .dont_fragment(true)
                          .TCP(51514, 443, TcpFlag::psh | TcpFlag::ack, 0x12345679, 0x9abcdef0,
                               TcpOptions().nop().nop().timestamps(0xdeadbf00, 0x01020304))
                          .window(502)
                          .payload("GET / HTTP/1.1\r\nHost: weir.example\r\n\r\n")
                          .build());
  // NOP NOP TS (12) + NOP NOP SACK with three blocks (28) = 40 bytes, the maximum.
  frames.emplace_back("tcp_ack_sack", client()
                                          .id(0x1c48)
                                          .ttl(64)
                                          .dont_fragment(true)
                                          .TCP(51514, 443, TcpFlag::ack, 0x12345679, 0x9abcdef0,
                                               TcpOptions()
                                                   .nop()
                                                   .nop()
                                                   .timestamps(0xdeadbf10, 0x01020310)
                                                   .nop()
                                                   .nop()
                                                   .sack({{0x9abd0000, 0x9abd05b4},
                                                          {0x9abd0b68, 0x9abd111c},
                                                          {0xfffffa00, 0x00000100}}))
                                          .window(501)
                                          .build());
  // MSS + window scale = 7 bytes: the builder pads with one zero byte, as RFC 9293 says.
  frames.emplace_back("tcp_options_zero_padded", client()
                                                     .id(1)
                                                     .ttl(64)
                                                     .dont_fragment(true)
                                                     .TCP(51515, 443, TcpFlag::syn, 1, 0,
                                                          TcpOptions().mss(8960).window_scale(14))
                                                     .window(65535)
                                                     .build());
  frames.emplace_back("tcp_fin_ack",
                      client()
                          .id(0x1c49)
                          .ttl(64)
                          .dont_fragment(true)
                          .TCP(51514, 443, TcpFlag::fin | TcpFlag::ack, 0x123456a0, 0x9abcdef0)
                          .window(501)
                          .build());
  frames.emplace_back("tcp_rst", Eth(kBalancerMac, kClientMac)
                                     .IPv4(kVip, kClientIp)
                                     .id(0)
                                     .ttl(255)
                                     .dont_fragment(false)
                                     .TCP(443, 51514, TcpFlag::rst, 0x9abcdef0, 0)
                                     .window(0)
                                     .build());
  frames.emplace_back(
      "tcp_urgent_ecn",
      client()
          .id(0x2000)
          .ttl(63)
          .tos(0x02)  // ECT(0), RFC 3168
          .dont_fragment(true)
          .TCP(51514, 443, TcpFlag::urg | TcpFlag::ece | TcpFlag::cwr | TcpFlag::psh | TcpFlag::ack,
               7, 8)
          .window(1024)
          .urgent_pointer(3)
          .payload("abc")
          .build());
  frames.emplace_back("tcp_odd_payload",
                      client()
                          .id(0x1c4a)
                          .ttl(64)
                          .dont_fragment(true)
                          .TCP(51514, 443, TcpFlag::psh | TcpFlag::ack, 0x12345679, 0x9abcdef0)
                          .window(502)
                          .payload("weir!\x01\xff")
                          .build());
  frames.emplace_back("ipv4_router_alert_option", client()
                                                      .id(0x0042)
                                                      .ttl(1)
                                                      .dont_fragment(false)
                                                      .ip_options(router_alert)
                                                      .TCP(51514, 443, TcpFlag::ack, 5, 6)
                                                      .window(100)
                                                      .build());
  // Three option bytes: the IPv4 header is zero-padded to 24 bytes (RFC 791).
  frames.emplace_back("ipv4_unaligned_options", client()
                                                    .id(0x0043)
                                                    .ttl(64)
                                                    .dont_fragment(false)
                                                    .ip_options(three_nops)
                                                    .ICMPEchoRequest(7, 7)
                                                    .build());
  // A non-first fragment: no TCP header, just protocol 6 and data at offset 185 * 8.
  frames.emplace_back("ipv4_fragment", client()
                                           .id(0x7777)
                                           .ttl(64)
                                           .dont_fragment(false)
                                           .more_fragments(true)
                                           .fragment_offset(185)
                                           .ip_protocol(6)
                                           .payload("fragment data!!!")
                                           .build());
  frames.emplace_back(
      "arp_request",
      Eth(kClientMac, MacAddress::broadcast()).ARPRequest(kClientMac, kClientIp, kVip).build());
  frames.emplace_back(
      "arp_reply",
      Eth(kBalancerMac, kClientMac).ARPReply(kBalancerMac, kVip, kClientMac, kClientIp).build());
  frames.emplace_back("arp_request_padded", Eth(kClientMac, MacAddress::broadcast())
                                                .ARPRequest(kClientMac, kClientIp, kVip)
                                                .pad_to(60)
                                                .build());
  frames.emplace_back("icmp_echo_request", client()
                                               .id(0x4d2)
                                               .ttl(64)
                                               .dont_fragment(true)
                                               .ICMPEchoRequest(0x1234, 1)
                                               .payload(ping_data)
                                               .build());
  frames.emplace_back("icmp_echo_reply_odd_payload", Eth(kBalancerMac, kClientMac)
                                                         .IPv4(kVip, kClientIp)
                                                         .id(0x4d3)
                                                         .ttl(64)
                                                         .dont_fragment(false)
                                                         .ICMPEchoReply(0x1234, 2)
                                                         .payload("odd length!!!")
                                                         .build());
  // Malformed on purpose: the overridden fields as given, everything else computed.
  frames.emplace_back("malformed_checksums_ttl0", client()
                                                      .id(9)
                                                      .ttl(0)
                                                      .dont_fragment(true)
                                                      .ip_checksum(0xbeef)
                                                      .TCP(51514, 443, TcpFlag::ack, 1, 2)
                                                      .window(10)
                                                      .tcp_checksum(0x1234)
                                                      .build());
  frames.emplace_back("malformed_ihl_and_length", client()
                                                      .id(10)
                                                      .ttl(64)
                                                      .dont_fragment(true)
                                                      .ihl(15)
                                                      .ip_total_length(9999)
                                                      .ICMPEchoRequest(1, 1)
                                                      .payload("x")
                                                      .build());
  frames.emplace_back("malformed_truncated_syn",
                      client()
                          .id(11)
                          .ttl(64)
                          .dont_fragment(true)
                          .TCP(51514, 443, TcpFlag::syn, 1, 0, TcpOptions().mss(1460))
                          .window(64240)
                          .truncate(40)
                          .build());
  return frames;
}

void print_hex_line(const std::string& name, const std::vector<uint8_t>& frame) {
  std::printf("%s ", name.c_str());
  for (uint8_t byte : frame) std::printf("%02x", byte);
  std::printf("\n");
}

int run(int argc, char** argv) {
  std::string pcap_path;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--pcap" && i + 1 < argc) {
      pcap_path = argv[++i];
    } else {
      std::fprintf(stderr, "packet_builder_cases: unexpected argument '%s'\n", argv[i]);
      std::fprintf(stderr, "usage: packet_builder_cases [--pcap FILE]\n");
      return 2;
    }
  }
  const auto frames = cases();
  for (const auto& [name, frame] : frames) print_hex_line(name, frame);
  if (!pcap_path.empty()) {
    PcapWriter writer(pcap_path);
    for (size_t i = 0; i < frames.size(); ++i) {
      const auto index = static_cast<uint32_t>(i);
      writer.write(frames[i].second, PcapTimestamp{1'700'000'000 + index, index * 1111});
    }
    writer.close();
  }
  return 0;
}

}  // namespace
}  // namespace weir::test

int main(int argc, char** argv) {
  try {
    return weir::test::run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "packet_builder_cases: %s\n", error.what());
    return 1;
  }
}
