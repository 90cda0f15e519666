// Fuzz target for weir-tls-worker's record path (tls/tls_worker.h): whatever a dataplane (buggy or
// compromised) writes into a channel, the worker must not crash, break the ring back, or keep
// more sessions than were opened. Certificates are made once, at start, in a
// temporary directory (tests/support/test_pki.h).
// Input: a sequence of records, each: kind (1 byte, mod 8), session (1 byte, mod 4), length
// (1 byte; 255 means "the rest of the input"), payload; the clock advances 1 s per record, so
// handshake deadlines pass too. An `open` payload shorter than 2 bytes becomes a valid open of
// listener "secure" (so that inputs reach OpenSSL without spelling the open record).
// Invariants, abort() on violation:
//  - the ring back never breaks and every record in it is a known kind;
//  - sessions alive <= sessions opened, and every reset record names a session that was opened.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <vector>

#include "config/config.h"
#include "tests/support/test_pki.h"
#include "tls/tls_worker.h"

namespace {

using namespace weir;

void check(bool condition) {
  if (!condition) std::abort();
}

struct Fixture {
  test::TempDir dir;
  tls::Contexts contexts;
  Fixture() {
    const test::Issued root = test::issue({"Fuzz Root", {}, true}, nullptr);
    const test::Issued leaf = test::issue({"site.example", {"site.example"}}, &root);
    test::write_pem(dir.path() / "site.pem", {leaf.cert.get()});
    test::write_pem(dir.path() / "site.key", leaf.key.get());
    const std::string text =
        "dataplane:\n"
        "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
        "  ports: [{ name: p0, device: net_tap0, address: 10.0.0.2/24 }]\n"
        "pools: [{ name: kv, backends: [{ name: b1, address: 10.0.0.11, port: 80 }] }]\n"
        "listeners:\n"
        "  - { name: secure, address: 10.0.0.100, port: 7443, protocol: tls, pool: kv,\n"
        "      tls: { certificates: [{ cert: " +
        dir.file("site.pem") + ", key: " + dir.file("site.key") +
        " }], handshake_timeout_ms: 3000 } }\n";
    const config::LoadResult loaded = config::load_string(text, "fuzz.yaml");
    check(loaded.ok());
    std::vector<std::string> errors;
    check(contexts.load(*loaded.config, errors));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;
  std::string error;
  auto memory = shm::ChannelMemory::create(1 << 20, error);
  check(memory.has_value());
  auto view = shm::ChannelMemory::map(dup(memory->fd()), error);
  check(view.has_value());
  tls::TlsWorker worker(fixture.contexts);
  worker.add_channel(std::move(*view), -1);
  shm::RingWriter out = memory->writer(shm::Side::a, tls_channel::kMaxRecordPayload, -1);
  shm::RingReader in = memory->reader(shm::Side::a, tls_channel::kMaxRecordPayload, -1);
  std::set<uint64_t> opened;
  uint64_t now_ms = 0;
  const auto drain = [&] {
    while (const auto record = in.peek()) {
      check(record->kind >= 2 && record->kind <= 7);
      if (record->kind == static_cast<uint16_t>(tls_channel::Kind::reset))
        check(opened.contains(record->session));
      in.pop();
    }
    in.release();
    check(!in.broken());
  };
  size_t pos = 0;
  while (pos + 3 <= size) {
    const uint16_t kind = data[pos] % 8;
    const uint64_t session = data[pos + 1] % 4;
    size_t length = data[pos + 2] == 255 ? size - pos - 3 : data[pos + 2];
    pos += 3;
    length = std::min(length, size - pos);
    std::vector<uint8_t> payload(data + pos, data + pos + length);
    pos += length;
    if (kind == static_cast<uint16_t>(tls_channel::Kind::open)) {
      if (payload.size() < 2)
        payload = tls_channel::encode(tls_channel::OpenPayload{1, 2, "secure"});
      opened.insert(session);
    }
    if (kind == 0) continue;  // padding is the ring's own
    if (!out.try_write(session, kind, payload)) break;
    out.publish();
    worker.poll_once(now_ms += 1000);
    drain();
  }
  worker.poll_once(now_ms += 10'000);  // every handshake deadline passes
  drain();
  check(worker.sessions() <= opened.size());
  return 0;
}
