// The shared-memory rings (common/shm_ring.h) and channels (common/shm_channel.h): framing and
// wrap-around, the full ring, distrust of the peer, wake-ups only for a sleeping consumer, and two
// processes streaming through a channel.
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "common/shm_channel.h"

namespace weir::shm {
namespace {

constexpr uint32_t kMaxPayload = 1024;

ChannelMemory make_channel(uint64_t capacity) {
  std::string error;
  auto channel = ChannelMemory::create(capacity, error);
  EXPECT_TRUE(channel) << error;
  return std::move(*channel);
}

// Deterministic bytes: the stream's byte at `position`.
uint8_t stream_byte(uint64_t position) {
  uint64_t x = position * 0x9e37'79b9'7f4a'7c15ULL;
  x ^= x >> 29;
  return static_cast<uint8_t>(x);
}

std::vector<uint8_t> stream_bytes(uint64_t from, size_t n) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = stream_byte(from + i);
  return bytes;
}

TEST(ShmRing, RecordsKeepTheirFramingAcrossManyWrapArounds) {
  ChannelMemory channel = make_channel(4096);
  RingWriter writer = channel.writer(Side::a, kMaxPayload, -1);
  RingReader reader = channel.reader(Side::b, kMaxPayload, -1);
  uint64_t written = 0, read = 0, records = 0;
  // Lengths that are not multiples of the alignment, so records land at every offset and some
  // need a padding record before the end of the buffer.
  for (int round = 0; round < 2000; ++round) {
    const uint32_t length = static_cast<uint32_t>((round * 37) % 700);
    ASSERT_TRUE(writer.try_write(round, static_cast<uint16_t>(1 + round % 5),
                                 stream_bytes(written, length)));
    written += length;
    writer.publish();
    const auto record = reader.peek();
    ASSERT_TRUE(record);
    EXPECT_EQ(record->session, static_cast<uint64_t>(round));
    EXPECT_EQ(record->kind, 1 + round % 5);
    ASSERT_EQ(record->payload.size(), length);
    EXPECT_TRUE(std::equal(record->payload.begin(), record->payload.end(),
                           stream_bytes(read, length).begin()));
    read += length;
    reader.pop();
    reader.release();
    ++records;
  }
  EXPECT_FALSE(reader.peek());
  EXPECT_GT(written, 100 * 4096u) << "the ring wrapped many times";
  EXPECT_EQ(writer.full_count(), 0u);
  EXPECT_FALSE(reader.broken());
  EXPECT_FALSE(writer.broken());
}

TEST(ShmRing, AFullRingRefusesAndCountsUntilTheConsumerReleases) {
  ChannelMemory channel = make_channel(4096);
  RingWriter writer = channel.writer(Side::a, kMaxPayload, -1);
  RingReader reader = channel.reader(Side::b, kMaxPayload, -1);
  const std::vector<uint8_t> payload(1000, 0xab);  // 1016 bytes a record: four fit in 4096
  int accepted = 0;
  while (writer.try_write(accepted, 1, payload)) ++accepted;
  EXPECT_EQ(accepted, 4);
  EXPECT_EQ(writer.full_count(), 1u);
  EXPECT_FALSE(writer.try_write(99, 1, payload));
  EXPECT_EQ(writer.full_count(), 2u);
  EXPECT_FALSE(reader.peek()) << "nothing is visible before publish()";
  writer.publish();
  ASSERT_TRUE(reader.peek());
  reader.pop();
  EXPECT_FALSE(writer.try_write(99, 1, payload)) << "popped but not released: still full";
  reader.release();
  EXPECT_TRUE(writer.try_write(4, 1, payload));
  writer.publish();
  for (int expected = 1; expected <= 4; ++expected) {
    const auto record = reader.peek();
    ASSERT_TRUE(record);
    EXPECT_EQ(record->session, static_cast<uint64_t>(expected));
    reader.pop();
  }
  EXPECT_FALSE(reader.peek());
  EXPECT_FALSE(writer.try_write(1, 1, std::vector<uint8_t>(kMaxPayload + 1)))
      << "a record over max_payload is refused";
}

TEST(ShmRing, ARecordTheProducerCouldNotHaveWrittenBreaksTheRing) {
  ChannelMemory channel = make_channel(4096);
  RingWriter writer = channel.writer(Side::a, kMaxPayload, -1);
  RingReader reader = channel.reader(Side::b, kMaxPayload, -1);
  ASSERT_TRUE(writer.try_write(1, 1, std::vector<uint8_t>(10)));
  writer.publish();
  // A hostile peer rewrites the published header's length beyond max_payload.
  RecordHeader header;
  std::memcpy(&header, channel.data(0), sizeof header);
  header.length = kMaxPayload + 16;
  std::memcpy(channel.data(0), &header, sizeof header);
  EXPECT_FALSE(reader.peek());
  EXPECT_TRUE(reader.broken());

  // A head beyond what the ring can hold.
  ChannelMemory other = make_channel(4096);
  RingReader reader2 = other.reader(Side::b, kMaxPayload, -1);
  other.ring(0)->head.store(8192, std::memory_order_release);
  EXPECT_FALSE(reader2.peek());
  EXPECT_TRUE(reader2.broken());
}

TEST(ShmRing, MappingRefusesAnFdThatIsNotAChannel) {
  std::string error;
  const int fd = memfd_create("not-a-channel", MFD_CLOEXEC);
  ASSERT_EQ(ftruncate(fd, 3 * 4096 + 2 * 4096), 0);
  EXPECT_FALSE(ChannelMemory::map(fd, error)) << "unsealed: the peer could shrink it";
  EXPECT_NE(error.find("not a sealed channel memfd"), std::string::npos) << error;
}

TEST(ShmRing, TheConsumerIsWokenOncePerSleepAndNeverWhileBusy) {
  ChannelMemory channel = make_channel(4096);
  const int event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(event, 0);
  RingWriter writer = channel.writer(Side::a, kMaxPayload, event);
  RingReader reader = channel.reader(Side::b, kMaxPayload, -1);
  const std::vector<uint8_t> payload(8, 1);
  auto pending_wakeups = [&] {
    uint64_t n = 0;
    return read(event, &n, sizeof n) == sizeof n ? n : 0;
  };

  writer.try_write(1, 1, payload);
  writer.publish();
  EXPECT_EQ(writer.wakeups(), 0u) << "the consumer never said it sleeps";
  EXPECT_EQ(pending_wakeups(), 0u);

  EXPECT_FALSE(reader.prepare_sleep()) << "a record is waiting: no sleep";
  ASSERT_TRUE(reader.peek());
  reader.pop();
  EXPECT_TRUE(reader.prepare_sleep()) << "empty: the consumer may block";
  writer.try_write(2, 1, payload);
  writer.publish();
  writer.try_write(3, 1, payload);
  writer.publish();
  EXPECT_EQ(writer.wakeups(), 1u) << "one eventfd write for one sleep, however many batches";
  EXPECT_EQ(pending_wakeups(), 1u);
  reader.awake();
  writer.try_write(4, 1, payload);
  writer.publish();
  EXPECT_EQ(writer.wakeups(), 1u) << "awake again: no more system calls";
  EXPECT_TRUE(reader.peek());
  close(event);
}

TEST(ShmRing, AProducerWaitingForSpaceIsWokenByRelease) {
  ChannelMemory channel = make_channel(4096);
  const int space_event = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  RingWriter writer = channel.writer(Side::a, kMaxPayload, -1);
  RingReader reader = channel.reader(Side::b, kMaxPayload, space_event);
  const std::vector<uint8_t> payload(1000, 2);
  while (writer.try_write(1, 1, payload)) {
  }
  writer.publish();
  EXPECT_TRUE(writer.prepare_sleep(record_space(1000)));
  reader.peek();
  reader.pop();
  reader.release();
  EXPECT_EQ(reader.wakeups(), 1u);
  uint64_t n = 0;
  EXPECT_EQ(read(space_event, &n, sizeof n), static_cast<ssize_t>(sizeof n));
  writer.awake();
  EXPECT_TRUE(writer.try_write(2, 1, payload));
  close(space_event);
}

// Two processes: the parent streams 32 MiB in records of varied sizes through a 64 KiB ring to a
// child that checks every byte and its order, sleeping on the eventfd whenever the ring is empty;
// the child reports what it verified through the return ring. Blocking with poll() has a 10 s
// limit as a failure detector only.
TEST(ShmRing, TwoProcessesStreamThroughAChannelWithSleepsAndWakes) {
  ChannelMemory channel = make_channel(65536);
  const int to_child = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  const int to_parent = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  constexpr uint64_t kTotal = 32u << 20;
  constexpr uint64_t kForcedSleeps = 8;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    RingReader in = channel.reader(Side::b, kMaxPayload, to_parent);
    RingWriter out = channel.writer(Side::b, kMaxPayload, to_parent);
    uint64_t verified = 0, sleeps = 0;
    bool ok = true;
    while (verified < kTotal && ok) {
      if (auto record = in.peek()) {
        for (uint8_t byte : record->payload) ok = ok && byte == stream_byte(verified++);
        ok = ok && record->session == verified;
        in.pop();
        continue;
      }
      if (in.broken()) _exit(4);
      if (in.prepare_sleep()) {
        ++sleeps;
        pollfd p{to_child, POLLIN, 0};
        if (poll(&p, 1, 10'000) != 1) _exit(3);
        uint64_t n;
        [[maybe_unused]] ssize_t r = read(to_child, &n, sizeof n);
        in.awake();
      }
    }
    in.release();
    const uint64_t report[2] = {ok ? verified : 0, sleeps};
    out.try_write(0, 1, std::span(reinterpret_cast<const uint8_t*>(report), sizeof report));
    out.publish();
    _exit(ok ? 0 : 2);
  }
  RingWriter out = channel.writer(Side::a, kMaxPayload, to_child);
  RingReader in = channel.reader(Side::a, kMaxPayload, -1);
  uint64_t sent = 0, batches = 0, next_pause = kTotal / (kForcedSleeps + 1);
  while (sent < kTotal) {
    if (sent >= next_pause) {
      // Let the child run dry and announce its sleep (observed, not timed), so the sleep and
      // wake-up path runs at least kForcedSleeps times whatever the scheduler does.
      next_pause += kTotal / (kForcedSleeps + 1);
      while ((channel.ring(0)->consumer_sleep_seq.load(std::memory_order_acquire) & 1) == 0) {
        ASSERT_EQ(waitpid(child, nullptr, WNOHANG), 0) << "the child ended early";
        sched_yield();
      }
    }
    // A batch of 1-8 records, then one publish; wait for space when full.
    const int records = 1 + static_cast<int>(batches % 8);
    for (int i = 0; i < records && sent < kTotal; ++i) {
      const uint32_t length = static_cast<uint32_t>(
          std::min<uint64_t>(1 + (sent * 7 + i) % kMaxPayload, kTotal - sent));
      uint8_t* to = out.reserve(sent + length, 1, length);
      if (to == nullptr) break;
      for (uint32_t j = 0; j < length; ++j) to[j] = stream_byte(sent + j);
      out.commit();
      sent += length;
    }
    out.publish();
    ++batches;
    if (!out.has_room(2 * record_space(kMaxPayload)) &&
        out.prepare_sleep(2 * record_space(kMaxPayload))) {
      pollfd p{to_parent, POLLIN, 0};
      ASSERT_EQ(poll(&p, 1, 10'000), 1) << "the consumer never released space";
      uint64_t n;
      ASSERT_EQ(read(to_parent, &n, sizeof n), static_cast<ssize_t>(sizeof n));
      out.awake();
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "2: a byte differed; 3: the child waited 10 s for data; 4: broken ring";
  const auto report = in.peek();
  ASSERT_TRUE(report);
  ASSERT_EQ(report->payload.size(), 16u);
  uint64_t verified = 0;
  std::memcpy(&verified, report->payload.data(), 8);
  EXPECT_EQ(verified, kTotal);
  uint64_t child_sleeps = 0;
  std::memcpy(&child_sleeps, report->payload.data() + 8, 8);
  EXPECT_GE(child_sleeps, kForcedSleeps);
  EXPECT_GE(out.wakeups(), kForcedSleeps) << "each sleep needs its wake-up";
  EXPECT_LE(out.wakeups(), child_sleeps) << "at most one eventfd write per sleep";
  close(to_child);
  close(to_parent);
}

}  // namespace
}  // namespace weir::shm
