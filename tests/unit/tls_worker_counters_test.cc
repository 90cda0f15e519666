// A TLS worker's counters on their way to weir-control (common/tls_counter_block.h,
// tls/worker_counter_bindings.h, control/tls_workers.h): every WorkerCounters value is bound to its
// own catalogue entry, publish() stores each at its entry's index, and what another mapping of the
// same memfd (weir-control's) loads is what was stored.
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <string>

#include "common/counter_catalogue.h"
#include "common/tls_counter_block.h"
#include "tls/worker_counter_bindings.h"

namespace weir::tls {
namespace {

// Every value a distinct number: 1000 + its position in the struct.
WorkerCounters numbered() {
  WorkerCounters c;
  uint64_t next = 1000;
  for (uint64_t* v :
       {&c.sessions_opened, &c.handshakes_tls12, &c.handshakes_tls13, &c.handshakes_resumed})
    *v = next++;
  for (uint64_t& v : c.resets) v = next++;
  for (uint64_t* v : {&c.ciphertext_in, &c.ciphertext_out, &c.plaintext_in, &c.plaintext_out,
                      &c.input_deferred, &c.channels_broken})
    *v = next++;
  for (uint64_t& v : c.alerts_sent) v = next++;
  for (uint64_t& v : c.alerts_received) v = next++;
  c.certificates_refused_start = next++;
  c.certificates_refused_reload = next++;
  return c;
}

TEST(TlsWorkerCounters, EveryValueIsBoundOnceToItsOwnEntry) {
  const WorkerCounters c = numbered();
  std::set<uint64_t> seen;
  for (const WorkerCounterBinding& binding : kWorkerCounterBindings) {
    EXPECT_TRUE(seen.insert(binding.value(c)).second) << binding.name << " bound twice";
  }
  // Every value but resets[0] (no ResetReason 0): 4 + 10 + 6 + 14 + 14 + 2.
  EXPECT_EQ(seen.size(), 4 + (tls_channel::kResetReasons - 1) + 6 + 2 * kAlertTypes + 2);
  EXPECT_EQ(seen.count(c.resets[0]), 0u);
  // Spot checks by name: each alert entry reads its own type's value.
  for (size_t i = 0; i < kWorkerCounterBindings.size(); ++i) {
    const counters::Entry& entry = counters::kTlsWorkerCounters[i];
    const uint64_t value = kWorkerCounterBindings[i].value(c);
    for (size_t t = 0; t < kAlertTypes; ++t) {
      const std::string type(t < counters::kTlsAlertTypes.size() ? counters::kTlsAlertTypes[t].name
                                                                 : "other");
      if (entry.name == "alerts_sent_" + type) {
        EXPECT_EQ(value, c.alerts_sent[t]) << entry.name;
      }
      if (entry.name == "alerts_received_" + type) {
        EXPECT_EQ(value, c.alerts_received[t]) << entry.name;
      }
    }
    if (entry.name == "reset_not_tls") {
      EXPECT_EQ(value, c.reset(tls_channel::ResetReason::not_tls));
    }
    if (entry.name == "plaintext_out") {
      EXPECT_EQ(value, c.plaintext_out);
    }
  }
}

TEST(TlsWorkerCounters, AlertCodesMapToTheirTypeAndTheRestToOther) {
  EXPECT_EQ(alert_index(0), 0u);                // close_notify
  EXPECT_EQ(alert_index(46), 5u);               // certificate_unknown
  EXPECT_EQ(alert_index(70), 10u);              // protocol_version
  EXPECT_EQ(alert_index(112), 12u);             // unrecognized_name
  EXPECT_EQ(alert_index(86), kAlertTypes - 1);  // inappropriate_fallback: other
  EXPECT_EQ(alert_index(255), kAlertTypes - 1);
}

TEST(TlsWorkerCounters, WhatTheWorkerPublishesIsWhatAnotherMappingReads) {
  std::string error;
  auto control = tls_counters::BlockMemory::create(error);
  ASSERT_TRUE(control) << error;
  auto worker = tls_counters::BlockMemory::map(dup(control->fd()), error);
  ASSERT_TRUE(worker) << error;
  for (size_t i = 0; i < kWorkerCounterBindings.size(); ++i) EXPECT_EQ(control->load(i), 0u);
  const WorkerCounters c = numbered();
  publish(c, *worker);
  for (size_t i = 0; i < kWorkerCounterBindings.size(); ++i)
    EXPECT_EQ(control->load(i), kWorkerCounterBindings[i].value(c)) << i;
}

TEST(TlsWorkerCounters, AnFdThatIsNotACounterBlockIsRefused) {
  std::string error;
  auto channel_sized = tls_counters::BlockMemory::map(dup(STDIN_FILENO), error);
  EXPECT_FALSE(channel_sized);
  EXPECT_FALSE(error.empty());
}

}  // namespace
}  // namespace weir::tls
