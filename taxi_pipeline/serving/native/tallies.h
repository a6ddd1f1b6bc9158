// The requests the front answers itself, counted for the Python server's
// Prometheus metrics (monitoring.py), which adds these tallies to its own: by
// model, version, signature and status, with their latencies in TF Serving's
// request-latency buckets (10 us x 1.8^i, 33 bounds, then +Inf).

#ifndef SERVING_NATIVE_TALLIES_H_
#define SERVING_NATIVE_TALLIES_H_

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace serving_native {

class Tallies {
 public:
  static constexpr int kBuckets = 34;

  void Record(const std::string& model, int64_t version, const std::string& signature, double micros) {
    int bucket = 0;
    for (double bound = 10; bucket < kBuckets - 1 && micros > bound; bound *= 1.8) ++bucket;
    std::lock_guard<std::mutex> lock(mu_);
    Tally& tally = tallies_[model + '\t' + std::to_string(version) + '\t' + signature];
    ++tally.count;
    tally.micros += micros;
    ++tally.buckets[bucket];
  }

  // "tally MODEL VERSION SIGNATURE Predict OK COUNT MICROS B0,B1,..." per key (tab-separated).
  std::vector<std::string> Lines() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> lines;
    for (const auto& [key, tally] : tallies_) {
      std::string buckets;
      for (int i = 0; i < kBuckets; ++i) buckets += (i ? "," : "") + std::to_string(tally.buckets[i]);
      lines.push_back("tally\t" + key + "\tPredict\tOK\t" + std::to_string(tally.count) + '\t' +
                      std::to_string(tally.micros) + '\t' + buckets);
    }
    return lines;
  }

 private:
  struct Tally {
    int64_t count = 0;
    double micros = 0;
    std::array<int64_t, kBuckets> buckets{};
  };
  std::mutex mu_;
  std::map<std::string, Tally> tallies_;
};

}  // namespace serving_native

#endif  // SERVING_NATIVE_TALLIES_H_
