#include "tests/support/pcap_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace weir::test {
namespace {

void put16le(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value));
  out.push_back(static_cast<uint8_t>(value >> 8));
}

void put32le(std::vector<uint8_t>& out, uint32_t value) {
  put16le(out, static_cast<uint16_t>(value));
  put16le(out, static_cast<uint16_t>(value >> 16));
}

}  // namespace

std::vector<uint8_t> pcap_file_header(uint32_t snap_length) {
  std::vector<uint8_t> out;
  put32le(out, kPcapMagicMicroseconds);
  put16le(out, kPcapVersionMajor);
  put16le(out, kPcapVersionMinor);
  put32le(out, 0);  // thiszone: timestamps are UTC
  put32le(out, 0);  // sigfigs: always 0 in practice
  put32le(out, snap_length);
  put32le(out, kPcapLinkTypeEthernet);
  return out;
}

std::vector<uint8_t> pcap_record(std::span<const uint8_t> frame, PcapTimestamp timestamp,
                                 uint32_t snap_length) {
  if (timestamp.microseconds >= 1'000'000) {
    throw std::invalid_argument("pcap record: microseconds " +
                                std::to_string(timestamp.microseconds) + " not below 1000000");
  }
  const size_t captured = std::min<size_t>(frame.size(), snap_length);
  std::vector<uint8_t> out;
  out.reserve(16 + captured);
  put32le(out, timestamp.seconds);
  put32le(out, timestamp.microseconds);
  put32le(out, static_cast<uint32_t>(captured));
  put32le(out, static_cast<uint32_t>(frame.size()));
  out.insert(out.end(), frame.begin(), frame.begin() + static_cast<ptrdiff_t>(captured));
  return out;
}

PcapWriter::PcapWriter(const std::string& path, uint32_t snap_length)
    : path_(path), snap_length_(snap_length) {
  file_ = std::fopen(path.c_str(), "wb");
  if (file_ == nullptr) {
    throw std::runtime_error("pcap " + path + ": cannot create: " + std::strerror(errno));
  }
  try {
    put(pcap_file_header(snap_length));
  } catch (...) {
    std::fclose(file_);
    throw;
  }
}

PcapWriter::~PcapWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

void PcapWriter::write(std::span<const uint8_t> frame, PcapTimestamp timestamp) {
  put(pcap_record(frame, timestamp, snap_length_));
}

void PcapWriter::close() {
  if (file_ == nullptr) return;
  std::FILE* file = file_;
  file_ = nullptr;
  if (std::fclose(file) != 0) {
    throw std::runtime_error("pcap " + path_ + ": close: " + std::strerror(errno));
  }
}

void PcapWriter::put(const std::vector<uint8_t>& bytes) {
  if (file_ == nullptr) throw std::runtime_error("pcap " + path_ + ": write after close");
  if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
    throw std::runtime_error("pcap " + path_ + ": write: " + std::strerror(errno));
  }
}

}  // namespace weir::test
