// Classic libpcap capture files (the format of pcap-savefile(5); also draft-ietf-opsawg-pcap):
//   file header, 24 bytes: magic 0xa1b2c3d4 (microsecond timestamps), version 2.4, thiszone 0,
//                          sigfigs 0, snaplen, link type (1 = Ethernet, LINKTYPE_ETHERNET)
//   per record, 16 bytes:  seconds, microseconds, captured length, original length; then the bytes
// Readers learn the byte order of every field from how the magic reads; these are always written
// little-endian, so the bytes of a file do not depend on the host that wrote it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace weir::test {

inline constexpr uint32_t kPcapMagicMicroseconds = 0xa1b2c3d4;
inline constexpr uint16_t kPcapVersionMajor = 2;
inline constexpr uint16_t kPcapVersionMinor = 4;
inline constexpr uint32_t kPcapLinkTypeEthernet = 1;
inline constexpr uint32_t kPcapDefaultSnapLength = 65535;

struct PcapTimestamp {
  uint32_t seconds = 0;
  uint32_t microseconds = 0;  // below 1'000'000
};

// The 24-byte file header.
std::vector<uint8_t> pcap_file_header(uint32_t snap_length = kPcapDefaultSnapLength);
// One record: header and the frame's first min(size, snap_length) bytes. Throws
// std::invalid_argument when the microseconds are not below one second.
std::vector<uint8_t> pcap_record(std::span<const uint8_t> frame, PcapTimestamp timestamp,
                                 uint32_t snap_length = kPcapDefaultSnapLength);

// Writes a capture file: the header on construction, one record per write. Errors throw
// std::runtime_error naming the file and the system's reason.
class PcapWriter {
 public:
  explicit PcapWriter(const std::string& path, uint32_t snap_length = kPcapDefaultSnapLength);
  ~PcapWriter();
  PcapWriter(const PcapWriter&) = delete;
  PcapWriter& operator=(const PcapWriter&) = delete;

  void write(std::span<const uint8_t> frame, PcapTimestamp timestamp);
  // Flushes and closes; a failure here (a full disk) throws, unlike in the destructor.
  void close();

 private:
  void put(const std::vector<uint8_t>& bytes);

  std::string path_;
  uint32_t snap_length_;
  std::FILE* file_ = nullptr;
};

}  // namespace weir::test
