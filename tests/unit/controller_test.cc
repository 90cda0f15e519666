// weir-control's decisions (control/controller.h): what the dataplane is told, and when.
#include "control/controller.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace weir::control {
namespace {

std::shared_ptr<const config::Config> config_with_weight(uint32_t weight) {
  const std::string text =
      "dataplane:\n"
      "  eal: [\"--no-pci\", \"--vdev=net_tap0,iface=x\"]\n"
      "  ports:\n"
      "    - { name: p0, device: net_tap0, address: 10.0.0.2/24 }\n"
      "listeners:\n"
      "  - { name: web, address: 10.0.0.100, port: 80, protocol: tcp, pool: app }\n"
      "pools:\n"
      "  - name: app\n"
      "    backends:\n"
      "      - { name: b1, address: 10.0.1.1, port: 80, weight: " +
      std::to_string(weight) +
      " }\n"
      "      - { name: b2, address: 10.0.1.2, port: 80 }\n";
  const config::LoadResult result = config::load_string(text, "t.yaml");
  EXPECT_TRUE(result.ok());
  return result.config;
}

std::vector<std::string> sent(Controller& controller, bool everything = false) {
  std::vector<std::string> out;
  for (const BackendChange& c : controller.pending(everything)) {
    out.push_back(c.pool + "/" + c.backend + " " + c.state + " " + std::to_string(c.weight));
  }
  return out;
}

TEST(Controller, AWeightSetByWeirctlSurvivesAReloadThatChangesTheFilesWeight) {
  Controller controller(config_with_weight(1));
  EXPECT_EQ(sent(controller, true), (std::vector<std::string>{"app/b1 up 1", "app/b2 up 1"}));
  ASSERT_EQ(controller.set("app", "b1", std::nullopt, 7), "");
  EXPECT_EQ(sent(controller), std::vector<std::string>{"app/b1 up 7"});

  // The dataplane applies the file (b1 at 3); weir-control must put the operator's 7 back.
  std::vector<std::string> changes;
  ASSERT_EQ(controller.reload(config_with_weight(3), changes), "");
  EXPECT_EQ(changes,
            std::vector<std::string>{"weight of app/b1 stays 7 (set by weirctl; the file says 3)"});
  EXPECT_EQ(sent(controller), std::vector<std::string>{"app/b1 up 7"});
  EXPECT_EQ(sent(controller), std::vector<std::string>{}) << "sent once";
}

TEST(Controller, AReloadedWeightIsWhatTheDataplaneAlreadyHas) {
  Controller controller(config_with_weight(1));
  sent(controller, true);
  std::vector<std::string> changes;
  ASSERT_EQ(controller.reload(config_with_weight(3), changes), "");
  EXPECT_EQ(changes, std::vector<std::string>{"weight of app/b1: 1 -> 3"});
  EXPECT_EQ(sent(controller), std::vector<std::string>{}) << "apply_config set it already";
  // Clearing nothing and setting the same weight again changes nothing either.
  ASSERT_EQ(controller.set("app", "b1", std::nullopt, 3), "");
  EXPECT_EQ(sent(controller), std::vector<std::string>{});
}

TEST(Controller, AManualStateOutlivesHealthAndAReload) {
  Controller controller(config_with_weight(1));
  sent(controller, true);
  ASSERT_EQ(controller.set("app", "b2", std::string("draining"), std::nullopt), "");
  EXPECT_EQ(sent(controller), std::vector<std::string>{"app/b2 draining 1"});
  controller.health("app", "b2", true);
  EXPECT_EQ(sent(controller), std::vector<std::string>{});
  std::vector<std::string> changes;
  ASSERT_EQ(controller.reload(config_with_weight(1), changes), "");
  EXPECT_EQ(sent(controller), std::vector<std::string>{});
  ASSERT_EQ(controller.set("app", "b2", std::string("auto"), std::nullopt), "");
  EXPECT_EQ(sent(controller), std::vector<std::string>{"app/b2 up 1"});
}

}  // namespace
}  // namespace weir::control
