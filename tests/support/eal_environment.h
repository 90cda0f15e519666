// DPDK's EAL for code that needs mbufs but no port (unit tests, benchmarks): one lcore, no
// hugepages, no PCI, a file prefix unique to the process, and one mbuf pool.
#pragma once

#include <rte_mempool.h>

namespace weir::test {

// Initialises the EAL and creates the pool; prints the reason and returns null on failure.
rte_mempool* start_eal(const char* program, unsigned mbufs);
// Frees the pool and cleans the EAL up.
void stop_eal(rte_mempool* pool);

// The mbuf pool created by eal_test_main.cc for suites that link it.
rte_mempool* test_mbuf_pool();

}  // namespace weir::test
