// How much a CommandRunner call costs. Every driver step of a failover
// (import, fsck, mount, jail start, advskew) runs external programs, so the
// runner's own overhead is part of the failover time budget.
//
//   build/bench/command_runner_bench
//
// BM_RawSpawnTrue is the floor: posix_spawn + waitpid of /bin/true with no
// pipes. BM_RunnerTrue is the same program through SubprocessCommandRunner
// (PATH lookup, pipes, poll loop, process group, clean environment); the
// difference is the runner's overhead per command. BM_RunnerOutput adds
// reading 64 KiB of output.
#include <spawn.h>
#include <sys/wait.h>

#include <benchmark/benchmark.h>

#include "common/exec/command_runner.h"

extern char** environ;

namespace {

void BM_RawSpawnTrue(benchmark::State& state) {
  char arg0[] = "/bin/true";
  char* argv[] = {arg0, nullptr};
  for (auto _ : state) {
    pid_t pid = 0;
    if (posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) != 0) {
      state.SkipWithError("posix_spawn failed");
      return;
    }
    int status = 0;
    waitpid(pid, &status, 0);
  }
}
BENCHMARK(BM_RawSpawnTrue)->Unit(benchmark::kMicrosecond);

void BM_RunnerTrue(benchmark::State& state) {
  jailover::common::SubprocessCommandRunner runner;
  for (auto _ : state) {
    auto result = runner.Run({"true"}, absl::Seconds(10));
    if (!result.ok() || result->exit_code != 0) {
      state.SkipWithError("true failed");
      return;
    }
  }
}
BENCHMARK(BM_RunnerTrue)->Unit(benchmark::kMicrosecond);

void BM_RunnerOutput(benchmark::State& state) {
  jailover::common::SubprocessCommandRunner runner;
  for (auto _ : state) {
    auto result = runner.Run({"head", "-c", "65536", "/dev/zero"}, absl::Seconds(10));
    if (!result.ok() || result->stdout_text.size() != 65536) {
      state.SkipWithError("head failed");
      return;
    }
  }
  state.SetBytesProcessed(state.iterations() * 65536);
}
BENCHMARK(BM_RunnerOutput)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
