// The front's command-line flags.

#ifndef SERVING_NATIVE_FLAGS_H_
#define SERVING_NATIVE_FLAGS_H_

#include <string>

namespace serving_native {

struct Options {
  std::string host = "127.0.0.1";
  int port = 8500;
  std::string backend;
  std::string tensorflow_library;  // empty: every batch goes to the backend
  int max_batch_size = 32;
  int num_batch_threads = 1;
  int batch_timeout_micros = 1000;
  int max_message_bytes = 64 << 20;
  int max_concurrent_requests = 256;  // calls in progress; beyond, RESOURCE_EXHAUSTED
  int shutdown_grace_seconds = 10;    // after SIGTERM, for the calls in progress
};

// The flags, or exit code 2 with a message naming the bad one.
Options ParseFlags(int argc, char** argv);

}  // namespace serving_native

#endif  // SERVING_NATIVE_FLAGS_H_
