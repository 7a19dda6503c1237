// Builders for Agent API requests shared by the agent's tests.
#pragma once

#include <string>

#include "jailover/v1/agent.pb.h"

namespace jailover::testing {

// An OperationContext with `id` and coordinator `term`.
inline v1::OperationContext Op(const std::string& id, uint64_t term = 0) {
  v1::OperationContext context;
  context.set_operation_id(id);
  context.set_coordinator_term(term);
  return context;
}

// The VIP of jail web01: 198.18.0.100/32, vhid 10 on `interface`.
inline v1::VipSpec TestVip(const std::string& interface = "em0") {
  v1::VipSpec vip;
  vip.set_name("web01-vip");
  vip.set_address("198.18.0.100/32");
  vip.set_interface(interface);
  vip.set_vhid(10);
  vip.set_password("s3cret");
  return vip;
}

}  // namespace jailover::testing
