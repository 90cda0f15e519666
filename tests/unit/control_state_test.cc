// weir-control's state beyond health checks: passive health's runs and hold-down
// (control/passive_health.h), the overrides and hold-downs kept in the state file
// (control/state_file.h, Controller::overrides and restore), the box's drain, and the configured
// certificates' expiry (control/certificate_expiry.h) as exported to Prometheus.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "control/certificate_expiry.h"
#include "control/controller.h"
#include "control/metrics.h"
#include "control/passive_health.h"
#include "control/state_file.h"
#include "tests/support/test_pki.h"

namespace weir::control {
namespace {

using nlohmann::json;

std::shared_ptr<const config::Config> config(const std::string& passive) {
  const std::string text =
      "dataplane:\n"
      "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
      "  ports:\n"
      "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n"
      "listeners:\n"
      "  - { name: web, address: 10.0.0.100, port: 80, protocol: tcp, pool: app }\n"
      "pools:\n"
      "  - name: app\n" +
      passive +
      "    backends:\n"
      "      - { name: b1, address: 10.0.1.1, port: 80 }\n"
      "      - { name: b2, address: 10.0.1.2, port: 80 }\n";
  const config::LoadResult result = config::load_string(text, "t.yaml");
  EXPECT_TRUE(result.ok()) << (result.errors.empty() ? "" : result.errors[0].to_string());
  return result.config;
}

// A pools reply with b1's counters as given and b2 idle.
json pools(uint64_t connections, uint64_t connect_failures, uint64_t resets) {
  return json::array(
      {{{"name", "app"},
        {"backends",
         json::array(
             {{{"name", "b1"},
               {"connections", connections},
               {"connect_failures", connect_failures},
               {"resets", resets}},
              {{"name", "b2"}, {"connections", 0}, {"connect_failures", 0}, {"resets", 0}}})}}});
}

constexpr uint64_t kSecond = 1'000'000;

TEST(PassiveHealth, ARunOfErrorsReachingTheLimitMarksDownAndTheHoldDownBringsItBack) {
  const auto c = config("    passive_health: { error_limit: 5, hold_down_ms: 3000 }\n");
  PassiveHealth passive;
  // The first look is a baseline: errors from before are not judged.
  EXPECT_TRUE(passive.observe(*c, pools(10, 100, 0), 0).empty());
  EXPECT_TRUE(passive.observe(*c, pools(10, 102, 1), 1 * kSecond).empty()) << "3 of 5";
  const auto down = passive.observe(*c, pools(10, 103, 2), 2 * kSecond);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].backend, "b1");
  EXPECT_TRUE(down[0].down);
  EXPECT_NE(down[0].reason.find("5 data-path errors"), std::string::npos) << down[0].reason;
  EXPECT_TRUE(passive.observe(*c, pools(10, 110, 2), 4 * kSecond).empty()) << "held down";
  const auto up = passive.observe(*c, pools(10, 110, 2), 5 * kSecond);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_FALSE(up[0].down);
  const json described = passive.describe();
  EXPECT_EQ(described[0]["mark_downs"], 1);
  EXPECT_EQ(described[0]["down"], false);
  EXPECT_EQ(described[0]["errors_in_row"], 0) << "a new run starts after the hold-down";
}

TEST(PassiveHealth, ASuccessStartsTheRunAgainAndAnIdleOrRestartedDataplaneMarksNothing) {
  const auto c = config("    passive_health: { error_limit: 4 }\n");
  PassiveHealth passive;
  passive.observe(*c, pools(0, 0, 0), 0);
  EXPECT_TRUE(passive.observe(*c, pools(0, 3, 0), 1 * kSecond).empty());
  // A success in the next look: the run restarts from that look's errors (2), not 3 + 2.
  EXPECT_TRUE(passive.observe(*c, pools(1, 5, 0), 2 * kSecond).empty());
  EXPECT_EQ(passive.describe()[0]["errors_in_row"], 2);
  // A restarted dataplane (counters back to small numbers) is a new baseline, not errors.
  EXPECT_TRUE(passive.observe(*c, pools(0, 1, 0), 3 * kSecond).empty());
  EXPECT_EQ(passive.describe()[0]["errors_in_row"], 0);
  EXPECT_EQ(passive.observe(*c, pools(0, 5, 0), 4 * kSecond).size(), 1u) << "4 new errors";
}

