// Fuzz target for the frame decoder. The first input byte chooses chunk sizes; the rest is the
// stream. Invariants (abort on violation):
//  - chunked decoding reports exactly what one-shot decoding reports;
//  - payload spans lie inside the chunk they were reported from;
//  - a verdict is ok exactly when an independent one-shot CRC over the reassembled frame matches
//    its trailer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/frame.h"

namespace {

struct Collector {
  std::span<const uint8_t> chunk;
  std::vector<uint8_t> current;  // header + payload of the frame in progress
  std::vector<uint8_t> events;   // a transcript to compare chunked with one-shot decoding
  std::vector<std::vector<uint8_t>> frames;
  std::vector<weir::frame::Verdict> verdicts;

  void on_header(const weir::frame::Header& h,
                 std::span<const uint8_t, weir::frame::kHeaderSize> raw) {
    current.assign(raw.begin(), raw.end());
    events.push_back('H');
    events.push_back(static_cast<uint8_t>(h.length));
  }
  void on_payload(std::span<const uint8_t> bytes) {
    if (bytes.data() < chunk.data() || bytes.data() + bytes.size() > chunk.data() + chunk.size()) {
      std::abort();
    }
    current.insert(current.end(), bytes.begin(), bytes.end());
    events.insert(events.end(), bytes.begin(), bytes.end());
  }
  void on_verdict(const weir::frame::Header&, const weir::frame::Verdict& v) {
    events.push_back(v.ok ? 'K' : 'C');
    frames.push_back(current);
    verdicts.push_back(v);
  }
  void on_malformed(weir::frame::Malformed reason) {
    events.push_back('M');
    events.push_back(static_cast<uint8_t>(reason));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 37;
  const std::span<const uint8_t> stream(data + 1, size - 1);
  constexpr uint32_t kMaxPayload = 4096;  // keeps inputs meaningful at fuzzing sizes

  Collector whole;
  whole.chunk = stream;
  weir::frame::Decoder one_shot(kMaxPayload);
  one_shot.feed(stream, whole);

  Collector chunked;
  weir::frame::Decoder decoder(kMaxPayload);
  for (size_t pos = 0; pos < stream.size(); pos += step) {
    chunked.chunk = stream.subspan(pos, std::min(step, stream.size() - pos));
    decoder.feed(chunked.chunk, chunked);
  }
  // Payload events differ only in how spans were cut; the byte transcript is the same.
  if (chunked.events != whole.events) std::abort();
  for (size_t i = 0; i < whole.frames.size(); ++i) {
    const auto& f = whole.frames[i];
    const bool matches = weir::crc32c(f.data(), f.size()) == whole.verdicts[i].received_crc;
    if (matches != whole.verdicts[i].ok) std::abort();
  }
  return 0;
}
