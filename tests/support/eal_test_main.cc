// gtest main for suites that need mbufs: initialises DPDK's EAL with no devices and no hugepages
// (the unit tests never open a port), then runs the tests. The mempool is reachable through
// weir::test::test_mbuf_pool().
#include <gtest/gtest.h>

#include "tests/support/eal_environment.h"

namespace weir::test {
namespace {
rte_mempool* g_pool = nullptr;  // set once in main before any test runs
}

rte_mempool* test_mbuf_pool() {
  return g_pool;
}

}  // namespace weir::test

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  weir::test::g_pool = weir::test::start_eal("weir-unit", 8191);
  if (weir::test::g_pool == nullptr) return 1;
  const int result = RUN_ALL_TESTS();
  weir::test::stop_eal(weir::test::g_pool);
  return result;
}
