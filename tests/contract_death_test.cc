// Misuse that C++ cannot reject at compile time fails loudly, naming the broken rule. These
// checks exist in debug builds (NDEBUG undefined); in release builds the tests are skipped.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>

#include "tests/test_support.h"

namespace msgport {
namespace {

using testing::HoldingPort;
using testing::ValueMsg;

#ifdef NDEBUG
#define SKIP_IN_RELEASE() GTEST_SKIP() << "contract checks are compiled out with NDEBUG"
#else
#define SKIP_IN_RELEASE() static_cast<void>(0)
#endif

TEST(ContractDeathTest, ReplyingTwice) {
  SKIP_IN_RELEASE();
  EXPECT_DEATH(
      {
        HoldingPort port;
        ValueMsg m;
        send_msg(port, m);
        Message* held = port.take();
        reply_msg(*held, 1);
        reply_msg(*held, 2);
      },
      "broken rule: reply_msg: a message is replied exactly once");
}

TEST(ContractDeathTest, SendingAMessageStillInFlight) {
  SKIP_IN_RELEASE();
  EXPECT_DEATH(
      {
        HoldingPort port;
        ValueMsg m;
        send_msg(port, m);
        send_msg(port, m);
      },
      "broken rule: a message still in flight cannot be sent again");
}

TEST(ContractDeathTest, WaitingOnAMessageNobodySent) {
  SKIP_IN_RELEASE();
  EXPECT_DEATH(
      {
        ValueMsg m;
        wait_msg_blocking(m);
      },
      "broken rule: wait_msg: waiting on a message nobody sent");
}

TEST(ContractDeathTest, ReplyingAMessageNobodySent) {
  SKIP_IN_RELEASE();
  EXPECT_DEATH(
      {
        ValueMsg m;
        reply_msg(m, 0);
      },
      "broken rule: reply_msg");
}

TEST(ContractDeathTest, ResendingAReplyNotYetCollected) {
  SKIP_IN_RELEASE();
  EXPECT_DEATH(
      {
        ReplyPort replies;
        HoldingPort port;
        ValueMsg m;
        m.set_reply_port(&replies);
        send_msg(port, m);
        reply_msg(*port.take(), 0);
        send_msg(port, m);  // its reply still sits in `replies`
      },
      "broken rule: a message queued on a reply port must be collected");
}

TEST(ContractDeathTest, DroppingAMessageNotMarkedDropable) {
  SKIP_IN_RELEASE();
  EXPECT_DEATH(
      {
        QueuePort port;
        ValueMsg m;
        send_msg(port, m);
        drop_msg(m);
      },
      "broken rule: drop_msg: only a message sent with kMsgDropable");
}

}  // namespace
}  // namespace msgport
