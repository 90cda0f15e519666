#include <gtest/gtest.h>
TEST(Placeholder, config) { GTEST_SKIP(); }
