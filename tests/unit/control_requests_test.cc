// The control protocol's request handling against a fake dataplane: every malformed request gets
// an error naming the problem and never reaches the target.
#include "dataplane/main_lcore/control_requests.h"

#include <gtest/gtest.h>

#include <vector>

namespace weir::dataplane {
namespace {

using nlohmann::json;

class FakeTarget final : public ControlTarget {
 public:
  json hello() override { return {{"versions", {1}}}; }
  json counters() override { return {{"workers", json::array()}}; }
  json listeners() override { return json::array({json{{"name", "web"}}}); }
  json pools() override { return json::array({json{{"name", "app"}}}); }
  json events(size_t limit) override { return json::array({json{{"limit", limit}}}); }
  std::string set_backend(const std::string& pool, const std::string& backend,
                          const std::optional<std::string>& state,
                          const std::optional<uint32_t>& weight) override {
    calls.push_back({pool, backend, state.value_or("-"), weight ? std::to_string(*weight) : "-"});
    return backend == "missing" ? "no such backend" : "";
  }
  json apply_config(const std::string& path) override {
    calls.push_back({"apply", path});
    return path == "bad.yaml" ? json{{"ok", false}, {"error", "invalid"}, {"diagnostics", {"x"}}}
                              : json{{"ok", true}, {"changes", json::array()}};
  }
  std::string set_accepting(bool accepting) override {
    calls.push_back({"accepting", accepting ? "true" : "false"});
    return "";
  }
  json box() override { return {{"accepting", true}, {"applied", true}, {"sessions", 0}}; }
  std::string set_cluster_peers(const std::map<std::string, std::string>& states) override {
    peer_states = states;
    return states.count("nobody") ? "no peer named \"nobody\" in cluster.peers" : "";
  }
  std::map<std::string, std::string> peer_states;
  std::vector<std::vector<std::string>> calls;
};

json ask(ControlRequests& protocol, const std::string& line) {
  return json::parse(protocol.handle(line));
}

TEST(ControlRequests, AnswersEachOperationWithTheRequestsId) {
  FakeTarget target;
  ControlRequests protocol(target);
  EXPECT_EQ(ask(protocol, R"({"v":1,"id":9,"op":"hello"})"),
            (json{{"v", 1}, {"id", 9}, {"ok", true}, {"versions", {1}}}));
  EXPECT_EQ(ask(protocol, R"({"v":1,"id":"x","op":"listeners"})")["listeners"][0]["name"], "web");
  EXPECT_EQ(ask(protocol, R"({"v":1,"op":"pools"})")["pools"][0]["name"], "app");
  const json counters = ask(protocol, R"({"v":1,"op":"counters"})");
  EXPECT_TRUE(counters.contains("workers"));
  EXPECT_EQ(counters["control"]["requests"], 4) << "this request included";
  EXPECT_FALSE(counters["control"].contains("clients_refused")) << "no socket stats given";
  channel::LineServerStats socket_stats{3, 2, 1, 0};
  protocol.set_socket_stats(&socket_stats);
  const json with_socket = ask(protocol, R"({"v":1,"op":"counters"})");
  EXPECT_EQ(with_socket["control"]["clients_refused"], 3);
  EXPECT_EQ(with_socket["control"]["clients_idle_closed"], 2);
  EXPECT_EQ(with_socket["control"]["clients_overflow_closed"], 1);
  const json set =
      ask(protocol, R"({"v":1,"id":3,"op":"set_backend","pool":"app","backend":"b1","weight":7})");
  EXPECT_EQ(set["ok"], true);
  ASSERT_EQ(target.calls.size(), 1u);
  EXPECT_EQ(target.calls[0], (std::vector<std::string>{"app", "b1", "-", "7"}));
  EXPECT_EQ(protocol.errors(), 0u);
}

TEST(ControlRequests, BadRequestsGetErrorsAndNeverReachTheTarget) {
  FakeTarget target;
  ControlRequests protocol(target);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "not valid JSON"},
      {"[1]", "JSON object"},
      {R"({"op":"hello"})", "\"v\""},
      {R"({"v":"1","op":"hello"})", "\"v\""},
      {R"({"v":2,"op":"hello"})", "version 2"},
      {R"({"v":1})", "\"op\""},
      {R"({"v":1,"op":7})", "\"op\""},
      {R"({"v":1,"op":"reload_everything"})", "unknown operation"},
      {R"({"v":1,"op":"set_backend","backend":"b1","state":"up"})", "\"pool\""},
      {R"({"v":1,"op":"set_backend","pool":"app","state":"up"})", "\"backend\""},
      {R"({"v":1,"op":"set_backend","pool":"app","backend":"b1"})", "\"state\" or \"weight\""},
      {R"({"v":1,"op":"set_backend","pool":"app","backend":"b1","state":1})", "\"state\""},
      {R"({"v":1,"op":"set_backend","pool":"app","backend":"b1","weight":-1})", "\"weight\""},
      {R"({"v":1,"op":"set_backend","pool":"app","backend":"b1","weight":1e99})", "\"weight\""},
  };
  for (const auto& [line, expected] : cases) {
    const json reply = ask(protocol, line);
    EXPECT_EQ(reply["ok"], false) << line;
    EXPECT_NE(reply["error"].get<std::string>().find(expected), std::string::npos)
        << line << " -> " << reply["error"];
  }
  EXPECT_TRUE(target.calls.empty());
  EXPECT_EQ(protocol.errors(), cases.size());
  // The target's own refusal comes back as an error too.
  const json missing = ask(
      protocol, R"({"v":1,"op":"set_backend","pool":"app","backend":"missing","state":"down"})");
  EXPECT_EQ(missing["error"], "no such backend");
}

