// weir-control's membership (control/membership.h): what each peer's state becomes from the
// heartbeats the dataplane heard, this box's drain and the operator's overrides; when the states
// are sent; and what a malformed `heard` object from the dataplane does (nothing).
#include "control/membership.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace weir::control {
namespace {

using Heard = std::map<std::string, Membership::Heard>;
using States = Membership::States;

// Box a of a, b, c; interval 300 ms, 3 missed: silent for more than 900 ms is gone.
Membership three_boxes() {
  return Membership({"a", "b", "c"}, 0, 300, 3);
}

struct Step {
  uint64_t now_ms;
  Heard heard;
  bool self_draining;
  std::map<std::string, std::string> overrides;  // applied before observing; empty: none
  States expected;
};

struct Case {
  std::string name;
  std::vector<Step> steps;
  uint64_t peers_lost;
};

TEST(Membership, StatesFollowHeartbeatsDrainAndOverrides) {
  const Membership::Heard fresh{100, false};
  const Membership::Heard draining{100, true};
  const Membership::Heard at_limit{900, false};
  const Membership::Heard silent{901, false};
  const std::vector<Case> cases = {
      {"every peer heard: all live",
       {{1000,
         {{"b", fresh}, {"c", fresh}},
         false,
         {},
         {{"a", "live"}, {"b", "live"}, {"c", "live"}}}},
       0},
      {"a peer silent for three intervals is still live; one millisecond more, gone",
       {{1000,
         {{"b", fresh}, {"c", fresh}},
         false,
         {},
         {{"a", "live"}, {"b", "live"}, {"c", "live"}}},
        {2000,
         {{"b", fresh}, {"c", at_limit}},
         false,
         {},
         {{"a", "live"}, {"b", "live"}, {"c", "live"}}},
        {2001,
         {{"b", fresh}, {"c", silent}},
         false,
         {},
         {{"a", "live"}, {"b", "live"}, {"c", "gone"}}}},
       1},
      {"a peer that heartbeats again is live again",
       {{1000,
         {{"b", fresh}, {"c", silent}},
         false,
         {},
         {{"a", "live"}, {"b", "live"}, {"c", "live"}}},
        {2000,
         {{"b", fresh}, {"c", silent}},
         false,
         {},
         {{"a", "live"}, {"b", "live"}, {"c", "gone"}}},
        {3000,
         {{"b", fresh}, {"c", fresh}},
         false,
         {},
         {{"a", "live"}, {"b", "live"}, {"c", "live"}}}},
       0},
      {"never heard: live until the heartbeats settle, then gone (not counted as lost)",
       {{1000, {{"b", fresh}}, false, {}, {{"a", "live"}, {"b", "live"}, {"c", "live"}}},
        {1899, {{"b", fresh}}, false, {}, {{"a", "live"}, {"b", "live"}, {"c", "live"}}},
        {1900, {{"b", fresh}}, false, {}, {{"a", "live"}, {"b", "live"}, {"c", "gone"}}}},
       0},
      {"a draining peer that heartbeats stays draining, then gone when silent",
       {{1000,
         {{"b", draining}, {"c", fresh}},
         false,
         {},
         {{"a", "live"}, {"b", "draining"}, {"c", "live"}}},
        {5000,
         {{"b", draining}, {"c", fresh}},
         false,
         {},
         {{"a", "live"}, {"b", "draining"}, {"c", "live"}}},
        {6000,
         {{"b", silent}, {"c", fresh}},
         false,
         {},
         {{"a", "live"}, {"b", "gone"}, {"c", "live"}}}},
       1},
      {"this box drained: draining, whatever it hears",
       {{1000,
         {{"b", fresh}, {"c", fresh}},
         true,
         {},
         {{"a", "draining"}, {"b", "live"}, {"c", "live"}}},
        {2000,
         {{"b", fresh}, {"c", fresh}},
         false,
         {},
         {{"a", "live"}, {"b", "live"}, {"c", "live"}}}},
       0},
      {"the operator's word beats the heartbeats until set back to auto",
       {{1000,
         {{"b", fresh}, {"c", fresh}},
         false,
         {{"b", "gone"}},
         {{"a", "live"}, {"b", "gone"}, {"c", "live"}}},
        {2000,
         {{"b", fresh}, {"c", silent}},
         false,
         {{"c", "live"}},
         {{"a", "live"}, {"b", "gone"}, {"c", "live"}}},
        {3000,
         {{"b", fresh}, {"c", silent}},
         false,
         {{"b", "auto"}, {"c", "auto"}},
         {{"a", "live"}, {"b", "live"}, {"c", "gone"}}}},
       1},
      {"the operator may set this box too",
       {{1000,
         {{"b", fresh}, {"c", fresh}},
         false,
         {{"a", "draining"}},
         {{"a", "draining"}, {"b", "live"}, {"c", "live"}}}},
       0},
  };
  for (const Case& c : cases) {
    Membership m = three_boxes();
    for (size_t i = 0; i < c.steps.size(); ++i) {
      const Step& s = c.steps[i];
      if (!s.overrides.empty()) {
        EXPECT_EQ(m.set_overrides(s.overrides), "") << c.name;
      }
      m.observe(s.heard, s.self_draining, s.now_ms);
      EXPECT_EQ(m.states(), s.expected) << c.name << ", step " << i;
    }
    EXPECT_EQ(m.peers_lost(), c.peers_lost) << c.name;
  }
}

TEST(Membership, SendsOnlyChangesAndNothingBeforeTheHeartbeatsSettle) {
  Membership m = three_boxes();
  EXPECT_FALSE(m.to_send(false)) << "nothing observed yet";
  m.observe({{"b", {100, false}}}, false, 1000);
  EXPECT_FALSE(m.to_send(false)) << "c may not have had time to be heard";
  m.observe({{"b", {100, false}}}, false, 1900);
  const auto first = m.to_send(false);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, (States{{"a", "live"}, {"b", "live"}, {"c", "gone"}}));
  m.sent(*first);
  m.observe({{"b", {200, false}}}, false, 2200);
  EXPECT_FALSE(m.to_send(false)) << "the same states again";
  EXPECT_TRUE(m.to_send(true)) << "a dataplane that restarted is sent them again";
  m.observe({{"b", {100, false}}, {"c", {100, false}}}, false, 2500);
  const auto second = m.to_send(false);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->at("c"), "live");
}

