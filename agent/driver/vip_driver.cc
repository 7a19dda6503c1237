#include "agent/driver/vip_driver.h"

namespace jailover::agent {

const char* CarpRoleName(CarpRole role) {
  switch (role) {
    case CarpRole::kInit:
      return "INIT";
    case CarpRole::kBackup:
      return "BACKUP";
    case CarpRole::kMaster:
      return "MASTER";
  }
  return "INIT";
}

}  // namespace jailover::agent