TEST(PassiveHealth, OffWithoutTheKeyAndAMarkDownIsLiftedWhenTheSettingGoes) {
  const auto off = config("");
  EXPECT_FALSE(off->pools[0].passive_health.has_value());
  const auto on = config("    passive_health: {}\n");
  ASSERT_TRUE(on->pools[0].passive_health.has_value());
  EXPECT_EQ(on->pools[0].passive_health->error_limit, 10u) << "HAProxy's error-limit default";
  PassiveHealth passive;
  EXPECT_TRUE(passive.observe(*off, pools(0, 0, 0), 0).empty());
  EXPECT_TRUE(passive.observe(*off, pools(0, 50, 0), kSecond).empty()) << "off: not judged";
  passive.observe(*on, pools(0, 50, 0), 2 * kSecond);
  ASSERT_EQ(passive.observe(*on, pools(0, 60, 0), 3 * kSecond).size(), 1u);
  const auto lifted = passive.observe(*off, pools(0, 60, 0), 4 * kSecond);
  ASSERT_EQ(lifted.size(), 1u) << "a reload turned it off: nothing stays down for it";
  EXPECT_FALSE(lifted[0].down);
}

// A hold-down survives weir-control's restart through the state file: saved on the wall clock,
// restored with what is left of it (never more than hold_down_ms), ended if it passed meanwhile,
// and entries the configuration cannot take are skipped, not trusted.
TEST(PassiveHealth, AHoldDownIsSavedOnTheWallClockAndRestoredWithWhatIsLeftOfIt) {
  const auto c = config("    passive_health: { error_limit: 2, hold_down_ms: 60000 }\n");
  PassiveHealth before;
  before.observe(*c, pools(0, 0, 0), 0);
  ASSERT_EQ(before.observe(*c, pools(0, 2, 0), 1 * kSecond).size(), 1u);
  constexpr uint64_t kUnixMs = 1'796'208'319'000;
  // 10 s into the 60 s hold-down: 50 s left.
  const json saved = before.held_down(11 * kSecond, kUnixMs);
  EXPECT_EQ(saved,
            json::array(
                {{{"pool", "app"}, {"backend", "b1"}, {"down_until_unix_ms", kUnixMs + 50'000}}}));

  // Restarted 20 s later (another monotonic clock): down for the 30 s left.
  PassiveHealth after;
  std::vector<std::string> skipped;
  const auto restored = after.restore(*c, saved, 500 * kSecond, kUnixMs + 20'000, skipped);
  EXPECT_TRUE(skipped.empty());
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_TRUE(restored[0].down);
  EXPECT_EQ(restored[0].backend, "b1");
  EXPECT_EQ(after.held_down(500 * kSecond, kUnixMs + 20'000), saved);
  // The first look is a baseline (errors from before are not judged again); it stays down...
  EXPECT_TRUE(after.observe(*c, pools(0, 7, 0), 501 * kSecond).empty());
  EXPECT_TRUE(after.observe(*c, pools(0, 7, 0), 529 * kSecond).empty());
  EXPECT_EQ(after.describe()[0]["down"], true);
  // ... until the 30 s are over.
  const auto up = after.observe(*c, pools(0, 7, 0), 530 * kSecond);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_FALSE(up[0].down);
  EXPECT_TRUE(after.held_down(530 * kSecond, kUnixMs + 50'000).empty());

  // Restarted after the hold-down ended: up, and said so.
  PassiveHealth late;
  const auto ended = late.restore(*c, saved, 0, kUnixMs + 50'000, skipped);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_FALSE(ended[0].down);
  EXPECT_TRUE(late.held_down(0, kUnixMs + 50'000).empty());
}

TEST(PassiveHealth, ARestoredHoldDownIsBoundedAndBadEntriesAreSkipped) {
  const auto c = config("    passive_health: { hold_down_ms: 5000 }\n");
  constexpr uint64_t kUnixMs = 1'796'208'319'000;
  const json file = json::array({
      {{"pool", "app"}, {"backend", "b2"}, {"down_until_unix_ms", kUnixMs + 86'400'000}},
      {{"pool", "app"}, {"backend", "gone"}, {"down_until_unix_ms", kUnixMs + 1000}},
      {{"pool", "other"}, {"backend", "b1"}, {"down_until_unix_ms", kUnixMs + 1000}},
      {{"pool", "app"}, {"backend", "b1"}, {"down_until_unix_ms", -5}},
      "b1",
  });
  PassiveHealth passive;
  std::vector<std::string> skipped;
  const auto restored = passive.restore(*c, file, 0, kUnixMs, skipped);
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0].backend, "b2");
  ASSERT_EQ(skipped.size(), 4u);
  EXPECT_NE(skipped[0].find("passive_down[1] (app/gone): not configured"), std::string::npos)
      << skipped[0];
  // A day ahead (a clock set back, an edited file) is cut to the pool's hold_down_ms.
  EXPECT_EQ(passive.held_down(0, kUnixMs)[0]["down_until_unix_ms"], kUnixMs + 5000);
  // A pool without passive_health takes no hold-down.
  const auto off = config("");
  std::vector<std::string> off_skipped;
  EXPECT_TRUE(PassiveHealth().restore(*off, file, 0, kUnixMs, off_skipped).empty());
  EXPECT_NE(off_skipped[0].find("its pool has no passive_health"), std::string::npos);
  std::vector<std::string> not_list;
  EXPECT_TRUE(PassiveHealth().restore(*c, json::object(), 0, kUnixMs, not_list).empty());
  EXPECT_EQ(not_list.size(), 1u);
}

TEST(Controller, PassiveDownTakesABackendOutUnlessTheOperatorOverrides) {
  Controller controller(config(""));
  controller.pending(true);
  controller.passive("app", "b1", true);
  auto changes = controller.pending(false);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].state, "down");
  ASSERT_EQ(controller.set("app", "b1", std::string("up"), std::nullopt), "");
  changes = controller.pending(false);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].state, "up") << "a manual state wins, as over the active checks";
  EXPECT_EQ(controller.describe()[0]["passive"], "down");
}

TEST(Controller, OverridesAndTheBoxDrainRoundTripAndBadEntriesAreSkipped) {
  Controller before(config(""));
  ASSERT_EQ(before.set("app", "b2", std::string("draining"), 7u), "");
  before.drain_box(true);
  json state = before.overrides();
  EXPECT_EQ(state, json::parse(R"({"box_drained": true, "backends": [
      {"pool": "app", "backend": "b2", "state": "draining", "weight": 7}]})"));
  state["backends"].push_back({{"pool", "app"}, {"backend", "gone"}, {"state", "down"}});
  state["backends"].push_back({{"pool", "app"}, {"backend", "b1"}, {"state", "sideways"}});
  state["backends"].push_back(42);
  Controller after(config(""));
  std::vector<std::string> skipped;
  ASSERT_EQ(after.restore(state, skipped), "");
  ASSERT_EQ(skipped.size(), 3u);
  EXPECT_NE(skipped[0].find("gone"), std::string::npos) << skipped[0];
  EXPECT_NE(skipped[1].find("sideways"), std::string::npos) << skipped[1];
  EXPECT_NE(skipped[2].find("backends[3]"), std::string::npos) << skipped[2];
  EXPECT_TRUE(after.box_drained());
  EXPECT_EQ(after.pending_box(false), std::optional<bool>(true));
  EXPECT_EQ(after.pending_box(false), std::nullopt) << "sent once";
  EXPECT_EQ(after.overrides(), before.overrides());
  EXPECT_NE(after.restore(json::array(), skipped), "");
  EXPECT_NE(after.restore({{"box_drained", "yes"}}, skipped), "");
}

class StateFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/weir-state-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/control-state.json";
  }
  void TearDown() override {
    for (const char* suffix : {"", ".tmp", ".corrupt"}) std::remove((path_ + suffix).c_str());
    rmdir(dir_.c_str());
  }
  void write(const std::string& text) { std::ofstream(path_) << text; }
  bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }
  std::string dir_, path_;
};

TEST_F(StateFile, SavedThenLoadedWithNoTemporaryLeft) {
  EXPECT_FALSE(load_state(path_).state.has_value()) << "no file: a first start";
  EXPECT_EQ(load_state(path_).error, "");
  ASSERT_EQ(save_state(path_, {{"box_drained", false}, {"backends", json::array()}}), "");
  EXPECT_FALSE(exists(path_ + ".tmp"));
  const LoadedState loaded = load_state(path_);
  ASSERT_TRUE(loaded.state.has_value()) << loaded.error;
  EXPECT_EQ((*loaded.state)["version"], kStateFileVersion);
  EXPECT_EQ(save_state(dir_ + "/missing/dir/state.json", json::object()).find("cannot create"), 0u);
}

TEST_F(StateFile, ACorruptFileIsReportedAndKeptAside) {
  for (const std::string& text :
       {std::string("{\"version\": 1, \"backends\": ["), std::string("[1, 2]"),
        std::string("{\"version\": 9}"), std::string("\xff\xfe")}) {
    write(text);
    const LoadedState loaded = load_state(path_);
    EXPECT_FALSE(loaded.state.has_value()) << text;
    EXPECT_NE(loaded.error, "") << text;
    EXPECT_EQ(loaded.kept_as, path_ + ".corrupt");
    EXPECT_FALSE(exists(path_)) << "moved aside, so the next save cannot overwrite it";
    std::ifstream kept(path_ + ".corrupt");
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(kept), {}), text);
  }
}

// The expiry of a chain is its soonest notAfter (here the intermediate's, before the leaf's), read
// without the key (the key files named here do not exist); a file that cannot be read is 0 with
// the reason, so that the alert fires rather than the series going silent.
TEST(CertificateExpiry, TheSoonestNotAfterOfEachChainPerListenerAndUnreadableIsZero) {
  test::TempDir dir;
  const time_t before = std::time(nullptr);
  const test::Issued root = test::issue({"Root", {}, true, -3600, 90 * 86'400}, nullptr);
  const test::Issued inter = test::issue({"Inter", {}, true, -3600, 5 * 86'400}, &root);
  const test::Issued leaf =
      test::issue({"site", {"site.example"}, false, -3600, 10 * 86'400}, &inter);
  const time_t after = std::time(nullptr);
  test::write_pem(dir.path() / "chain.pem", {leaf.cert.get(), inter.cert.get()});
  test::write_pem(dir.path() / "leaf.pem", {leaf.cert.get()});
  const std::string text =
      "dataplane:\n"
      "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
      "  ports:\n"
      "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n"
      "pools:\n"
      "  - { name: kv, backends: [{ name: b1, address: 10.0.0.11, port: 80 }] }\n"
      "tls: { workers: 1 }\n"
      "listeners:\n"
      "  - { name: plain, address: 10.0.0.100, port: 80, protocol: tcp, pool: kv }\n"
      "  - { name: secure, address: 10.0.0.100, port: 443, protocol: tls, pool: kv,\n"
      "      tls: { certificates: [\n"
      "        { cert: " +
      dir.file("chain.pem") + ", key: " + dir.file("no.key") +
      " },\n"
      "        { cert: " +
      dir.file("leaf.pem") + ", key: " + dir.file("no.key") +
      " },\n"
      "        { cert: " +
      dir.file("missing.pem") + ", key: " + dir.file("no.key") + " } ] } }\n";
  const config::LoadResult loaded = config::load_string(text, "t.yaml");
  ASSERT_TRUE(loaded.ok()) << loaded.errors[0].to_string();
  const json expiries = certificate_expiries(*loaded.config);
  ASSERT_EQ(expiries.size(), 3u) << expiries.dump();
  const auto within = [](const json& e, time_t low, time_t high) {
    const int64_t t = e["not_after_unix"].get<int64_t>();
    return t >= low && t <= high;
  };
  EXPECT_EQ(expiries[0]["listener"], "secure");
  EXPECT_EQ(expiries[0]["certificate"], dir.file("chain.pem"));
  EXPECT_TRUE(within(expiries[0], before + 5 * 86'400, after + 5 * 86'400)) << expiries[0];
  EXPECT_TRUE(within(expiries[1], before + 10 * 86'400, after + 10 * 86'400)) << expiries[1];
  EXPECT_FALSE(expiries[0].contains("error"));
  EXPECT_EQ(expiries[2]["not_after_unix"], 0);
  EXPECT_NE(expiries[2]["error"].get<std::string>().find("missing.pem"), std::string::npos);

  // Exported as one gauge series per listener and certificate.
  const auto families = MetricsCollector::build(nullptr, nullptr, {{"certificates", expiries}});
  const auto family =
      std::find_if(families.begin(), families.end(), [](const prometheus::MetricFamily& f) {
        return f.name == "weir_tls_certificate_expiry_timestamp_seconds";
      });
  ASSERT_NE(family, families.end());
  ASSERT_EQ(family->metric.size(), 3u);
  const prometheus::ClientMetric& first = family->metric[0];
  ASSERT_EQ(first.label.size(), 2u);
  EXPECT_EQ(first.label[0].name, "listener");
  EXPECT_EQ(first.label[0].value, "secure");
  EXPECT_EQ(first.label[1].name, "certificate");
  EXPECT_EQ(first.label[1].value, dir.file("chain.pem"));
  EXPECT_EQ(first.gauge.value, expiries[0]["not_after_unix"].get<double>());
  EXPECT_EQ(family->metric[2].gauge.value, 0.0);
}

}  // namespace
}  // namespace weir::control