TEST(Membership, AnOverrideIsSentAtOnceAndARestartWaitsAgain) {
  Membership m = three_boxes();
  ASSERT_EQ(m.set_overrides({{"c", "gone"}}), "");
  m.observe({}, false, 1000);
  const auto sent = m.to_send(false);
  ASSERT_TRUE(sent) << "the operator's word does not wait for the heartbeats";
  EXPECT_EQ(*sent, (States{{"a", "live"}, {"b", "live"}, {"c", "gone"}}));
  ASSERT_EQ(m.set_overrides({{"c", "auto"}}), "");
  m.observe({}, false, 3000);
  EXPECT_EQ(m.states().at("b"), "gone");
  m.restart(3000);  // the dataplane restarted: its table of heartbeats is empty
  m.observe({}, false, 3100);
  EXPECT_EQ(m.states().at("b"), "live");
  EXPECT_FALSE(m.to_send(false));
}

TEST(Membership, WrongOverridesChangeNothing) {
  Membership m = three_boxes();
  EXPECT_EQ(m.set_overrides({{"b", "gone"}, {"d", "live"}}),
            "no peer named \"d\" in cluster.peers");
  EXPECT_EQ(m.set_overrides({{"b", "gone"}, {"c", "dead"}}),
            "the state of peer \"c\" must be live, draining, gone or auto");
  EXPECT_TRUE(m.overrides().empty());
}

TEST(Membership, AMalformedHeardObjectCountsAsNothingHeard) {
  const nlohmann::json good = {{"b", {{"ms_ago", 12}, {"state", "draining"}, {"sequence", 4}}}};
  const auto heard = heard_from_box(good);
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_EQ(heard.at("b").ms_ago, 12u);
  EXPECT_TRUE(heard.at("b").draining);
  for (const nlohmann::json& bad : std::vector<nlohmann::json>{
           nullptr,
           7,
           "b",
           nlohmann::json::array({1, 2}),
           {{"b", 3}},
           {{"b", {{"ms_ago", -1}, {"state", "live"}}}},
           {{"b", {{"ms_ago", "12"}, {"state", "live"}}}},
           {{"b", {{"ms_ago", 12}, {"state", "gone"}}}},
           {{"b", {{"ms_ago", 12}}}},
           {{"b", {{"state", "live"}}}},
       }) {
    EXPECT_TRUE(heard_from_box(bad).empty()) << bad.dump();
  }
}

}  // namespace
}  // namespace weir::control
