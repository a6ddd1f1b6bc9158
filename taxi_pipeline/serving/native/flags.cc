// See flags.h.

#include "flags.h"

#include <cstdio>
#include <cstdlib>

namespace serving_native {

Options ParseFlags(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      fprintf(stderr, "serving_front: %s needs a value\n", arg.c_str());
      exit(2);
    }
    char* end = nullptr;
    const long number = strtol(value.c_str(), &end, 10);
    const bool is_number = !value.empty() && *end == '\0';
    auto need_number = [&](int* field, long low) {
      if (!is_number || number < low) {
        fprintf(stderr, "serving_front: %s must be an integer >= %ld, got '%s'\n", arg.c_str(), low, value.c_str());
        exit(2);
      }
      *field = static_cast<int>(number);
    };
    if (arg == "--host") {
      o.host = value;
    } else if (arg == "--port") {
      need_number(&o.port, 0);
    } else if (arg == "--backend") {
      o.backend = value;
    } else if (arg == "--tensorflow_library") {
      o.tensorflow_library = value;
    } else if (arg == "--max_batch_size") {
      need_number(&o.max_batch_size, 1);
    } else if (arg == "--num_batch_threads") {
      need_number(&o.num_batch_threads, 1);
    } else if (arg == "--batch_timeout_micros") {
      need_number(&o.batch_timeout_micros, 0);
    } else if (arg == "--max_message_bytes") {
      need_number(&o.max_message_bytes, 1);
    } else if (arg == "--max_concurrent_requests") {
      need_number(&o.max_concurrent_requests, 1);
    } else if (arg == "--shutdown_grace_seconds") {
      need_number(&o.shutdown_grace_seconds, 0);
    } else {
      fprintf(stderr, "serving_front: unknown flag %s\n", arg.c_str());
      exit(2);
    }
  }
  if (o.backend.empty()) {
    fprintf(stderr, "serving_front: --backend (the Python server's gRPC address) is required\n");
    exit(2);
  }
  return o;
}

}  // namespace serving_native
