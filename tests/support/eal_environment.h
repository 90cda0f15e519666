#pragma once

#include <rte_mempool.h>

namespace weir::test {

// The mbuf pool created by eal_test_main.cc for suites that link it.
rte_mempool* test_mbuf_pool();

}  // namespace weir::test
