// tests/test_main.cc — GoogleTest's main with a watchdog over every test (tests/watchdog.h).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "tests/watchdog.h"

namespace {

using msgport::testing::Watchdog;

// Arms a watchdog naming the test when it starts; disarms it when the test ends.
class PerTestWatchdog : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override {
    Watchdog::test_name() = std::string(info.test_suite_name()) + "." + info.name();
    const char* env = std::getenv("MSGPORT_TEST_WATCHDOG_SECONDS");  // tools/soak.sh: longer
    long limit = env != nullptr ? std::atol(env) : 0;
    dog_ = std::make_unique<Watchdog>("the test to finish (per-test limit)",
                                      std::chrono::seconds(limit > 0 ? limit : 240));
  }
  void OnTestEnd(const ::testing::TestInfo&) override { dog_.reset(); }

 private:
  std::unique_ptr<Watchdog> dog_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new PerTestWatchdog);
  return RUN_ALL_TESTS();
}