TEST(ControlRequests, ApplyConfigPassesTheTargetsVerdictOn) {
  FakeTarget target;
  ControlRequests protocol(target);
  EXPECT_NE(
      ask(protocol, R"({"v":1,"op":"apply_config"})")["error"].get<std::string>().find("\"path\""),
      std::string::npos);
  const json bad = ask(protocol, R"({"v":1,"id":5,"op":"apply_config","path":"bad.yaml"})");
  EXPECT_EQ(bad["ok"], false);
  EXPECT_EQ(bad["id"], 5);
  EXPECT_EQ(bad["diagnostics"], json::array({"x"}));
  const json good = ask(protocol, R"({"v":1,"op":"apply_config","path":"good.yaml"})");
  EXPECT_EQ(good["ok"], true);
  EXPECT_TRUE(good.contains("changes"));
  EXPECT_EQ(target.calls.size(), 2u);
}

TEST(ControlRequests, ClusterPeersPassesEachPeersStateOn) {
  FakeTarget target;
  ControlRequests protocol(target);
  for (const char* line :
       {R"({"v":1,"op":"cluster_peers"})", R"({"v":1,"op":"cluster_peers","peers":["a"]})",
        R"({"v":1,"op":"cluster_peers","peers":{"a":1}})"}) {
    const json reply = ask(protocol, line);
    EXPECT_EQ(reply["ok"], false) << line;
    EXPECT_NE(reply["error"].get<std::string>().find("peer"), std::string::npos) << line;
  }
  EXPECT_TRUE(target.peer_states.empty()) << "a malformed request never reaches the target";
  const json ok = ask(protocol, R"({"v":1,"id":4,"op":"cluster_peers","peers":)"
                                R"({"a":"live","b":"gone","c":"draining"}})");
  EXPECT_EQ(ok, (json{{"v", 1}, {"id", 4}, {"ok", true}}));
  EXPECT_EQ(target.peer_states,
            (std::map<std::string, std::string>{{"a", "live"}, {"b", "gone"}, {"c", "draining"}}));
  const json refused = ask(protocol, R"({"v":1,"op":"cluster_peers","peers":{"nobody":"live"}})");
  EXPECT_EQ(refused["error"], "no peer named \"nobody\" in cluster.peers");
}

}  // namespace
}  // namespace weir::dataplane
