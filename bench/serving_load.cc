// serving_load: closed-loop gRPC load for the serving benchmark.
//
// Each of --clients threads has its own connection and sends the same
// serialized request (a file) to one method, waiting for each answer before
// the next, for --seconds. Prints one JSON line: calls answered OK, failures,
// and per-call latency percentiles. The load is compiled so that measuring
// a server's throughput does not measure a Python client's instead.
//
//   serving_load --target 127.0.0.1:8500 --request predict.bin --clients 16 --seconds 10

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// One blocking unary call through the generic (byte-level) stub.
grpc::Status CallOnce(grpc::GenericStub* stub, const std::string& method, const grpc::ByteBuffer& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::ByteBuffer response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status result;
  stub->UnaryCall(&context, method, grpc::StubOptions(), &request, &response, [&](grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu);
    result = status;
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:8500", request_file, method = "/tensorflow.serving.PredictionService/Predict";
  int clients = 16;
  double seconds = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--target") target = value;
    else if (flag == "--request") request_file = value;
    else if (flag == "--method") method = value;
    else if (flag == "--clients") clients = std::atoi(value.c_str());
    else if (flag == "--seconds") seconds = std::atof(value.c_str());
    else {
      fprintf(stderr, "serving_load: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::ifstream in(request_file, std::ios::binary);
  if (request_file.empty() || !in || clients < 1 || seconds <= 0) {
    fprintf(stderr, "serving_load: --request FILE (a serialized request), --clients >= 1, --seconds > 0\n");
    return 2;
  }
  std::stringstream bytes;
  bytes << in.rdbuf();
  grpc::Slice slice(bytes.str());
  const grpc::ByteBuffer request(&slice, 1);

  std::atomic<long> ok{0}, failed{0};
  std::mutex latencies_mu;
  std::vector<double> latencies;
  std::string first_error;
  const auto stop = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      grpc::ChannelArguments args;
      args.SetInt("client_index", c);  // a connection of its own, not a shared one
      grpc::GenericStub stub(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
      std::vector<double> mine;
      while (Clock::now() < stop) {
        const auto start = Clock::now();
        const grpc::Status status = CallOnce(&stub, method, request);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
        if (status.ok()) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard<std::mutex> lock(latencies_mu);
          if (first_error.empty()) first_error = status.error_message();
        }
      }
      std::lock_guard<std::mutex> lock(latencies_mu);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  std::sort(latencies.begin(), latencies.end());
  auto at = [&](double q) { return latencies.empty() ? 0.0 : latencies[static_cast<size_t>(q * (latencies.size() - 1))]; };
  std::string error;
  for (char ch : first_error) {
    if (ch != '"' && ch != '\\' && ch >= ' ') error += ch;
  }
  printf("{\"ok\": %ld, \"failed\": %ld, \"seconds\": %.3f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"error\": \"%s\"}\n",
         ok.load(), failed.load(), seconds, at(0.5), at(0.99), error.c_str());
  return 0;
}
