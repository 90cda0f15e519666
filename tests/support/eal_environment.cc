#include "tests/support/eal_environment.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace weir::test {

rte_mempool* start_eal(const char* program, unsigned mbufs) {
  const std::string prefix = std::string(program) + "-" + std::to_string(getpid());
  std::vector<std::string> args = {program,         "-l",          "0",
                                   "--no-huge",     "-m",          "128",
                                   "--no-pci",      "--no-shconf", "--file-prefix",
                                   prefix,          "--log-level", "lib.eal:error",
                                   "--no-telemetry"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    std::fprintf(stderr, "%s: EAL init failed: %s\n", program, rte_strerror(rte_errno));
    return nullptr;
  }
  rte_mempool* pool =
      rte_pktmbuf_pool_create(program, mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  if (pool == nullptr) {
    std::fprintf(stderr, "%s: mbuf pool: %s\n", program, rte_strerror(rte_errno));
    rte_eal_cleanup();
  }
  return pool;
}

void stop_eal(rte_mempool* pool) {
  rte_mempool_free(pool);
  rte_eal_cleanup();
}

}  // namespace weir::test
