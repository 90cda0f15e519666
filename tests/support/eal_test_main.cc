// gtest main for suites that need mbufs: initialises DPDK's EAL with no devices and no hugepages
// (the unit tests never open a port), then runs the tests. The mempool is reachable through
// weir::test::test_mbuf_pool().
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/support/eal_environment.h"

namespace weir::test {
namespace {
rte_mempool* g_pool = nullptr;  // set once in main before any test runs
}

rte_mempool* test_mbuf_pool() { return g_pool; }

}  // namespace weir::test

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const std::string prefix = "weir-unit-" + std::to_string(getpid());
  std::vector<std::string> args = {"weir-unit", "-l",           "0",           "--no-huge",
                                   "-m",        "128",          "--no-pci",    "--no-shconf",
                                   "--file-prefix", prefix,     "--log-level", "lib.eal:error",
                                   "--no-telemetry"};
  std::vector<char*> eal_argv;
  for (auto& a : args) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "EAL init failed: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  weir::test::g_pool = rte_pktmbuf_pool_create("weir_unit", 8191, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                               SOCKET_ID_ANY);
  if (weir::test::g_pool == nullptr) {
    std::fprintf(stderr, "mbuf pool: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  const int result = RUN_ALL_TESTS();
  rte_mempool_free(weir::test::g_pool);
  rte_eal_cleanup();
  return result;
}
