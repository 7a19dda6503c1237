// jailoverctl: the operator's command line. All logic is in ctl.cc.
#include <iostream>

#include "coordinator/cli/ctl.h"

int main(int argc, char** argv) { return jailover::cli::RunCtl(argc, argv, std::cout, std::cerr); }
